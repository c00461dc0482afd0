"""The network side: one :class:`ServerConnection` (an ``asyncio.Protocol``) per client,
output batching, flow control, reading and the close handshake.

Output batching
---------------
Everything sent to a client (method replies, deliveries from any publisher's
connection, confirms) is appended to the protocol core's output buffer; the buffer goes
out in one ``transport.write`` at the end of the ``data_received`` that caused it (a
delivery at the end of its publisher's read: no callback nor loop iteration of its own)
or, when no read did (timers, the store's commits), from a ``loop.call_soon`` callback
scheduled by the first write of the loop iteration. Deliveries stop (``can_send``
False) once a batch reaches :data:`OUTPUT_BATCH` bytes or the transport reports its
buffer full (``pause_writing``); they resume after the flush or ``resume_writing``, and
a connection whose transport is full is not read from either, so a client that does not
read cannot make the broker buffer without bound.

On uvloop, whose ``writelines`` is one ``writev``, a batch with bodies of 16 KiB or more
goes out with them unjoined (only the kernel copies them); asyncio's loop joins it once.

Reading
-------
A read of :data:`READ_TURN` bytes or more pauses reading that connection until the next
loop turn, so that a publisher with a backlog in its socket cannot hold up the other
connections (uvloop would otherwise read it up to 32 times in one turn).

Timers and TLS
--------------
The handshake timeout, the check for stalled content and heartbeats are in
:mod:`~kiltmq.broker.connection_timers`. A connection is first offered to its
:class:`~kiltmq.broker.endpoint.Endpoint`, which may make it wait (not read from) while
the listener is at its connection limit; once admitted, on an amqps listener the TLS
handshake runs (:mod:`~kiltmq.broker.tls_start`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol, cast

from kiltmq.broker.clock import Clock
from kiltmq.broker.connection_timers import ConnectionTimers, TimedBroker
from kiltmq.broker.endpoint import Endpoint
from kiltmq.broker.session import Session, SessionBroker, log_failure
from kiltmq.broker.tls_start import TlsStart
from kiltmq.event_loop import writes_vectors
from kiltmq.protocol import spec
from kiltmq.protocol.connection import LARGE_PIECE, Connection, Role
from kiltmq.protocol.frames import FRAME_END_OCTET

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_MESSAGE_SIZE_LIMIT",
    "OUTPUT_BATCH",
    "ServerBroker",
    "ServerConnection",
    "check_limits",
]

#: Delivery bytes buffered before the connection stops taking deliveries until a flush.
OUTPUT_BATCH = 256 * 1024
#: Transport write buffer high-water mark (pause_writing above it).
WRITE_BUFFER_HIGH = 1024 * 1024
#: A read at least this big pauses reading the connection until the next loop turn.
READ_TURN = 64 * 1024
#: How long to wait for connection.close-ok after sending connection.close.
CLOSE_TIMEOUT = 3.0
#: RabbitMQ's default ``max_message_size``: 128 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 134217728
#: RabbitMQ's ceiling for ``max_message_size``: 512 MiB.
MAX_MESSAGE_SIZE_LIMIT = 536870912
#: A connection counts its socket reads (writes) above this bit of one integer and the
#: bytes below it: one addition of ``bytes + _ONE_IO`` per read, where two counters
#: would take two (the bytes wrap only past 16 EiB).
_IO_SHIFT = 64
_ONE_IO = 1 << _IO_SHIFT
_BYTES = _ONE_IO - 1


def check_limits(max_message_size: int, content_timeout: float) -> None:
    """Raise ValueError unless the limits can be used.

    ``max_message_size``: the largest message body accepted, in bytes (RabbitMQ's
    default is 128 MiB, its ceiling 512 MiB); a larger one is refused when its content
    header arrives (channel.close 406). ``content_timeout``: seconds a half-sent message
    may go without a body frame before its connection is closed (505; 0: never).
    """
    if not 1 <= max_message_size <= MAX_MESSAGE_SIZE_LIMIT:
        raise ValueError(f"max_message_size must be from 1 to {MAX_MESSAGE_SIZE_LIMIT} bytes")
    if content_timeout < 0:
        raise ValueError("content_timeout must not be negative")


class ServerBroker(SessionBroker, TimedBroker, Protocol):
    """What a connection needs from the broker: its timeouts and message size limit,
    and to be told when a connection is made and lost (besides what its session
    needs)."""

    @property
    def clock(self) -> Clock: ...

    @property
    def handshake_timeout(self) -> float: ...

    @property
    def max_message_size(self) -> int: ...

    def connection_made(self, conn: ServerConnection) -> None: ...

    def connection_lost(self, conn: ServerConnection) -> None: ...


class _Reading:
    """The connections given output during the read running on one thread's event loop
    (None between reads), flushed at its end."""

    __slots__ = ("flush",)

    def __init__(self) -> None:
        self.flush: list[ServerConnection] | None = None


_per_thread = threading.local()


def _reading_here() -> _Reading:
    """This thread's :class:`_Reading` (each connection keeps it: reading an attribute of
    a ``threading.local`` on every read costs several times a plain one's)."""
    reading: _Reading | None = getattr(_per_thread, "reading", None)
    if reading is None:
        reading = _per_thread.reading = _Reading()
    return reading


class ServerConnection(ConnectionTimers, TlsStart):
    """One client connection: bytes in, events to the session, batched bytes out."""

    broker: ServerBroker

    def __init__(self, broker: ServerBroker, endpoint: Endpoint) -> None:
        self.broker = broker
        self.endpoint = endpoint
        self.core = Connection(Role.SERVER)
        self.core.max_body_size = broker.max_message_size
        self.loop = asyncio.get_running_loop()
        self._reading = _reading_here()
        self.clock = broker.clock
        self.transport: asyncio.Transport | None = None
        self.session: Session = None  # type: ignore[assignment]  # set in connection_made
        #: False while deliveries must wait (batch full or transport paused).
        self.can_send = True
        #: Set when a consumer was refused because of ``can_send``; cleared on resume.
        self.starved = False
        self.pending = 0
        #: Whether a body of LARGE_PIECE bytes or more was queued since the last flush.
        self._large = False
        #: Whether the transport writes a list of buffers without joining them (uvloop).
        self._vectored = False
        self._paused_writing = False
        #: Why reading is paused (a dict as a set: an empty one is a third the size).
        self._read_pauses: dict[str, None] = {}
        self._flush_scheduled = False
        self._closed = False
        self._lost = False
        #: Whether the endpoint admitted this connection (else it waits, unread).
        self._admitted = False
        self._tls_task: asyncio.Task[None] | None = None
        #: Bytes that arrived before the connection was served (None once it is).
        self._early: list[bytes] | None = []
        self._heartbeat_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._content_timer: asyncio.TimerHandle | None = None
        #: Channel -> (content method, body bytes received, when first seen so).
        self._partial: dict[int, tuple[spec.Method, int, float]] = {}
        #: For monitoring: when the client connected (seconds since the epoch), and the
        #: socket reads and writes with the bytes they carried, each kept as one integer
        #: (see :attr:`recv_oct`, :attr:`recv_cnt`) so that counting a read costs one
        #: addition.
        self.connected_at = time.time()
        self._received = 0
        self._sent = 0

    @property
    def recv_oct(self) -> int:
        """Bytes received (RabbitMQ's ``recv_oct``)."""
        return self._received & _BYTES

    @property
    def recv_cnt(self) -> int:
        """Socket reads (RabbitMQ's ``recv_cnt``)."""
        return self._received >> _IO_SHIFT

    @property
    def send_oct(self) -> int:
        """Bytes sent (RabbitMQ's ``send_oct``)."""
        return self._sent & _BYTES

    @property
    def send_cnt(self) -> int:
        """Socket writes (RabbitMQ's ``send_cnt``)."""
        return self._sent >> _IO_SHIFT

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport, but behave as one
        transport = cast(asyncio.Transport, transport)
        self._use_transport(transport)
        peer = transport.get_extra_info("peername")
        self.session = Session(self.broker, self, peer)
        self.broker.connection_made(self)
        self._admitted = self.endpoint.accept(self)
        if self._admitted:
            self._begin()
        else:
            transport.pause_reading()

    def admit(self) -> None:
        """The endpoint has a place for this waiting connection: serve it."""
        self._admitted = True
        if self._closed or self.transport is None:
            return
        self._begin()
        if self.endpoint.tls is None:
            self.transport.resume_reading()

    def _begin(self) -> None:
        timeout = self.broker.handshake_timeout
        if timeout:
            self._handshake_timer = self.clock.call_later(timeout, self._handshake_expired)
        context = self.endpoint.tls
        if context is None:
            early, self._early = self._early, None
            for data in early or ():
                self.data_received(data)
            return
        assert self.transport is not None
        self.transport.pause_reading()  # until start_tls reads for the handshake
        self._tls_task = self.loop.create_task(self._start_tls(context))
        self.loop.call_soon(self._hand_over_early_bytes)

    def _use_transport(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self._vectored = writes_vectors(transport)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if self._early is not None:  # not served yet: waiting, or TLS not yet up
            self._early.append(data)
            if not self._admitted and self.transport is not None:
                self.transport.pause_reading()  # once more: uvloop reads after connection_made
            return
        core = self.core
        core.heartbeat.last_received = self.clock.time()
        self._received += len(data) + _ONE_IO
        reading = self._reading
        outer = reading.flush
        others: list[ServerConnection] = []
        reading.flush = others
        try:
            events = core.receive_data(data)
            if events:
                self.session.handle(events)
        except Exception as exc:
            self.session.internal_error(exc)
        finally:
            reading.flush = outer
        if self._flush_scheduled or core.has_output:
            self.flush()
        for other in others:
            if other._flush_scheduled:
                other.flush()
        if len(data) >= READ_TURN and not self._closed:
            # uvloop (libuv) reads a busy socket again and again within one loop turn
            # (up to 32 times): a publisher with a backlog would hold up every other
            # connection. One big read per turn, as asyncio's own loop does.
            self.pause_reading("turn")
            self.loop.call_soon(self.resume_reading, "turn")

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:  # once, also after a failed TLS handshake
            return
        self._lost = True
        self._closed = True
        self.can_send = False
        for timer in (
            self._heartbeat_timer,
            self._close_timer,
            self._handshake_timer,
            self._content_timer,
        ):
            if timer is not None:
                timer.cancel()
        try:
            self.session.cleanup()
        except Exception as exc:
            log_failure(self.session.peer_name, "error while cleaning up", exc)
        self.broker.connection_lost(self)
        self.endpoint.release(self, self._admitted)
        # the session refers to this connection: let go of it, so that reference
        # counting frees both (and what the channels held) without the cycle collector
        self.session = None  # type: ignore[assignment]
        self._heartbeat_timer = self._close_timer = None
        self._handshake_timer = self._content_timer = None
        self._partial = {}

    def pause_writing(self) -> None:
        self._paused_writing = True
        self.can_send = False
        self.pause_reading("writing")

    def resume_writing(self) -> None:
        self._paused_writing = False
        self.resume_reading("writing")
        self.can_send = True
        self.starved = False
        self._resume_consumers()

    # -- output -----------------------------------------------------------------------

    def send_method(self, channel: int, method: spec.Method) -> None:
        self.core.send_method(channel, method)
        if not self._flush_scheduled:
            self.want_flush()

    def send_raw(self, data: bytes) -> None:
        self.core.send_raw(data)
        if not self._flush_scheduled:
            self.want_flush()

    def send_delivery(self, data: bytes, body: bytes | None = None) -> None:
        """Queue an encoded delivery; stop taking more once the batch is full. With
        ``body``, ``data`` is the delivery's frames up to its body frame's head, and the
        body and frame end are queued after it as they are (a large body is then copied
        once, into the batch, rather than also into a delivery of its own)."""
        core = self.core
        core.send_raw(data)
        if body is None:
            self.pending += len(data)
        else:
            core.send_raw(body)
            core.send_raw(FRAME_END_OCTET)
            size = len(body)
            self.pending += len(data) + size + 1
            if size >= LARGE_PIECE:
                self._large = True
        if self.pending >= OUTPUT_BATCH:
            self.can_send = False
        if not self._flush_scheduled:
            self.want_flush()

    def want_flush(self) -> None:
        """Have what is queued written at the end of the read running now, else at the
        end of this loop iteration."""
        if self._flush_scheduled:
            return
        self._flush_scheduled = True
        flush = self._reading.flush
        if flush is not None:
            flush.append(self)
        else:
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write everything queued in one ``transport.write`` (``writelines`` on uvloop)."""
        self._flush_scheduled = False
        if self._closed:
            return
        session = self.session
        if session.confirm_flushes:
            session.flush_confirms()
        transport = self.transport
        if self._large and self._vectored:
            parts = self.core.data_to_send_parts()
            if parts:
                assert transport is not None
                transport.writelines(parts)
            sent = sum(map(len, parts))
        else:
            data = self.core.data_to_send()
            if data:
                assert transport is not None
                transport.write(data)
            sent = len(data)
        self._large = False
        if sent:
            self._sent += sent + _ONE_IO
            self.core.heartbeat.last_sent = self.clock.time()
        self.pending = 0
        if not self._paused_writing:
            self.can_send = True
            if self.starved:
                self.starved = False
                self._resume_consumers()

    def _resume_consumers(self) -> None:
        try:
            self.session.resume_consumers()
        except Exception as exc:
            self.session.internal_error(exc)

    def send_unsupported_header(self) -> None:
        """Answer an unsupported protocol header with ours, then close (as the spec says)."""
        self.core.send_raw(spec.PROTOCOL_HEADER)
        self.close_after_flush()

    # -- reading ----------------------------------------------------------------------

    def pause_reading(self, reason: str) -> None:
        if not self._read_pauses and self.transport is not None and not self._closed:
            self.transport.pause_reading()
        self._read_pauses[reason] = None

    def resume_reading(self, reason: str) -> None:
        if reason not in self._read_pauses:
            return
        del self._read_pauses[reason]
        if not self._read_pauses and self.transport is not None and not self._closed:
            self.transport.resume_reading()

    # -- closing ----------------------------------------------------------------------

    def close_after_flush(self) -> None:
        """Flush what is queued, then close the socket."""
        self.flush()
        self._closed = True
        self.can_send = False
        if self.transport is not None:
            self.transport.close()

    def await_close_ok(self, *, core_failed: bool = False) -> None:
        """connection.close was queued: flush it and give the client a moment to answer
        with close-ok (which closes the socket) before giving up on it."""
        self.flush()
        if self._close_timer is None and not self._closed:
            self._close_timer = self.loop.call_later(
                1.0 if core_failed else CLOSE_TIMEOUT, self.abort
            )

    def abort(self) -> None:
        if self.transport is not None:
            self._closed = True
            self.can_send = False
            self.transport.abort()

    @property
    def closed(self) -> bool:
        return self._closed
