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
import sys
from collections.abc import Callable
from typing import Any

from kiltmq.cli.ctl_output import (
    COLUMNS,
    QUEUE_COLUMNS,
    confirmation,
    format_limits,
    format_status,
    table,
)
from kiltmq.cli.ctl_request import CtlError, request, socket_path
from kiltmq.cli.definitions_file import DefinitionsFileError, read_definitions, write_definitions
from kiltmq.cli.main import SubParsers

__all__ = ["add_parser", "request", "run"]

DESCRIPTION = """\
Administer a running kiltmq broker through its control socket (a Unix socket only the
broker's OS user can use): list and change vhosts, users, permissions, topic
permissions, policies, queues and connections; export and import definitions.

The socket is found with --socket PATH, --data-dir DIR (DIR/ctl.sock), --port N (a
--memory-only broker's kiltmq-N.sock in $XDG_RUNTIME_DIR or the temporary directory), or
by default in the default data directory, else for a memory-only broker on port 5672.

Exit status: 0 done, 1 the broker refused (no such queue, ...), 2 bad usage, 69 no broker
answered at the socket.
"""
DEFAULT_TIMEOUT = 30.0


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

    def set_topic_permissions(p: argparse.ArgumentParser) -> None:
        _vhost_option(p)
        p.add_argument("user", metavar="USER")
        p.add_argument("exchange", metavar="EXCHANGE", help="a topic exchange")
        p.add_argument("write", metavar="WRITE",
                       help="regex of the routing keys the user may publish with")
        p.add_argument("read", metavar="READ",
                       help="regex of the routing keys the user may bind with")

    def clear_topic_permissions(p: argparse.ArgumentParser) -> None:
        _vhost_option(p)
        p.add_argument("user", metavar="USER")
        p.add_argument("exchange", metavar="EXCHANGE", nargs="?",
                       help="(default: every exchange)")

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
        "set_topic_permissions": ("set a user's routing key regexes for a topic exchange",
                                  set_topic_permissions),
        "clear_topic_permissions": ("remove a user's topic permissions in a vhost",
                                    clear_topic_permissions),
        "list_topic_permissions": ("topic permissions in a vhost", vhost_only),
        "list_user_topic_permissions": ("a user's topic permissions", name("user")),
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
        "export_definitions": ("write users, vhosts, permissions, topic permissions, "
                               "policies, queues, exchanges and bindings as RabbitMQ's JSON",
                               definitions_file),
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
    line = confirmation(command, args, result)
    if line and not args.quiet:
        print(line)
