"""Raw connections that record what they read in a :class:`~.transcript.Transcript`.

A :class:`RecordingConnection` is the shared raw client (:mod:`kiltmq.bench.rawclient`)
with per-channel inboxes: a scenario decides every frame it sends (legal ones through the
protocol core, illegal ones as raw bytes) and every reply it reads is recorded.

Ordering rules, so that a transcript does not depend on timing:

* Replies are read per channel. :meth:`RecordingChannel.call` waits for the reply to the
  method it sent (or channel.close / connection.close) and leaves asynchronous methods
  (basic.deliver, basic.return, basic.ack, basic.cancel ...) where they are, for
  :meth:`RecordingChannel.receive` to read later in their arrival order.
* Nothing is recorded when it arrives, only when the scenario reads it, so entries of
  different connections appear in the order the scenario reads them.
* A read that gets nothing in :data:`REPLY_TIMEOUT` seconds records ``TIMEOUT`` and aborts
  the scenario (:class:`ScenarioAborted`), so a broker that does not answer produces a
  transcript difference, never a hang.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from kiltmq.bench.rawclient import RawClient
from kiltmq.protocol import (
    BasicProperties,
    ContentReceived,
    Event,
    HeartbeatReceived,
    Method,
    MethodReceived,
    ProtocolError,
    spec,
)
from kiltmq.protocol.dialect import AMQP_0_9_1, Dialect

from .transcript import Closed, Item, Transcript

REPLY_TIMEOUT = 5.0
"""Seconds to wait for any single reply before recording TIMEOUT."""

# Methods the server sends on its own initiative on a channel.
ASYNC_METHODS = frozenset(
    {
        "basic.deliver",
        "basic.return",
        "basic.ack",
        "basic.nack",
        "basic.cancel",
        "channel.flow",
    }
)


class ScenarioAborted(Exception):
    """A reply did not come; the transcript ends with a TIMEOUT entry."""


CLIENT_CAPABILITIES: dict[str, Any] = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
}


# Capabilities clients look for (pika, aio-pika, kombu, the RabbitMQ Java client). RabbitMQ
# also announces consumer_priorities and direct_reply_to, features beyond this suite.
CORE_CAPABILITIES = frozenset(
    {
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    }
)


def server_capabilities(start: spec.ConnectionStart) -> list[str]:
    """The core capabilities the server announces as true."""
    caps = (start.server_properties or {}).get("capabilities")
    if not isinstance(caps, dict):
        return []
    return sorted(k for k, v in caps.items() if v is True and k in CORE_CAPABILITIES)



class RecordingConnection(RawClient):
    """The raw client with per-channel inboxes, recording what the scenario reads."""

    def __init__(
        self, transcript: Transcript, label: str, dialect: Dialect = AMQP_0_9_1
    ) -> None:
        super().__init__(dialect)
        self.answer_close = True  # as every client does
        self.t = transcript
        self.label = label
        self.inboxes: dict[int, asyncio.Queue[Item]] = {}
        self.eof_item = Closed()
        # Items put in several inboxes (connection.close, EOF) are recorded once.
        self._recorded: list[Item] = []
        self._next_channel = 1

    # -- plumbing -------------------------------------------------------------------------

    def inbox(self, channel: int) -> asyncio.Queue[Item]:
        q = self.inboxes.get(channel)
        if q is None:
            q = self.inboxes[channel] = asyncio.Queue()
        return q

    def event_received(self, event: Event) -> None:
        if isinstance(event, HeartbeatReceived):
            return  # counted in self.heartbeats
        if isinstance(event, ProtocolError):
            self.inbox(0)
            for q in self.inboxes.values():
                q.put_nowait(event)
            return
        assert isinstance(event, MethodReceived | ContentReceived)
        if event.channel == 0:
            if isinstance(event.method, spec.ConnectionClose):
                # The scenario records the close when it reads it, on whatever channel
                # it was waiting.
                for ch, q in self.inboxes.items():
                    if ch != 0:
                        q.put_nowait(event)
            self.inbox(0).put_nowait(event)
            return
        self.inbox(event.channel).put_nowait(event)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.inbox(0)
        for q in self.inboxes.values():
            q.put_nowait(self.eof_item)

    async def read_item(self, channel: int, timeout: float = REPLY_TIMEOUT) -> Item:
        q = self.inbox(channel)
        try:
            return await asyncio.wait_for(q.get(), timeout)
        except TimeoutError:
            self.t.add(self.label if channel == 0 else f"{self.label}/{channel}", "TIMEOUT")
            raise ScenarioAborted(f"{self.label} channel {channel}: no reply") from None

    def record(self, who: str, item: Item) -> None:
        """Add ``item`` to the transcript unless it was recorded already."""
        if isinstance(item, Closed | ProtocolError) or (
            isinstance(item, MethodReceived) and isinstance(item.method, spec.ConnectionClose)
        ):
            if any(seen is item for seen in self._recorded):
                return
            self._recorded.append(item)
        self.t.add_item(who, item)

    # -- connection level -----------------------------------------------------------------

    async def expect(self, timeout: float = REPLY_TIMEOUT) -> Item:
        """Read and record the next item on channel 0."""
        item = await self.read_item(0, timeout)
        self.record(self.label, item)
        return item

    async def try_handshake(
        self,
        *,
        username: str,
        password: str,
        vhost: str = "/",
        heartbeat: int | None = 0,
        frame_max: int | None = None,
        channel_max: int | None = None,
        record: bool = False,
        mechanism: str = "PLAIN",
        header: bytes | None = None,
        client_properties: dict[str, Any] | None = None,
    ) -> bool:
        """Header, start/start-ok, tune/tune-ok, open/open-ok. ``None`` for a tune value
        means "accept the server's"; ``header`` replaces the dialect's protocol header
        (another header naming the same dialect); ``client_properties`` are sent besides
        the product and capabilities. Returns True when the connection is
        open; a reply other than the expected one is recorded."""
        self.core.send_protocol_header()
        if header is None:
            self.flush()
        else:
            self.core.data_to_send()  # the dialect's own header, replaced
            self.send_raw(header)
        item = await self.read_item(0)
        if not (isinstance(item, MethodReceived) and isinstance(item.method, spec.ConnectionStart)):
            self.record(self.label, item)
            return False
        start = item.method
        if record:
            mechanisms = sorted(start.mechanisms.decode().split())
            self.t.add(
                self.label,
                start.NAME,
                {
                    "version": (start.version_major, start.version_minor),
                    "has_plain": "PLAIN" in mechanisms,
                    "locales": start.locales,
                    "capabilities": server_capabilities(start),
                },
            )
        self.send_start_ok(
            username, password, mechanism, CLIENT_CAPABILITIES, "kiltmq compat test client",
            client_properties,
        )
        item = await self.read_item(0)
        if not (isinstance(item, MethodReceived) and isinstance(item.method, spec.ConnectionTune)):
            self.record(self.label, item)
            return False
        tune = item.method
        if record:
            self.t.add_method(self.label, tune)
        self.send_tune_ok(tune, heartbeat=heartbeat, frame_max=frame_max, channel_max=channel_max)
        self.send(0, spec.ConnectionOpen(virtual_host=vhost))
        item = await self.read_item(0)
        opened = isinstance(item, MethodReceived) and isinstance(
            item.method, spec.ConnectionOpenOk
        )
        if record or not opened:
            self.record(self.label, item)
        return opened

    async def channel(self, number: int | None = None, record: bool = False) -> RecordingChannel:
        """Open a channel (the next free number unless given)."""
        if number is None:
            number = self._next_channel
            self._next_channel += 1
        ch = RecordingChannel(self, number)
        self.inbox(number)
        if record:
            await ch.call(spec.ChannelOpen())
        else:
            self.send(number, spec.ChannelOpen())
            item = await self.read_item(number)
            open_ok = type(self.core.dialect.channel_open_ok)
            if not (isinstance(item, MethodReceived) and isinstance(item.method, open_ok)):
                self.record(ch.who, item)
                raise ScenarioAborted(f"channel.open on {number} failed: {item}")
        return ch

    async def close(self, timeout: float = REPLY_TIMEOUT) -> None:
        """Close politely and record the outcome."""
        if self.closed:
            return
        self.send(0, self.core.dialect.connection_close(reply_code=200, reply_text="bye"))
        while True:
            item = await self.read_item(0, timeout)
            if isinstance(item, Closed) or (
                isinstance(item, MethodReceived)
                and not isinstance(item.method, spec.ConnectionOpenOk)
            ):
                self.record(self.label, item)
            if isinstance(item, Closed):
                return
            if isinstance(item, MethodReceived) and isinstance(item.method, spec.ConnectionCloseOk):
                return

    async def wait_eof(self, timeout: float = REPLY_TIMEOUT) -> None:
        """Read channel 0 until the server closes: a connection.close (after which the
        socket's fate is not recorded: RabbitMQ leaves closing it to the client) or the
        socket's EOF without a close method (returns at once if that was already read)."""
        if any(seen is self.eof_item for seen in self._recorded):
            return
        while True:
            item = await self.expect(timeout)
            if isinstance(item, Closed) or (
                isinstance(item, MethodReceived) and isinstance(item.method, spec.ConnectionClose)
            ):
                return


class RecordingChannel:
    """One channel of a :class:`RecordingConnection`."""

    def __init__(self, conn: RecordingConnection, number: int) -> None:
        self.conn = conn
        self.number = number
        self.who = f"{conn.label}/{number}"
        self.pending: deque[Item] = deque()  # asynchronous items set aside by call()
        self._acked: set[int] = set()
        self._nacked: set[int] = set()
        self.confirm_items: deque[Item] = deque()  # basic.ack/nack set aside
        self.confirming = False  # confirm.select-ok seen
        self.published = 0  # messages published since then (the last confirm tag)

    @property
    def t(self) -> Transcript:
        return self.conn.t

    def _is_confirm(self, item: Item) -> bool:
        return (
            self.confirming
            and isinstance(item, MethodReceived)
            and isinstance(item.method, spec.BasicAck | spec.BasicNack)
        )

    async def call(self, method: Method, *, raw: bool = False) -> Item:
        """Send ``method`` and wait for its reply, channel.close or connection.close.
        Asynchronous items arriving meanwhile are kept for :meth:`receive` (publisher
        confirms for :meth:`confirms`)."""
        if raw:
            self.conn.send_raw_method(self.number, method)
        else:
            self.conn.send(self.number, method)
        expected = set(method.RESPONSES)
        while True:
            item = await self.conn.read_item(self.number)
            if isinstance(item, MethodReceived | ContentReceived) and (
                item.method.NAME in ASYNC_METHODS and item.method.NAME not in expected
            ):
                (self.confirm_items if self._is_confirm(item) else self.pending).append(item)
                continue
            self.conn.record(self.who, item)
            confirm_ok = isinstance(item, MethodReceived) and isinstance(
                item.method, spec.ConfirmSelectOk
            )
            if confirm_ok and not self.confirming:
                self.confirming = True
                self.published = 0
            return item

    def send(self, method: Method, *, raw: bool = False) -> None:
        """Send a method that has no reply (basic.ack, basic.nack ...)."""
        if raw:
            self.conn.send_raw_method(self.number, method)
        else:
            self.conn.send(self.number, method)

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | str = b"",
        *,
        mandatory: bool = False,
        headers: dict[str, Any] | None = None,
        properties: BasicProperties | None = None,
    ) -> None:
        if isinstance(body, str):
            body = body.encode()
        if properties is None:
            properties = BasicProperties(headers=headers) if headers else BasicProperties()
        self.conn.core.send_content(
            self.number,
            spec.BasicPublish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
            properties,
            body,
        )
        self.conn.flush()
        if self.confirming:
            self.published += 1

    async def settle(self) -> None:
        """Wait until the broker confirmed everything published so far on this channel
        (which must be in confirm mode), so that queue counts that follow are exact."""
        assert self.confirming, "settle() needs confirm.select first"
        await self.confirms(self.published)

    async def receive(self, timeout: float = REPLY_TIMEOUT) -> Item:
        """The next asynchronous item (delivery, return, cancel, close), recorded. On a
        channel in confirm mode, basic.ack/nack are left for :meth:`confirms`."""
        while True:
            if self.pending:
                item = self.pending.popleft()
            else:
                item = await self.conn.read_item(self.number, timeout)
            if self._is_confirm(item):
                self.confirm_items.append(item)
                continue
            self.conn.record(self.who, item)
            return item

    async def receive_n(self, n: int) -> list[Item]:
        return [await self.receive() for _ in range(n)]

    async def confirms(self, last_tag: int) -> None:
        """Read basic.ack/basic.nack until every tag up to ``last_tag`` is settled and
        record the tags settled since the last call as one ``confirms`` entry: brokers may
        coalesce acks with ``multiple`` differently. Deliveries and returns arriving
        meanwhile are kept for :meth:`receive`; a close ends the wait (recorded)."""
        acked: set[int] = set()
        nacked: set[int] = set()
        while not all(t in self._acked or t in self._nacked for t in range(1, last_tag + 1)):
            if self.confirm_items:
                item = self.confirm_items.popleft()
            else:
                item = await self.conn.read_item(self.number)
            if not isinstance(item, MethodReceived) or not isinstance(
                item.method, spec.BasicAck | spec.BasicNack
            ):
                if isinstance(item, Closed | ProtocolError) or (
                    isinstance(item, MethodReceived)
                    and isinstance(item.method, spec.ChannelClose | spec.ConnectionClose)
                ):
                    self.conn.record(self.who, item)
                    return
                self.pending.append(item)
                continue
            m = item.method
            if m.multiple:
                tags = {
                    t
                    for t in range(1, m.delivery_tag + 1)
                    if t not in self._acked and t not in self._nacked
                }
            else:
                tags = {m.delivery_tag}
            (acked if isinstance(m, spec.BasicAck) else nacked).update(tags)
            (self._acked if isinstance(m, spec.BasicAck) else self._nacked).update(tags)
        self.t.add(self.who, "confirms", {"acked": sorted(acked), "nacked": sorted(nacked)})

    async def get(self, queue: str, no_ack: bool = False) -> Item:
        return await self.call(spec.BasicGet(queue=queue, no_ack=no_ack))

    async def drain(self, queue: str, limit: int = 50) -> list[str]:
        """basic.get (no_ack) until get-empty; record the bodies as one entry."""
        bodies: list[str] = []
        for _ in range(limit):
            self.conn.send(self.number, spec.BasicGet(queue=queue, no_ack=True))
            item = await self.conn.read_item(self.number)
            if isinstance(item, ContentReceived):
                bodies.append(item.body.decode())
                continue
            if not (
                isinstance(item, MethodReceived) and isinstance(item.method, spec.BasicGetEmpty)
            ):
                self.conn.record(self.who, item)
            break
        self.t.add(self.who, "drained", {"queue": queue, "bodies": bodies})
        return bodies

    async def close(self) -> Item:
        return await self.call(spec.ChannelClose(reply_code=200, reply_text="bye"))
