"""The asyncio side of a client connection: an :class:`asyncio.Protocol` that forwards
what the socket does to its connection, and the writer of the frames the connection
queues."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Protocol, cast

from kiltmq.client.errors import ConnectError
from kiltmq.client.url import ConnectionParameters
from kiltmq.event_loop import writes_vectors
from kiltmq.protocol.connection import Connection as ProtocolConnection
from kiltmq.protocol.frames import FRAME_END_OCTET
from kiltmq.protocol.spec import Method

__all__ = ["FrameWriter", "Transport", "TransportOwner"]

_FLUSH_THRESHOLD = 65536


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

    async def open(self, loop: asyncio.AbstractEventLoop, params: ConnectionParameters) -> None:
        """Connect to the broker (with TLS if ``params`` say so); :class:`ConnectError`
        if that fails."""
        try:
            await loop.create_connection(
                lambda: self,
                params.host,
                params.port,
                ssl=params.ssl_context(),
                server_hostname=params.tls_server_hostname(),
            )
        except OSError as exc:
            reason = (
                "connection refused"
                if isinstance(exc, ConnectionRefusedError)
                else exc.strerror or str(exc)
            )
            raise ConnectError(f"cannot connect to {params.display}: {reason}") from exc

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports (its TLS one too) do not derive from asyncio.Transport
        self.transport = transport = cast(asyncio.Transport, transport)
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


class FrameWriter:
    """Writes the frames queued in a connection's protocol core to its transport: in one
    ``transport.write`` per event-loop iteration, or at once when 64 KiB are pending, so
    a burst of publishes or acks costs one system call. A batch holding a large body
    (:meth:`send_content`) goes to ``transport.writelines`` unjoined where that is one
    vectored write (uvloop), so the body is not copied on its way to the socket."""

    def __init__(self, loop: asyncio.AbstractEventLoop, proto: ProtocolConnection) -> None:
        self.loop = loop
        self.proto = proto
        self.transport: asyncio.Transport | None = None
        self._flush_scheduled = False
        self._pending = 0
        self._large = False  # a body queued by send_content since the last flush
        self._vectored = False  # the transport's writelines is one vectored write

    def attach(self, transport: asyncio.Transport | None) -> None:
        """Write to ``transport`` from now on (None: no transport, nothing is written)."""
        self.transport = transport
        self._vectored = transport is not None and writes_vectors(transport)

    def reset(self, proto: ProtocolConnection) -> None:
        """Write for a new protocol core (a new transport follows)."""
        self.proto = proto
        self._pending = 0
        self._large = False

    def send_method(self, channel: int, method: Method) -> None:
        self.proto.send_method(channel, method)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def send_frames(self, data: bytes) -> None:
        """Queue pre-encoded frames (publishes, acks)."""
        self.proto.send_raw(data)
        pending = self._pending + len(data)
        if pending >= _FLUSH_THRESHOLD:
            self.flush()
        else:
            self._pending = pending
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.loop.call_soon(self.flush)

    def send_content(self, head: bytes, body: bytes) -> None:
        """Queue a publish of a large body: ``head`` (its frames up to the body frame's
        payload, :func:`~kiltmq.protocol.frames.content_head`), then the body object
        itself and the frame end."""
        proto = self.proto
        proto.send_raw(head)
        proto.send_raw(body)
        self._large = True
        self._pending += len(head) + len(body)
        self.send_frames(FRAME_END_OCTET)  # then flushed, or scheduled, as any frames

    def flush(self) -> None:
        """Write everything queued now."""
        self._flush_scheduled = False
        self._pending = 0
        transport = self.transport
        if self._large:
            self._large = False
            if transport is not None and self._vectored:
                parts = self.proto.data_to_send_parts()
                if parts and not transport.is_closing():
                    transport.writelines(parts)
                    self.proto.heartbeat.last_sent = self.loop.time()
                return
        data = self.proto.data_to_send()
        if data and transport is not None and not transport.is_closing():
            transport.write(data)
            self.proto.heartbeat.last_sent = self.loop.time()
