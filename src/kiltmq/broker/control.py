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
commands and their results are those of :data:`COMMANDS`
(:mod:`kiltmq.broker.control_commands`, docs/ctl.md). Changes to
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
from pathlib import Path
from typing import Any

from kiltmq.broker.admin import Admin, AdminError, ManagedBroker
from kiltmq.broker.control_commands import COMMANDS

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

