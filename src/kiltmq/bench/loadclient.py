"""The raw client as the benchmarks' load generator: fast publishing, counted deliveries.

Publishers encode basic.publish with its header and body once (:func:`encode_publish`) and
write many copies per :meth:`~kiltmq.bench.rawclient.RawClient.send_raw`, pausing while
the transport's buffer is full (:attr:`LoadClient.paused`, :meth:`LoadClient.wait_writable`).

:meth:`LoadClient.consume` and :meth:`LoadClient.select_confirms` switch the connection to
a frame scanner that counts basic.deliver (with its content header and body frames) and
publisher confirms in-line, reading the delivery tag and body size at fixed offsets without
method objects or events, and hands every other frame to the core as before. Going through
the core costs several times as much CPU per delivery, which on a two-core machine would
make the load generator compete with the broker it measures. Manual acknowledgements are
sent as ``basic.ack(multiple=True)`` for the newest delivery every ``ack_every``
deliveries, and for the rest once no delivery has come for :data:`ACK_DELAY` seconds, as
clients that batch acks do. One consuming channel per connection.

Heartbeats are off (tune heartbeat 0): benchmark connections live a few seconds.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from typing import Any, cast

from kiltmq.bench.rawclient import TIMEOUT, Disconnected, RawClient
from kiltmq.bench.url import URL, parse_url
from kiltmq.protocol import spec
from kiltmq.protocol.errors import FrameError
from kiltmq.protocol.frames import (
    FRAME_BODY,
    FRAME_HEAD,
    FRAME_HEADER,
    FRAME_METHOD,
    INITIAL_FRAME_MAX,
    SETTLE_FRAME,
    content_frames,
    content_header_payload,
)
from kiltmq.protocol.spec import BasicProperties

__all__ = ["ACK_DELAY", "LoadClient", "connect", "encode_publish"]

ACK_DELAY = 0.002
"""Deliveries not yet acknowledged are acknowledged after this many seconds without more."""

_unpack_head = FRAME_HEAD.unpack_from
_unpack_i = struct.Struct(">I").unpack_from
_unpack_q = struct.Struct(">Q").unpack_from
_pack_settle = SETTLE_FRAME.pack
_DELIVER = spec.BasicDeliver.INDEX
_ACK = spec.BasicAck.INDEX
_NACK = spec.BasicNack.INDEX
_CONFIRMS = frozenset((_ACK, _NACK))
_FRAME_END = spec.FRAME_END
_monotonic_ns = time.monotonic_ns


def _ack_frame(channel: int, tag: int) -> bytes:
    """basic.ack(delivery_tag=tag, multiple=True) on ``channel``, a whole frame."""
    ack = spec.BasicAck
    return _pack_settle(FRAME_METHOD, channel, 13, ack.CLASS_ID, ack.METHOD_ID, tag, 1, _FRAME_END)


def encode_publish(
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: BasicProperties | None = None,
    channel: int = 1,
    frame_max: int = INITIAL_FRAME_MAX,
) -> bytes:
    """basic.publish, its content header and body frames, ready to write."""
    return content_frames(
        channel,
        spec.BasicPublish(exchange=exchange, routing_key=routing_key).encode(),
        content_header_payload(spec.BasicPublish.CLASS_ID, len(body), properties),
        body,
        frame_max,
    )


class LoadClient(RawClient):
    """A :class:`RawClient` that publishes in batches and counts deliveries and confirms.
    Create with :func:`connect`."""

    def __init__(self) -> None:
        super().__init__()
        self.answer_close = True
        self._scanning = False
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        # The frame scanner's state (see _scan).
        self._rest = b""
        # A delivery's body frame that continues in later reads: its bytes still to come
        # (frame end included), its size and its first 8 body bytes; counted, not kept.
        self._skip = 0
        self._skip_size = 0
        self._skip_first = b""
        self._left = -1  # body bytes of a delivery still to come; 0: its header; -1: none
        self._size = 0
        self._tag = 0  # of the delivery being received
        self._done = 0  # of the last delivery received whole
        self._unacked = 0
        self._flush: asyncio.TimerHandle | None = None
        #: Deliveries counted since :meth:`consume`.
        self.delivered = 0
        self.ack_channel = 0  # 0: no acks (a no-ack consumer)
        self.ack_every = 100
        #: When not None, ``now - sent`` (ns) is appended for every delivery; ``sent`` is
        #: the first 8 bytes of the body, a big-endian ``time.monotonic_ns()``.
        self.latencies: list[int] | None = None
        #: Called with :attr:`delivered` after every socket read that delivered messages.
        self.on_delivered: Callable[[int], None] | None = None
        # Publisher confirms counted since select_confirms.
        self.confirm_channel = 0
        self.confirmed_upto = 0  # every delivery tag up to this one is confirmed
        self._confirmed_above: set[int] = set()
        self.nacked = 0

    # -- flow control ---------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """True while the transport's write buffer is above its high-water mark."""
        return self._paused

    async def wait_writable(self) -> None:
        """Return once the transport accepts writes again (or the connection is gone)."""
        while self._paused and self.error is None and not self.closed:
            self._resumed = asyncio.get_running_loop().create_future()
            await self._resumed
        if self.error is not None:
            raise self.error

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._scanning:
            self._scan(data)
        else:
            self.feed_core(data)

    # -- counting deliveries and confirms -------------------------------------------------

    async def consume(
        self, channel: int, queue: str, *, no_ack: bool, prefetch: int, ack_every: int = 0
    ) -> None:
        """Start a consumer whose deliveries are counted in :attr:`delivered` (and
        acknowledged in batches unless ``no_ack``)."""
        if prefetch:
            await self.request(channel, spec.BasicQos(prefetch_count=prefetch), spec.BasicQosOk)
        self.ack_every = 0 if no_ack else (ack_every or min(100, max(1, prefetch // 4)))
        self.ack_channel = 0 if no_ack else channel
        self._scanning = True
        await self.request(
            channel,
            spec.BasicConsume(queue=queue, consumer_tag=f"bench-{queue}", no_ack=no_ack),
            spec.BasicConsumeOk,
        )

    async def select_confirms(self, channel: int) -> None:
        """confirm.select; from now on the confirms on ``channel`` are counted in
        :attr:`confirmed` and :attr:`nacked`."""
        self.confirm_channel = channel
        self._scanning = True
        await self.request(channel, spec.ConfirmSelect(), spec.ConfirmSelectOk)

    @property
    def confirmed(self) -> int:
        """Publishes confirmed (acked or nacked) since :meth:`select_confirms`."""
        return self.confirmed_upto + len(self._confirmed_above)

    async def wait_confirm(self, timeout: float = 30.0) -> None:
        """Wait until more confirms arrive."""
        deadline = asyncio.get_running_loop().time() + timeout
        before = self.confirmed
        while self.confirmed == before:
            if self.error is not None:
                raise self.error
            if self.closed:
                raise Disconnected("the server closed the connection")
            await self.wait_for_data(deadline, "no publisher confirm")

    def _confirm(self, tag: int, multiple: bool) -> None:
        above = self._confirmed_above
        if multiple:
            if tag > self.confirmed_upto:
                self.confirmed_upto = tag
                self._confirmed_above = above = {t for t in above if t > tag}
        else:
            above.add(tag)
        while self.confirmed_upto + 1 in above:
            self.confirmed_upto += 1
            above.discard(self.confirmed_upto)

    def _scan(self, data: bytes) -> None:
        """data_received while counting: deliveries and confirms in-line, every other
        frame to the core."""
        pending = 0  # the size of a body frame completed at the start of data
        skip = self._skip
        if skip:
            if len(data) < skip:
                self._skip = skip - len(data)
                return
            if data[skip - 1] != _FRAME_END:
                self.error = FrameError(f"frame end octet is {data[skip - 1]:#04x}")
                cast(asyncio.Transport, self.transport).abort()
                return
            self._skip = 0
            pending = self._skip_size
            buf = data
            pos = skip
        else:
            buf = self._rest + data if self._rest else data
            pos = 0
        n = len(buf)
        left = self._left
        delivered = before = self.delivered
        unacked = self._unacked
        ack_every = self.ack_every
        ack_channel = self.ack_channel
        confirm_channel = self.confirm_channel
        tag = self._tag
        done = self._done
        latencies = self.latencies
        write = cast(asyncio.Transport, self.transport).write
        others: list[bytes] = []
        start = 0
        confirms = False
        while True:
            if pending:
                ftype = FRAME_BODY
                size = pending
                pending = 0
                first = self._skip_first
            else:
                if n - pos <= 7:
                    break
                ftype, channel, size = _unpack_head(buf, pos)
                end = pos + 7 + size
                if end >= n:
                    if ftype == FRAME_BODY and left > 0 and n - pos >= 15:
                        # A body continuing in later reads: what is left of it is only
                        # counted as it comes (a large body is not copied here).
                        self._skip = end + 1 - n
                        self._skip_size = size
                        self._skip_first = buf[pos + 7 : pos + 15]
                        pos = n
                    break
                if buf[end] != _FRAME_END:
                    self.error = FrameError(f"frame end octet is {buf[end]:#04x}")
                    cast(asyncio.Transport, self.transport).abort()
                    return
                first = buf
                start = pos
                pos = end + 1
            if ftype == FRAME_BODY and left > 0:  # a delivery's body
                if latencies is not None and left == self._size:
                    sent = _unpack_q(first, 0 if first is not buf else start + 7)[0]
                    latencies.append(_monotonic_ns() - sent)
                left -= size
                if left <= 0:
                    left = -1
                    delivered += 1
                    done = tag
                    if ack_channel:
                        unacked += 1
                        if unacked >= ack_every:
                            write(_ack_frame(ack_channel, tag))
                            unacked = 0
            elif ftype == FRAME_HEADER and left == 0:  # a delivery's header: its body size
                (size,) = _unpack_q(buf, start + 11)
                self._size = left = size
                if size == 0:
                    left = -1
                    delivered += 1
                    done = tag
                    if ack_channel:
                        unacked += 1
            elif ftype == FRAME_METHOD and (index := _unpack_i(buf, start + 7)[0]) == _DELIVER:
                # class, method, consumer-tag (shortstr), delivery-tag (longlong)
                (tag,) = _unpack_q(buf, start + 12 + buf[start + 11])
                left = 0
            elif ftype == FRAME_METHOD and index in _CONFIRMS and channel == confirm_channel:
                # class, method, delivery-tag (longlong), multiple (bit)
                if index == _NACK:
                    self.nacked += 1
                self._confirm(_unpack_q(buf, start + 11)[0], bool(buf[start + 19] & 1))
                confirms = True
            else:
                others.append(buf[start:pos])
        self._rest = buf[pos:] if pos < n else b""
        self._left = left
        self._tag = tag
        self._done = done
        self._unacked = unacked
        if unacked and self._flush is None:
            # Acknowledge the rest if nothing more arrives soon.
            self._flush = asyncio.get_running_loop().call_later(ACK_DELAY, self._flush_acks)
        if delivered != before:
            self.delivered = delivered
            if self.on_delivered is not None:
                self.on_delivered(delivered)
        if others:
            self.dispatch(self.core.receive_data(b"".join(others)))
        elif confirms:
            self.wake()

    def _flush_acks(self) -> None:
        self._flush = None
        if self._unacked and self.ack_channel and self.transport is not None:
            # Up to the last delivery received whole: one whose body is still on its way
            # is counted (and acknowledged) when it has come.
            self.send_raw(_ack_frame(self.ack_channel, self._done))
            self._unacked = 0


async def connect(url: str | URL, timeout: float = TIMEOUT, **options: Any) -> LoadClient:
    """:meth:`LoadClient.connect` to the server, user and vhost of an AMQP URL."""
    parsed = parse_url(url) if isinstance(url, str) else url
    return await LoadClient.connect(
        parsed.port,
        parsed.host,
        username=parsed.username,
        password=parsed.password,
        vhost=parsed.vhost,
        timeout=timeout,
        **options,
    )
