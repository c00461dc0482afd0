"""The client side of the broker's control socket (:mod:`kiltmq.broker.control`): where
the socket is, and one request to it (one JSON line out, one JSON line back)."""

from __future__ import annotations

import argparse
import json
import os
import socket
from pathlib import Path
from typing import Any

__all__ = ["EXIT_UNAVAILABLE", "CtlError", "request", "socket_path"]

#: Exit status when no broker answers (sysexits' EX_UNAVAILABLE, as rabbitmqctl).
EXIT_UNAVAILABLE = 69


class CtlError(Exception):
    """A failure to report on one line; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def socket_path(args: argparse.Namespace) -> Path:
    """The control socket the options of ``kiltmq ctl`` name (see its DESCRIPTION)."""
    if args.socket:
        return Path(args.socket)
    from kiltmq.broker.control import CTL_SOCKET_NAME, default_socket_path
    from kiltmq.broker.store import default_data_dir

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
