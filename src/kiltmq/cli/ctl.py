"""``kiltmq ctl``: administer a running kiltmq broker, as ``rabbitmqctl`` does RabbitMQ.

It talks to the broker's control socket (:mod:`kiltmq.broker.control`): one JSON request
line, one JSON response line. Output is an aligned text table (``--json``: the broker's
answer as JSON); errors are one line on standard error with exit status 1, or 69 when no
broker answers at the socket.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiltmq.cli.definitions_file import DefinitionsFileError, read_definitions, write_definitions
from kiltmq.cli.limits import format_limits
from kiltmq.cli.main import SubParsers
from kiltmq.cli.table import table

DESCRIPTION = """\
Administer a running kiltmq broker through its control socket (a Unix socket only the
broker's OS user can use): list and change vhosts, users, permissions, policies, queues
and connections; export and import definitions.

The socket is found with --socket PATH, --data-dir DIR (DIR/ctl.sock), --port N (a
--memory-only broker's kiltmq-N.sock in $XDG_RUNTIME_DIR or the temporary directory), or
by default in the default data directory, else for a memory-only broker on port 5672.

Exit status: 0 done, 1 the broker refused (no such queue, ...), 2 bad usage, 69 no broker
answered at the socket.
"""

#: Exit status when no broker answers (sysexits' EX_UNAVAILABLE, as rabbitmqctl).
EXIT_UNAVAILABLE = 69
DEFAULT_TIMEOUT = 30.0


class CtlError(Exception):
    """A failure to report on one line; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# -- the command line ----------------------------------------------------------------------


def _connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options accepted before and after the command name (after it they must not
    reset what was given before: their defaults are suppressed there)."""
    default: Any = argparse.SUPPRESS if suppress else None
    where = parser.add_argument_group("finding the broker")
    where.add_argument("--socket", default=default, metavar="PATH",
                       help="the broker's control socket")
    where.add_argument("--data-dir", default=default, metavar="DIR",
                       help="the broker's data directory (its socket is DIR/ctl.sock)")
    where.add_argument("--port", type=int, default=default, metavar="N",
                       help="the AMQP port of a memory-only broker (finds kiltmq-N.sock)")
    where.add_argument("--timeout", type=float,
                       default=argparse.SUPPRESS if suppress else DEFAULT_TIMEOUT,
                       metavar="SECONDS",
                       help=f"how long to wait for the broker (default {DEFAULT_TIMEOUT:g})")
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="print the broker's answer as JSON")
    output.add_argument("-q", "--quiet", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="no table header and no confirmation lines")


def _vhost_option(parser: argparse.ArgumentParser, default: str | None = "/") -> None:
    parser.add_argument("-p", "--vhost", default=default, metavar="VHOST",
                        help="virtual host" + (f" (default {default})" if default else
                                               " (default: every vhost)"))


#: Command name -> (help, function adding its arguments).
def _commands() -> dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]]:
    def nothing(p: argparse.ArgumentParser) -> None:
        pass

    def vhost_only(p: argparse.ArgumentParser) -> None:
        _vhost_option(p)

    def name(what: str) -> Callable[[argparse.ArgumentParser], None]:
        def add(p: argparse.ArgumentParser) -> None:
            p.add_argument("name", metavar=what.upper())

        return add

    def user_password(p: argparse.ArgumentParser) -> None:
        p.add_argument("name", metavar="USER")
        p.add_argument("password", metavar="PASSWORD", nargs="?",
                       help="(default: read from standard input)")

    def user_tags(p: argparse.ArgumentParser) -> None:
        p.add_argument("name", metavar="USER")
        p.add_argument("tags", metavar="TAG", nargs="*",
                       help="administrator, monitoring, policymaker, management... "
                       "(none: no tags)")

    def set_permissions(p: argparse.ArgumentParser) -> None:
        _vhost_option(p)
        p.add_argument("user", metavar="USER")
        p.add_argument("configure", metavar="CONF", help="regex of configurable resources")
        p.add_argument("write", metavar="WRITE", help="regex of writable resources")
        p.add_argument("read", metavar="READ", help="regex of readable resources")

    def clear_permissions(p: argparse.ArgumentParser) -> None:
        _vhost_option(p)
        p.add_argument("user", metavar="USER")

    def set_vhost_limits(p: argparse.ArgumentParser) -> None:
        _vhost_option(p)
        p.add_argument("definition", metavar="DEFINITION",
                       help='JSON, e.g. \'{"max-connections": 10, "max-queues": 100}\'')

    def list_vhost_limits(p: argparse.ArgumentParser) -> None:
        _vhost_option(p)
        p.add_argument("--global", action="store_true", help="every vhost with limits")

    def set_user_limits(p: argparse.ArgumentParser) -> None:
        p.add_argument("name", metavar="USER")
        p.add_argument("definition", metavar="DEFINITION",
                       help='JSON, e.g. \'{"max-connections": 10, "max-channels": 20}\'')

    def clear_user_limits(p: argparse.ArgumentParser) -> None:
        p.add_argument("name", metavar="USER")
        p.add_argument("limit", metavar="LIMIT", help="max-connections, max-channels or all")

    def list_user_limits(p: argparse.ArgumentParser) -> None:
        p.add_argument("--user", default="guest", metavar="USER", help="(default guest)")
        p.add_argument("--global", action="store_true", help="every user with limits")

    def list_connections(p: argparse.ArgumentParser) -> None:
        _vhost_option(p, None)

    def close_connection(p: argparse.ArgumentParser) -> None:
        p.add_argument("connection", metavar="NAME_OR_PEER",
                       help="the client's connection name or its host:port")
        p.add_argument("reason", metavar="REASON", help="told to the client")

    def queue(p: argparse.ArgumentParser) -> None:
        _vhost_option(p)
        p.add_argument("name", metavar="QUEUE")

    def list_queues(p: argparse.ArgumentParser) -> None:
        _vhost_option(p)
        p.add_argument("columns", metavar="COLUMN", nargs="*",
                       help=f"columns to show (default: all): {', '.join(QUEUE_COLUMNS)}")

    def delete_queue(p: argparse.ArgumentParser) -> None:
        queue(p)
        p.add_argument("--if-empty", action="store_true", help="only if it has no messages")
        p.add_argument("--if-unused", action="store_true", help="only if it has no consumers")

    def set_policy(p: argparse.ArgumentParser) -> None:
        _vhost_option(p)
        p.add_argument("--priority", type=int, default=0, metavar="N",
                       help="of policies matching a name the highest applies (default 0)")
        p.add_argument("--apply-to", default="all", metavar="WHAT",
                       help="queues, exchanges or all (default all)")
        p.add_argument("name", metavar="NAME")
        p.add_argument("pattern", metavar="PATTERN", help="regex of queue or exchange names")
        p.add_argument("definition", metavar="DEFINITION",
                       help='JSON, e.g. \'{"max-length": 1000}\'')

    def clear_policy(p: argparse.ArgumentParser) -> None:
        _vhost_option(p)
        p.add_argument("name", metavar="NAME")

    def definitions_file(p: argparse.ArgumentParser) -> None:
        p.add_argument("file", metavar="FILE", nargs="?", default="-",
                       help="a JSON file, or - for standard input or output (default)")

    return {
        "status": ("the broker: version, uptime, listeners, counts, memory", nothing),
        "list_vhosts": ("virtual hosts", nothing),
        "add_vhost": ("create a virtual host", name("vhost")),
        "delete_vhost": ("delete a virtual host with its queues and exchanges", name("vhost")),
        "list_users": ("users and their tags", nothing),
        "add_user": ("create a user (with no permissions)", user_password),
        "delete_user": ("delete a user (their connections are closed)", name("user")),
        "change_password": ("set a user's password", user_password),
        "set_user_tags": ("replace a user's tags (what the management API allows)", user_tags),
        "set_permissions": ("set a user's permissions in a vhost", set_permissions),
        "clear_permissions": ("remove a user's permissions in a vhost", clear_permissions),
        "list_permissions": ("permissions in a vhost", vhost_only),
        "set_vhost_limits": ("set a vhost's max-connections and max-queues",
                             set_vhost_limits),
        "clear_vhost_limits": ("remove a vhost's limits", vhost_only),
        "list_vhost_limits": ("a vhost's limits", list_vhost_limits),
        "set_user_limits": ("set a user's max-connections and max-channels",
                            set_user_limits),
        "clear_user_limits": ("remove a user's limit, or all of them", clear_user_limits),
        "list_user_limits": ("a user's limits", list_user_limits),
        "list_exchanges": ("exchanges of a vhost", vhost_only),
        "list_queues": ("queues of a vhost with their message counts", list_queues),
        "list_bindings": ("bindings of a vhost", vhost_only),
        "list_connections": ("client connections", list_connections),
        "list_consumers": ("consumers of a vhost's queues", vhost_only),
        "close_connection": ("close client connections (320 CONNECTION_FORCED)",
                             close_connection),
        "purge_queue": ("drop a queue's ready messages", queue),
        "delete_queue": ("delete a queue", delete_queue),
        "set_policy": ("set a policy (queue and exchange settings by name pattern)",
                       set_policy),
        "clear_policy": ("remove a policy", clear_policy),
        "list_policies": ("policies of a vhost", vhost_only),
        "set_operator_policy": ("set an operator policy (limits users cannot exceed)",
                                set_policy),
        "clear_operator_policy": ("remove an operator policy", clear_policy),
        "list_operator_policies": ("operator policies of a vhost", vhost_only),
        "export_definitions": ("write users, vhosts, permissions, policies, queues, "
                               "exchanges and bindings as RabbitMQ's JSON", definitions_file),
        "import_definitions": ("load definitions exported by RabbitMQ or kiltmq",
                               definitions_file),
    }


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "ctl",
        help="administer a running kiltmq broker (like rabbitmqctl)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="ctl_command", metavar="COMMAND")
    for command, (help_text, add_arguments) in _commands().items():
        sub = commands.add_parser(command, help=help_text, description=help_text + ".")
        add_arguments(sub)
        _connection_options(sub, suppress=True)
    return parser


# -- talking to the broker -----------------------------------------------------------------


def socket_path(args: argparse.Namespace) -> Path:
    """The control socket the options name (see DESCRIPTION)."""
    from kiltmq.broker.control import CTL_SOCKET_NAME, default_socket_path
    from kiltmq.broker.store import default_data_dir

    if args.socket:
        return Path(args.socket)
    if args.data_dir:
        return Path(args.data_dir) / CTL_SOCKET_NAME
    if args.port is not None:
        return default_socket_path(None, args.port)
    in_data_dir = default_data_dir() / CTL_SOCKET_NAME
    memory_only = default_socket_path(None, 5672)
    if not in_data_dir.exists() and memory_only.exists():
        return memory_only
    return in_data_dir


def request(path: Path, command: str, arguments: dict[str, Any], timeout: float) -> Any:
    """Send one request to the broker at ``path``; its result, or CtlError."""
    unreachable = CtlError(
        f"no broker is listening at {path} (is it running? --socket/--data-dir)",
        EXIT_UNAVAILABLE,
    )
    try:
        info = os.stat(path)
    except OSError:
        raise unreachable from None
    if info.st_uid != os.geteuid():
        # not the broker's user: the socket refuses us anyway, and it might not even be
        # a broker's (a shared temporary directory)
        raise CtlError(
            f"{path} belongs to another user: run kiltmq ctl as the broker's user",
            EXIT_UNAVAILABLE,
        )
    line = json.dumps({"command": command, "args": arguments}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise unreachable from None
        except PermissionError:
            raise CtlError(
                f"permission denied for {path}: run kiltmq ctl as the broker's user",
                EXIT_UNAVAILABLE,
            ) from None
        except OSError as exc:
            raise CtlError(f"cannot connect to {path}: {exc.strerror or exc}",
                           EXIT_UNAVAILABLE) from None
        try:
            sock.sendall(line)
            answer = _read_line(sock)
        except TimeoutError:
            raise CtlError(f"the broker at {path} did not answer within {timeout:g} s",
                           EXIT_UNAVAILABLE) from None
        except OSError as exc:
            raise CtlError(f"lost the broker at {path}: {exc.strerror or exc}",
                           EXIT_UNAVAILABLE) from None
    try:
        response = json.loads(answer)
    except ValueError:
        raise CtlError(f"{path} did not answer as a kiltmq broker does",
                       EXIT_UNAVAILABLE) from None
    if not isinstance(response, dict) or "ok" not in response:
        raise CtlError(f"{path} did not answer as a kiltmq broker does", EXIT_UNAVAILABLE)
    if not response["ok"]:
        raise CtlError(str(response.get("error", "the broker refused")))
    return response.get("result")


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the connection was closed")
        end = chunk.find(b"\n")
        if end >= 0:
            chunks.append(chunk[:end])
            return b"".join(chunks)
        chunks.append(chunk)


# -- output ---------------------------------------------------------------------------------


_POLICY_COLUMNS = ("vhost", "name", "pattern", "apply-to", "definition", "priority")
#: The columns list_queues can show.
QUEUE_COLUMNS = (
    "name", "type", "messages", "messages_ready", "messages_unacknowledged", "consumers",
    "durable", "auto_delete", "exclusive",
)
#: Columns of the text tables of the list commands.
COLUMNS: dict[str, tuple[str, ...]] = {
    "list_vhosts": ("name",),
    "list_users": ("user", "tags"),
    "list_permissions": ("user", "configure", "write", "read"),
    "list_exchanges": ("name", "type", "durable", "auto_delete", "internal"),
    "list_queues": QUEUE_COLUMNS,
    "list_bindings": (
        "source_name", "source_kind", "destination_name", "destination_kind", "routing_key",
    ),
    "list_connections": ("name", "peer", "user", "vhost", "channels"),
    "list_policies": _POLICY_COLUMNS,
    "list_operator_policies": _POLICY_COLUMNS,
    "list_consumers": (
        "queue_name", "consumer_tag", "connection", "channel", "ack_required",
        "prefetch_count", "exclusive",
    ),
}


def _size(value: int | None) -> str:
    if value is None:
        return "unknown"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"  # pragma: no cover


def _duration(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if days or hours:
        parts.append(f"{hours} h")
    if days or hours or minutes:
        parts.append(f"{minutes} min")
    parts.append(f"{secs} s")
    return " ".join(parts)


def _alarm(status: dict[str, Any], resource: str) -> str:
    alarms = status.get("alarms") or (["memory"] if status.get("memory_alarm") else [])
    return "publishers blocked" if resource in alarms else "none"


def format_status(status: dict[str, Any]) -> str:
    limit = status.get("memory_limit")
    memory = f"{_size(status.get('queued_bytes'))} in queued messages"
    memory += f" (limit {_size(limit)})" if limit else " (no limit)"
    memory += f", process {_size(status.get('process_memory'))}"
    items = [
        ("version", f"kiltmq {status.get('version')} on Python {status.get('python')}"),
        ("pid", status.get("pid")),
        ("uptime", _duration(float(status.get("uptime") or 0))),
        ("listeners", ", ".join(status.get("listeners") or [])),
        ("connections", status.get("connections")),
        ("channels", status.get("channels")),
        ("vhosts", status.get("vhosts")),
        ("queues", status.get("queues")),
        ("messages", status.get("messages")),
        ("memory", memory),
        ("memory alarm", _alarm(status, "memory")),
        ("disk alarm", _alarm(status, "disk")),
        ("data dir", status.get("data_dir") or "none (memory-only)"),
        ("ctl socket", status.get("ctl_socket")),
    ]
    width = max(len(key) for key, _ in items) + 1
    return "".join(f"{(key + ':').ljust(width)} {value}\n" for key, value in items)


def _confirmation(command: str, args: argparse.Namespace, result: Any) -> str | None:
    vhost = getattr(args, "vhost", None)
    name = getattr(args, "name", None)
    if command == "add_vhost":
        return f"vhost '{name}' added" if result.get("created") else f"vhost '{name}' exists"
    if command == "delete_vhost":
        return f"vhost '{name}' deleted"
    if command == "add_user":
        return f"user '{name}' added"
    if command == "delete_user":
        closed = result.get("connections_closed", 0)
        return f"user '{name}' deleted" + (f", {closed} connection(s) closed" if closed else "")
    if command == "change_password":
        return f"password of user '{name}' changed"
    if command == "set_user_tags":
        return f"tags of user '{name}' set to [{', '.join(args.tags)}]"
    if command == "set_permissions":
        return f"permissions of user '{args.user}' in vhost '{vhost}' set"
    if command == "clear_permissions":
        return f"permissions of user '{args.user}' in vhost '{vhost}' cleared"
    if command == "set_vhost_limits":
        return f"limits of vhost '{vhost}' set to {args.definition}"
    if command == "clear_vhost_limits":
        return f"limits of vhost '{vhost}' cleared"
    if command == "set_user_limits":
        return f"limits of user '{name}' set to {args.definition}"
    if command == "clear_user_limits":
        what = "limits" if args.limit == "all" else f"limit {args.limit}"
        return f"{what} of user '{name}' cleared"
    if command in ("set_policy", "set_operator_policy"):
        kind = "operator policy" if command == "set_operator_policy" else "policy"
        return f"{kind} '{name}' set in vhost '{vhost}'"
    if command in ("clear_policy", "clear_operator_policy"):
        kind = "operator policy" if command == "clear_operator_policy" else "policy"
        return f"{kind} '{name}' cleared in vhost '{vhost}'"
    if command == "import_definitions":
        return f"definitions imported from {'standard input' if args.file == '-' else args.file}"
    if command == "export_definitions" and args.file != "-":
        return f"definitions exported to {args.file}"
    if command == "close_connection":
        return "\n".join(
            f"closed connection {c['peer']}" + (f" ({c['name']})" if c.get("name") else "")
            for c in result
        )
    if command == "purge_queue":
        return f"purged {result['messages']} message(s) from queue '{name}' in vhost '{vhost}'"
    if command == "delete_queue":
        return (
            f"deleted queue '{name}' in vhost '{vhost}' with {result['messages']} message(s)"
        )
    return None


# -- running --------------------------------------------------------------------------------


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    line = sys.stdin.readline()
    if not line:
        raise CtlError("no password given (as an argument or on standard input)")
    return line.rstrip("\r\n")


def _arguments(command: str, args: argparse.Namespace) -> dict[str, Any]:
    """The request's arguments from the parsed command line."""
    skip = {"socket", "data_dir", "port", "timeout", "json", "quiet", "command", "ctl_command",
            "_run"}
    skip.add("columns")
    arguments = {k: v for k, v in vars(args).items() if k not in skip}
    if command in ("add_user", "change_password") and arguments.get("password") is None:
        arguments["password"] = _read_password()
    if command == "list_connections" and arguments.get("vhost") is None:
        arguments.pop("vhost", None)
    if command == "import_definitions":
        arguments = {"definitions": read_definitions(arguments.pop("file"))}
    elif command == "export_definitions":
        arguments = {}
    return arguments


def run(args: argparse.Namespace) -> int:
    command = args.ctl_command
    if command is None:
        print("kiltmq ctl: a command is needed (kiltmq ctl --help lists them)", file=sys.stderr)
        return 2
    unknown = [c for c in getattr(args, "columns", None) or () if c not in QUEUE_COLUMNS]
    if unknown:
        print(f"kiltmq ctl: unknown column '{unknown[0]}' (columns: "
              f"{', '.join(QUEUE_COLUMNS)})", file=sys.stderr)
        return 2
    try:
        path = socket_path(args)
        result = request(path, command, _arguments(command, args), args.timeout)
        with contextlib.suppress(BrokenPipeError):
            _print(command, args, result)
    except (CtlError, DefinitionsFileError) as exc:
        print(f"kiltmq ctl: {exc}", file=sys.stderr)
        return exc.status if isinstance(exc, CtlError) else 1
    return 0


def _print(command: str, args: argparse.Namespace, result: Any) -> None:
    if command == "export_definitions":
        write_definitions(args.file, result)
    elif args.json:
        json.dump(result, sys.stdout, indent=2 if command == "status" else None)
        sys.stdout.write("\n")
        return
    if command == "status":
        sys.stdout.write(format_status(result))
        return
    if command in ("list_vhost_limits", "list_user_limits"):
        owner = "vhost" if command == "list_vhost_limits" else "user"
        text = format_limits(result, owner, every=vars(args)["global"], header=not args.quiet)
        if text:
            print(text)
        return
    columns = getattr(args, "columns", None) or COLUMNS.get(command)
    if columns is not None:
        sys.stdout.write(table(result, columns, header=not args.quiet))
        return
    line = _confirmation(command, args, result)
    if line and not args.quiet:
        print(line)
