"""The asyncio side of a client connection: an :class:`asyncio.Protocol` that forwards
what the socket does to its connection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Protocol

__all__ = ["Transport", "TransportOwner"]


class TransportOwner(Protocol):
    """What the transport needs of its connection."""

    _transport_proto: Transport | None

    def _data_received(self, data: bytes) -> None: ...

    def _transport_lost(self, transport_proto: Transport, exc: Exception | None) -> None: ...

    def _set_write_paused(self, paused: bool) -> None: ...


class Transport(asyncio.Protocol):
    """asyncio glue: forwards everything to the owning connection, as long as it is
    that connection's current transport (recovery replaces it)."""

    def __init__(self, connection: TransportOwner) -> None:
        self.connection = connection
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        conn = self.connection
        if conn._transport_proto is self:
            conn._data_received(data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection._transport_lost(self, exc)

    def pause_writing(self) -> None:
        if self.connection._transport_proto is self:
            self.connection._set_write_paused(True)

    def resume_writing(self) -> None:
        if self.connection._transport_proto is self:
            self.connection._set_write_paused(False)
