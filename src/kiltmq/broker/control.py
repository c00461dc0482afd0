"""The control socket: how ``kiltmq ctl`` talks to a running broker.

A Unix domain socket, by default ``<data-dir>/ctl.sock`` for a broker with a data
directory, and ``kiltmq-<port>.sock`` in ``$XDG_RUNTIME_DIR`` (else the system's
temporary directory) for a memory-only one (:func:`default_socket_path`). Its mode is
0600: only the broker's own OS user can connect, much as RabbitMQ's Erlang cookie keeps
``rabbitmqctl`` to those who can read it. The socket is bound in a private directory and
renamed into place, so it is never reachable with looser permissions, and a stale one
(left by a killed broker) is replaced while a live one is refused.

The protocol is JSON lines: one request per line, ``{"command": "list_queues", "args":
{"vhost": "/"}}``, answered by one line, ``{"ok": true, "result": ...}`` or ``{"ok":
false, "error": "no such vhost 'x'"}``. A connection may send several requests. The
commands and their results are those of :data:`COMMANDS` (see docs/ctl.md). Changes to
vhosts, users and permissions are answered once the store has written them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kiltmq.broker.admin import Admin, AdminError, ManagedBroker
from kiltmq.broker.definitions import json_value

__all__ = [
    "COMMANDS",
    "CTL_SOCKET_NAME",
    "ControlError",
    "ControlServer",
    "default_socket_path",
    "runtime_dir",
]

log = logging.getLogger("kiltmq.broker.control")

#: The control socket's name in a data directory.
CTL_SOCKET_NAME = "ctl.sock"
#: Longest request line accepted (definitions to import come in one line).
MAX_REQUEST = 64 << 20
#: The longest path a Unix socket address holds (Linux: 108 bytes with the final NUL).
MAX_PATH = 107


class ControlError(OSError):
    """The control socket cannot be opened."""


def runtime_dir() -> Path:
    """``$XDG_RUNTIME_DIR`` if it names a directory, else the system's temporary
    directory."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base)
    return Path(tempfile.gettempdir())


def default_socket_path(data_dir: str | os.PathLike[str] | None, port: int) -> Path:
    """Where a broker's control socket is by default: ``<data_dir>/ctl.sock``, or for a
    broker without a data directory ``<runtime dir>/kiltmq-<port>.sock``."""
    if data_dir is not None:
        return Path(data_dir) / CTL_SOCKET_NAME
    return runtime_dir() / f"kiltmq-{port}.sock"


Handler = Callable[[Admin, dict[str, Any]], Any]


def _str(args: dict[str, Any], name: str, default: str | None = None) -> str:
    value = args.get(name, default)
    if not isinstance(value, str):
        raise AdminError(f"argument '{name}' must be a string")
    return value


def _bool(args: dict[str, Any], name: str) -> bool:
    value = args.get(name, False)
    if not isinstance(value, bool):
        raise AdminError(f"argument '{name}' must be true or false")
    return value


def _vhost(args: dict[str, Any]) -> str:
    return _str(args, "vhost", "/")


# -- commands (run on the broker's loop) ---------------------------------------------------


def _status(admin: Admin, args: dict[str, Any]) -> Any:
    return asdict(admin.status())


def _list_vhosts(admin: Admin, args: dict[str, Any]) -> Any:
    return [{"name": name} for name in admin.vhost_names()]


def _add_vhost(admin: Admin, args: dict[str, Any]) -> Any:
    return {"created": admin.add_vhost(_str(args, "name"))}


def _delete_vhost(admin: Admin, args: dict[str, Any]) -> Any:
    admin.delete_vhost(_str(args, "name"))
    return None


def _list_users(admin: Admin, args: dict[str, Any]) -> Any:
    return [{"user": u.name, "tags": list(u.tags)} for u in admin.users()]


def _add_user(admin: Admin, args: dict[str, Any]) -> Any:
    tags = args.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise AdminError("argument 'tags' must be a list of strings")
    admin.add_user(_str(args, "name"), _str(args, "password"), tags)
    return None


def _delete_user(admin: Admin, args: dict[str, Any]) -> Any:
    closed = admin.delete_user(_str(args, "name"))
    return {"connections_closed": len(closed)}


def _set_user_tags(admin: Admin, args: dict[str, Any]) -> Any:
    tags = args.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise AdminError("argument 'tags' must be a list of strings")
    user = admin.user(_str(args, "name"))
    admin.put_user(user.name, user.password_hash, tags)
    return None


def _change_password(admin: Admin, args: dict[str, Any]) -> Any:
    admin.change_password(_str(args, "name"), _str(args, "password"))
    return None


def _set_permissions(admin: Admin, args: dict[str, Any]) -> Any:
    admin.set_permissions(
        _str(args, "user"),
        _vhost(args),
        _str(args, "configure"),
        _str(args, "write"),
        _str(args, "read"),
    )
    return None


def _clear_permissions(admin: Admin, args: dict[str, Any]) -> Any:
    admin.clear_permissions(_str(args, "user"), _vhost(args))
    return None


def _list_permissions(admin: Admin, args: dict[str, Any]) -> Any:
    return [
        {"user": p.user, "configure": p.configure, "write": p.write, "read": p.read}
        for p in admin.permissions(_vhost(args))
    ]


def _set_vhost_limits(admin: Admin, args: dict[str, Any]) -> Any:
    definition = args.get("definition")
    if not isinstance(definition, (str, dict)):
        raise AdminError("argument 'definition' must be a JSON object or its text")
    admin.set_vhost_limits(_vhost(args), definition)
    return None


def _clear_vhost_limits(admin: Admin, args: dict[str, Any]) -> Any:
    admin.set_vhost_limits(_vhost(args), {})
    return None


def _list_vhost_limits(admin: Admin, args: dict[str, Any]) -> Any:
    vhost = None if _bool(args, "global") else _vhost(args)
    return [{"vhost": name, "limits": limits} for name, limits in admin.vhost_limits(vhost)]


def _set_user_limits(admin: Admin, args: dict[str, Any]) -> Any:
    definition = args.get("definition")
    if not isinstance(definition, (str, dict)):
        raise AdminError("argument 'definition' must be a JSON object or its text")
    admin.set_user_limits(_str(args, "name"), definition)
    return None


def _clear_user_limits(admin: Admin, args: dict[str, Any]) -> Any:
    admin.clear_user_limits(_str(args, "name"), _str(args, "limit", "all"))
    return None


def _list_user_limits(admin: Admin, args: dict[str, Any]) -> Any:
    user = None if _bool(args, "global") else _str(args, "user", "guest")
    return [{"user": name, "limits": limits} for name, limits in admin.user_limits(user)]


def _list_exchanges(admin: Admin, args: dict[str, Any]) -> Any:
    columns = "name type durable auto_delete internal arguments"
    return _rows(admin.exchanges(_vhost(args)), columns)


def _list_queues(admin: Admin, args: dict[str, Any]) -> Any:
    columns = (
        "name type messages messages_ready=ready messages_unacknowledged=unacked consumers "
        "durable auto_delete exclusive arguments"
    )
    return _rows(admin.queues(_vhost(args)), columns)


def _list_bindings(admin: Admin, args: dict[str, Any]) -> Any:
    return [
        {
            "source_name": b.source,
            "source_kind": "exchange",
            "destination_name": b.destination,
            "destination_kind": b.destination_type,
            "routing_key": b.routing_key,
            "arguments": json_value(b.arguments),
        }
        for b in admin.bindings(_vhost(args))
    ]


def _list_connections(admin: Admin, args: dict[str, Any]) -> Any:
    vhost = args.get("vhost")
    if vhost is not None:
        vhost = _str(args, "vhost")
        admin.vhost(vhost)
    columns = "name peer user vhost channels product"
    return _rows(admin.connections(vhost=vhost), columns)


def _list_consumers(admin: Admin, args: dict[str, Any]) -> Any:
    return [
        {
            "queue_name": c.queue,
            "consumer_tag": c.tag,
            "connection": c.connection.peer,
            "channel": c.channel,
            "ack_required": not c.no_ack,
            "prefetch_count": c.prefetch,
            "exclusive": c.exclusive,
            "arguments": json_value(c.arguments),
        }
        for c in admin.consumers(_vhost(args))
    ]


def _close_connection(admin: Admin, args: dict[str, Any]) -> Any:
    which = _str(args, "connection")
    reason = _str(args, "reason", "closed via kiltmq ctl")
    connections = admin.open_connections(name_or_peer=which)
    if not connections:
        raise AdminError(f"no such connection '{which}'")
    closed = admin.close_connections(connections, f"CONNECTION_FORCED - {reason}")
    return [{"name": c.name, "peer": c.peer} for c in closed]


def _purge_queue(admin: Admin, args: dict[str, Any]) -> Any:
    return {"messages": admin.purge_queue(_vhost(args), _str(args, "name"))}


def _delete_queue(admin: Admin, args: dict[str, Any]) -> Any:
    count = admin.delete_queue(
        _vhost(args),
        _str(args, "name"),
        if_unused=_bool(args, "if_unused"),
        if_empty=_bool(args, "if_empty"),
    )
    return {"messages": count}


def _set_policy(admin: Admin, args: dict[str, Any], operator: bool = False) -> Any:
    policy = admin.set_policy(
        _vhost(args), _str(args, "name"), _str(args, "pattern"), args.get("definition"),
        priority=args.get("priority", 0), apply_to=args.get("apply_to", "all"),
        operator=operator,
    )
    return policy.as_json()


def _clear_policy(admin: Admin, args: dict[str, Any], operator: bool = False) -> Any:
    admin.clear_policy(_vhost(args), _str(args, "name"), operator=operator)
    return None


def _list_policies(admin: Admin, args: dict[str, Any], operator: bool = False) -> Any:
    return [p.as_json() for p in admin.policies(_vhost(args), operator=operator)]


def _export_definitions(admin: Admin, args: dict[str, Any]) -> Any:
    vhost = args.get("vhost")
    return admin.export_definitions(None if vhost is None else _str(args, "vhost"))


def _import_definitions(admin: Admin, args: dict[str, Any]) -> Any:
    vhost = args.get("vhost")
    admin.import_definitions(
        args.get("definitions"), None if vhost is None else _str(args, "vhost")
    )
    return None


#: Command name -> (handler, whether it changes what the store keeps).
COMMANDS: dict[str, tuple[Handler, bool]] = {
    "status": (_status, False),
    "list_vhosts": (_list_vhosts, False),
    "add_vhost": (_add_vhost, True),
    "delete_vhost": (_delete_vhost, True),
    "list_users": (_list_users, False),
    "add_user": (_add_user, True),
    "delete_user": (_delete_user, True),
    "change_password": (_change_password, True),
    "set_user_tags": (_set_user_tags, True),
    "set_permissions": (_set_permissions, True),
    "clear_permissions": (_clear_permissions, True),
    "list_permissions": (_list_permissions, False),
    "set_vhost_limits": (_set_vhost_limits, True),
    "clear_vhost_limits": (_clear_vhost_limits, True),
    "list_vhost_limits": (_list_vhost_limits, False),
    "set_user_limits": (_set_user_limits, True),
    "clear_user_limits": (_clear_user_limits, True),
    "list_user_limits": (_list_user_limits, False),
    "list_exchanges": (_list_exchanges, False),
    "list_queues": (_list_queues, False),
    "list_bindings": (_list_bindings, False),
    "list_connections": (_list_connections, False),
    "list_consumers": (_list_consumers, False),
    "close_connection": (_close_connection, False),
    "purge_queue": (_purge_queue, True),
    "delete_queue": (_delete_queue, True),
    "set_policy": (_set_policy, True),
    "clear_policy": (_clear_policy, True),
    "list_policies": (_list_policies, False),
    "set_operator_policy": (lambda a, r: _set_policy(a, r, True), True),
    "clear_operator_policy": (lambda a, r: _clear_policy(a, r, True), True),
    "list_operator_policies": (lambda a, r: _list_policies(a, r, True), False),
    "export_definitions": (_export_definitions, False),
    "import_definitions": (_import_definitions, True),
}


def _rows(snapshots: Iterable[Any], columns: str) -> list[dict[str, Any]]:
    """Each of ``snapshots`` as a JSON object with the space-separated ``columns``: a
    column ``key`` is the snapshot's attribute of that name, ``key=name`` its attribute
    ``name`` (field tables made plain)."""
    pairs = [column.partition("=")[::2] for column in columns.split()]
    return [{key: json_value(getattr(s, name or key)) for key, name in pairs} for s in snapshots]


# -- the server ----------------------------------------------------------------------------


class ControlServer:
    """The control socket of one broker (opened on the broker's loop)."""

    def __init__(self, broker: ManagedBroker, path: str | os.PathLike[str]) -> None:
        self.admin = Admin(broker)
        self.path = Path(path)
        self._server: asyncio.Server | None = None
        self._inode: tuple[int, int] | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on :attr:`path` (ControlError if that cannot be done)."""
        sock = self._bind()
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, sock=sock, limit=MAX_REQUEST
            )
        except BaseException:
            sock.close()
            self._unlink()
            raise
        log.info("control socket %s", self.path)

    def _bind(self) -> socket.socket:
        path = self.path
        if len(os.fsencode(path)) > MAX_PATH:
            raise ControlError(
                f"cannot open the control socket {path}: the path is longer than "
                f"{MAX_PATH} bytes"
            )
        self._check_existing(path)
        parent = path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            # bind in a private directory (mode 0700), make the socket 0600, then move it
            # into place: nobody else can ever connect, whatever the umask
            private = tempfile.mkdtemp(prefix=".kiltmq-ctl-", dir=parent)
        except OSError as exc:
            raise ControlError(
                f"cannot open the control socket {path}: {exc.strerror or exc}"
            ) from None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        temporary = os.path.join(private, "s")
        try:
            sock.bind(temporary)
            os.chmod(temporary, 0o600)
            sock.listen(16)
            os.rename(temporary, path)
            info = os.stat(path)
            self._inode = (info.st_dev, info.st_ino)
        except OSError as exc:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise ControlError(
                f"cannot open the control socket {path}: {exc.strerror or exc}"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(private)
        sock.setblocking(False)
        return sock

    @staticmethod
    def _check_existing(path: Path) -> None:
        """Remove a stale socket at ``path``; refuse anything else there."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ControlError(
                f"cannot open the control socket {path}: {exc.strerror or exc}"
            ) from None
        if not stat.S_ISSOCK(info.st_mode):
            raise ControlError(
                f"cannot open the control socket {path}: a file that is not a socket is there"
            )
        if info.st_uid != os.geteuid():
            raise ControlError(
                f"cannot open the control socket {path}: it belongs to another user"
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            pass  # stale: nobody listens
        except OSError as exc:
            raise ControlError(
                f"cannot open the control socket {path}: {exc.strerror or exc}"
            ) from None
        else:
            raise ControlError(
                f"cannot open the control socket {path}: another broker is listening there"
            )
        finally:
            probe.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        await server.wait_closed()
        self._unlink()

    def _unlink(self) -> None:
        """Remove the socket file if it still is ours."""
        if self._inode is None:
            return
        with contextlib.suppress(OSError):
            info = os.stat(self.path)
            if (info.st_dev, info.st_ino) == self._inode:
                os.unlink(self.path)
        self._inode = None

    # -- requests -------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than MAX_REQUEST
                    writer.write(_encode({"ok": False, "error": "request too long"}))
                    break
                if not line:
                    break
                writer.write(_encode(await self.handle(line)))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(task)
            writer.close()

    async def handle(self, line: bytes) -> dict[str, Any]:
        """Answer one request line."""
        try:
            request = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "a request is one JSON object per line"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is one JSON object per line"}
        name = request.get("command")
        args = request.get("args") or {}
        entry = COMMANDS.get(name) if isinstance(name, str) else None
        if entry is None:
            return {"ok": False, "error": f"unknown command {name!r}"}
        if not isinstance(args, dict):
            return {"ok": False, "error": "'args' must be an object"}
        handler, durable = entry
        try:
            result = handler(self.admin, args)
        except AdminError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("control command %s failed", name)
            return {"ok": False, "error": f"internal error: {exc}"}
        if durable:
            try:
                await self.admin.committed()
            except TimeoutError:
                return {
                    "ok": False,
                    "error": "done, but the store has not written it yet (see the "
                    "broker's log): it may not survive a restart",
                }
        return {"ok": True, "result": result}


def _encode(response: dict[str, Any]) -> bytes:
    return json.dumps(response, separators=(",", ":")).encode() + b"\n"

