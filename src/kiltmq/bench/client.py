"""A small AMQP 0-9-1 client written for load generation, on the sans-IO protocol core.

It is not the kiltmq client library: it does only what the benchmarks need, and does it
with as little Python per message as possible so that the load generator is not what
limits the measured broker.

* Everything is encoded and decoded with :mod:`kiltmq.protocol` (``spec`` method classes,
  ``frames.content_frames``, ``method_frame``). Publishers encode one basic.publish with
  its header and body once and write many copies of it per ``transport.write``; they
  respect TCP flow control through ``pause_writing``/``resume_writing``.
* Incoming bytes go through one frame scanner (:meth:`BenchClient.data_received`) that
  handles basic.deliver, its content header and its body frames in-line: it reads the
  delivery tag and the body size with ``struct.unpack_from`` at known offsets and counts
  the message, without building method objects or events. Every other method is decoded
  with its ``spec`` class and answered or handed to whoever awaits it. Splitting frames
  with :class:`~kiltmq.protocol.FrameReader` and assembling content with
  :class:`~kiltmq.protocol.Connection` gives the same results but costs several times as
  much CPU per delivery (a tuple, a slice, a method object and an event per frame), which
  on a two-core machine would make the generator compete with the broker it measures.
* Manual acknowledgements are sent as ``basic.ack(multiple=True)`` for the newest
  delivery tag every ``ack_every`` deliveries (100 by default), and for the rest once no
  delivery has arrived for :data:`ACK_DELAY` seconds, as real clients that batch acks
  do. One consuming channel per connection.

Heartbeats are disabled (tune heartbeat 0): benchmark connections live a few seconds.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast
from urllib.parse import unquote, urlsplit

from kiltmq.protocol import spec
from kiltmq.protocol.connection import negotiate
from kiltmq.protocol.errors import AMQPError, FrameError, error_for
from kiltmq.protocol.frames import content_frames, content_header_payload, method_frame
from kiltmq.protocol.spec import METHODS, BasicProperties, Method

__all__ = ["URL", "BenchClient", "connect", "encode_publish", "parse_url"]

M = TypeVar("M", bound=Method)

_S_FRAME = struct.Struct(">BHI")
_S_I = struct.Struct(">I")
_S_Q = struct.Struct(">Q")
# A whole basic.ack frame: frame header, class, method, delivery tag, multiple, frame end.
_S_ACK = struct.Struct(">BHIHHQBB")
_unpack_frame = _S_FRAME.unpack_from
_unpack_i = _S_I.unpack_from
_unpack_q = _S_Q.unpack_from
_DELIVER = spec.BasicDeliver.INDEX
_FRAME_END = spec.FRAME_END
_CONTENT_INDEXES = frozenset(i for i, m in METHODS.items() if m.HAS_CONTENT)
_monotonic_ns = time.monotonic_ns

FRAME_MAX = 131072
#: Deliveries not yet acknowledged are acknowledged after this many seconds without more.
ACK_DELAY = 0.002
CHANNEL_MAX = 2047


@dataclass(frozen=True)
class URL:
    """The parts of an ``amqp://user:password@host:port/vhost`` URL the generator needs."""

    host: str
    port: int
    username: str
    password: str
    vhost: str

    def __str__(self) -> str:
        return f"amqp://{self.host}:{self.port}/{self.vhost.replace('/', '%2F')}"


def parse_url(url: str) -> URL:
    """Parse an AMQP URL; defaults are guest/guest on 127.0.0.1:5672, vhost ``/``."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", ""):
        raise ValueError(f"only amqp:// URLs are supported by the load generator: {url!r}")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return URL(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or spec.PORT,
        username=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        vhost=unquote(path) if path else "/",
    )


def encode_publish(
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: BasicProperties | None = None,
    channel: int = 1,
    frame_max: int = FRAME_MAX,
) -> bytes:
    """basic.publish, its content header and body frames, ready to write."""
    return content_frames(
        channel,
        spec.BasicPublish(exchange=exchange, routing_key=routing_key).encode(),
        content_header_payload(60, len(body), properties),
        body,
        frame_max,
    )


class BenchClient(asyncio.Protocol):
    """One AMQP connection. Create with :func:`connect`."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.transport: asyncio.Transport | None = None
        self.server_properties: dict[str, object] = {}
        self.frame_max = FRAME_MAX
        self.error: BaseException | None = None
        loop = asyncio.get_running_loop()
        self._opened: asyncio.Future[None] = loop.create_future()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._waiters: dict[int, deque[tuple[tuple[type[Method], ...], asyncio.Future[Method]]]]
        self._waiters = {}
        self._rest = b""
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        # Content in progress: remaining body bytes, -1 between messages, and whether it
        # belongs to a delivery (counted) or another content method (skipped).
        self._left = -1
        self._size = 0
        self._counted = False
        # Consumer state, read and written in data_received.
        self.delivered = 0
        self.ack_channel = 0  # 0: no acks (no-ack consumer)
        self.ack_every = 100
        self._unacked = 0
        self._tag = 0
        self._flush: asyncio.TimerHandle | None = None
        #: When not None, ``now - sent`` (ns) is appended for every delivery; ``sent`` is
        #: the first 8 bytes of the body, a big-endian ``time.monotonic_ns()``.
        self.latencies: list[int] | None = None
        #: Called with :attr:`delivered` after every socket read that delivered messages.
        self.on_delivered: Callable[[int], None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(spec.PROTOCOL_HEADER)

    def connection_lost(self, exc: Exception | None) -> None:
        error = self.error or exc or ConnectionResetError("connection closed by the broker")
        self._fail_all(error)
        if not self._closed.done():
            self._closed.set_result(None)
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self._rest + data if self._rest else data
        n = len(buf)
        pos = 0
        left = self._left
        delivered = self.delivered
        before = delivered
        unacked = self._unacked
        ack_every = self.ack_every
        ack_channel = self.ack_channel
        tag = self._tag
        latencies = self.latencies
        write = cast(asyncio.Transport, self.transport).write
        while n - pos > 7:
            ftype, channel, size = _unpack_frame(buf, pos)
            end = pos + 7 + size
            if end >= n:
                break
            if buf[end] != _FRAME_END:
                self._protocol_error(FrameError(f"frame end octet is {buf[end]:#04x}"))
                return
            if ftype == 3:  # body
                if left < 0:
                    self._protocol_error(FrameError("unexpected content body frame"))
                    return
                if latencies is not None and left == self._size and self._counted:
                    latencies.append(_monotonic_ns() - _unpack_q(buf, pos + 7)[0])
                left -= size
                if left <= 0:
                    left = -1
                    if self._counted:
                        delivered += 1
                        if ack_channel:
                            unacked += 1
                            if unacked >= ack_every:
                                write(_S_ACK.pack(1, ack_channel, 13, 60, 80, tag, 1, 0xCE))
                                unacked = 0
            elif ftype == 1:  # method
                (index,) = _unpack_i(buf, pos + 7)
                if index == _DELIVER:
                    # class, method, consumer-tag (shortstr), delivery-tag (longlong)
                    (tag,) = _unpack_q(buf, pos + 12 + buf[pos + 11])
                    self._counted = True
                    left = 0
                else:
                    if index in _CONTENT_INDEXES:
                        self._counted = False
                        left = 0
                    self._method(channel, index, buf[pos + 7 : end])
            elif ftype == 2:  # content header: class, weight, body size
                (size,) = _unpack_q(buf, pos + 11)
                self._size = size
                left = size
                if size == 0:
                    left = -1
                    if self._counted:
                        delivered += 1
                        if ack_channel:
                            unacked += 1
            pos = end + 1  # heartbeats (type 8) need nothing
        self._rest = buf[pos:] if pos < n else b""
        self._left = left
        self._tag = tag
        self._unacked = unacked
        if unacked and self._flush is None:
            # Acknowledge the rest if nothing more arrives soon.
            self._flush = asyncio.get_running_loop().call_later(ACK_DELAY, self._flush_acks)
        if delivered != before:
            self.delivered = delivered
            if self.on_delivered is not None:
                self.on_delivered(delivered)

    def _flush_acks(self) -> None:
        self._flush = None
        if self._unacked and self.ack_channel and self.transport is not None:
            self.transport.write(_S_ACK.pack(1, self.ack_channel, 13, 60, 80, self._tag, 1, 0xCE))
            self._unacked = 0

    # -- methods other than deliveries ----------------------------------------------------------

    def _method(self, channel: int, index: int, payload: bytes) -> None:
        cls = METHODS.get(index)
        if cls is None:
            self._protocol_error(FrameError(f"unknown method {index >> 16}.{index & 0xFFFF}"))
            return
        method = cls.decode(payload)
        if channel == 0:
            self._connection_method(method)
            return
        if isinstance(method, spec.ChannelClose):
            self._send(channel, spec.ChannelCloseOk())
            error = error_for(
                method.reply_code,
                method.reply_text,
                method.class_id,
                method.method_id,
                scope="channel",
            )
            self._fail_channel(channel, error)
            if self.error is None:
                self.error = error
            return
        waiters = self._waiters.get(channel)
        if waiters:
            expected, future = waiters[0]
            if isinstance(method, expected):
                waiters.popleft()
                if not future.done():
                    future.set_result(method)
        # Anything else (basic.cancel from the broker, confirms, returns) is ignored.

    def _connection_method(self, method: Method) -> None:
        if isinstance(method, spec.ConnectionStart):
            self.server_properties = dict(method.server_properties or {})
            response = f"\0{self.url.username}\0{self.url.password}".encode()
            self._send(
                0,
                spec.ConnectionStartOk(
                    client_properties={
                        "product": "kiltmq-bench",
                        "capabilities": {"consumer_cancel_notify": True},
                    },
                    mechanism="PLAIN",
                    response=response,
                    locale="en_US",
                ),
            )
        elif isinstance(method, spec.ConnectionTune):
            self.frame_max = negotiate(FRAME_MAX, method.frame_max)
            channel_max = negotiate(CHANNEL_MAX, method.channel_max)
            self._send(0, spec.ConnectionTuneOk(channel_max, self.frame_max, 0))
            self._send(0, spec.ConnectionOpen(virtual_host=self.url.vhost))
        elif isinstance(method, spec.ConnectionOpenOk):
            if not self._opened.done():
                self._opened.set_result(None)
        elif isinstance(method, spec.ConnectionClose):
            self._send(0, spec.ConnectionCloseOk())
            self.error = error_for(
                method.reply_code,
                method.reply_text,
                method.class_id,
                method.method_id,
                scope="connection",
            )
            self._fail_all(self.error)
            if self.transport is not None:
                self.transport.close()
        elif isinstance(method, spec.ConnectionCloseOk) and self.transport is not None:
            self.transport.close()
        # connection.blocked/unblocked: TCP back-pressure already pauses the writer.

    def _protocol_error(self, error: AMQPError) -> None:
        self.error = error
        self._fail_all(error)
        if self.transport is not None:
            self.transport.abort()

    def _fail_channel(self, channel: int, error: BaseException) -> None:
        for _, future in self._waiters.pop(channel, ()):
            if not future.done():
                future.set_exception(error)

    def _fail_all(self, error: BaseException) -> None:
        for channel in list(self._waiters):
            self._fail_channel(channel, error)
        if not self._opened.done():
            self._opened.set_exception(error)

    # -- sending --------------------------------------------------------------------------

    def _send(self, channel: int, method: Method) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(method_frame(channel, method))

    def write(self, data: bytes) -> None:
        """Write pre-encoded frames."""
        assert self.transport is not None
        self.transport.write(data)

    @property
    def paused(self) -> bool:
        """True while the transport's write buffer is above its high-water mark."""
        return self._paused

    async def wait_writable(self) -> None:
        """Return once the transport accepts writes again (or the connection is gone)."""
        while self._paused and self.error is None:
            self._resumed = asyncio.get_running_loop().create_future()
            await self._resumed
        if self.error is not None:
            raise self.error

    async def drain(self) -> None:
        """Wait until everything written has been handed to the kernel."""
        transport = self.transport
        while (
            transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() > 0
        ):
            await asyncio.sleep(0.001)

    async def call(self, channel: int, method: Method, response: type[M]) -> M:
        """Send a synchronous method and wait for its reply on ``channel``."""
        if self.error is not None:
            raise self.error
        future: asyncio.Future[Method] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, deque()).append(((response,), future))
        self._send(channel, method)
        return cast(M, await future)

    def send(self, channel: int, method: Method) -> None:
        """Send an asynchronous method (or a synchronous one with no-wait)."""
        self._send(channel, method)

    async def open_channel(self, channel: int = 1) -> int:
        await self.call(channel, spec.ChannelOpen(), spec.ChannelOpenOk)
        return channel

    async def close(self) -> None:
        """connection.close, waiting (boundedly) for close-ok."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._send(0, spec.ConnectionClose(reply_code=200, reply_text="bye"))
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), 5)
        except TimeoutError:
            transport.abort()

    # -- helpers for the scenarios ------------------------------------------------------------

    async def consume(
        self, channel: int, queue: str, *, no_ack: bool, prefetch: int, ack_every: int = 0
    ) -> None:
        """Start a consumer; deliveries are counted in :attr:`delivered`."""
        if prefetch:
            await self.call(channel, spec.BasicQos(prefetch_count=prefetch), spec.BasicQosOk)
        self.ack_every = 0 if no_ack else (ack_every or min(100, max(1, prefetch // 4)))
        self.ack_channel = 0 if no_ack else channel
        await self.call(
            channel,
            spec.BasicConsume(queue=queue, consumer_tag=f"bench-{queue}", no_ack=no_ack),
            spec.BasicConsumeOk,
        )

    def server_version(self) -> str:
        product = self.server_properties.get("product", "?")
        version = self.server_properties.get("version", "?")
        if isinstance(product, bytes):
            product = product.decode(errors="replace")
        if isinstance(version, bytes):
            version = version.decode(errors="replace")
        return f"{product} {version}"


async def connect(url: str | URL, timeout: float = 10.0) -> BenchClient:
    """Open a connection (TCP, handshake, tune, open) within ``timeout`` seconds."""
    parsed = parse_url(url) if isinstance(url, str) else url
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(
        loop.create_connection(lambda: BenchClient(parsed), parsed.host, parsed.port),
        timeout,
    )
    try:
        await asyncio.wait_for(asyncio.shield(client._opened), timeout)
    except BaseException:
        if client.transport is not None:
            client.transport.abort()
        raise
    return client
