"""A small raw AMQP 0-9-1 test client that records what a broker answers.

It is the sans-IO core (``kiltmq.protocol.Connection(Role.CLIENT)``) over asyncio streams,
with nothing in between: a scenario decides every frame it sends (legal ones through the
core, illegal ones as raw bytes) and every reply it reads is appended to a
:class:`Transcript` as ``(who, method name, fields)``. Two transcripts of the same scenario
against two brokers can then be compared for equality.

Ordering rules, so that a transcript does not depend on timing:

* Replies are read per channel. :meth:`RawChannel.call` waits for the reply to the method
  it sent (or channel.close / connection.close) and leaves asynchronous methods
  (basic.deliver, basic.return, basic.ack, basic.cancel ...) where they are, for
  :meth:`RawChannel.receive` to read later in their arrival order.
* Nothing is recorded when it arrives, only when the scenario reads it, so entries of
  different connections appear in the order the scenario reads them.
* A read that gets nothing in :data:`REPLY_TIMEOUT` seconds records ``TIMEOUT`` and aborts the
  scenario (:class:`ScenarioAborted`), so a broker that does not answer produces a
  transcript difference, never a hang.

Names are normalized when recorded: the scenario's unique name prefix is removed, and
server-generated names (``amq.gen-...``, ``amq.ctag-...``) become ``amq.gen-#1``,
``amq.ctag-#2`` ... numbered in order of first appearance, so that identity is kept
(the same generated name always maps to the same placeholder).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from kiltmq.protocol import (
    BasicProperties,
    Connection,
    ContentReceived,
    Event,
    HeartbeatReceived,
    Method,
    MethodReceived,
    ProtocolError,
    Role,
    encode_table,
    method_frame,
    spec,
)

REPLY_TIMEOUT = 5.0
"""Seconds to wait for any single reply before recording TIMEOUT."""

Entry = tuple[str, str, dict[str, Any]]

_GEN = re.compile(r"amq\.(gen|ctag)-[A-Za-z0-9_\-]+")

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


class Closed:
    """Marker put in every inbox of a connection when its socket reaches EOF."""

    def __repr__(self) -> str:
        return "Closed()"


Item = MethodReceived | ContentReceived | ProtocolError | Closed


class Transcript:
    """The normalized record of one scenario run."""

    def __init__(self, prefix: str, text_rules: Iterable[tuple[str, str]] = ()) -> None:
        self.prefix = prefix
        self.entries: list[Entry] = []
        self._generated: dict[str, str] = {}
        self._text_rules = [(re.compile(p), r) for p, r in text_rules]

    def norm(self, value: Any) -> Any:
        """Normalize names inside ``value`` (strings, bytes, lists, dicts)."""
        if isinstance(value, str):
            value = value.replace(self.prefix, "")
            return _GEN.sub(self._generated_name, value)
        if isinstance(value, bytes):
            return self.norm(value.decode("utf-8", "replace"))
        if isinstance(value, dict):
            return {k: self.norm(v) for k, v in sorted(value.items())}
        if isinstance(value, list | tuple):
            return [self.norm(v) for v in value]
        return value

    def norm_text(self, text: str) -> str:
        text = self.norm(text)
        for pattern, replacement in self._text_rules:
            text = pattern.sub(replacement, text)
        return str(text)

    def _generated_name(self, match: re.Match[str]) -> str:
        name = match.group(0)
        if name not in self._generated:
            self._generated[name] = f"amq.{match.group(1)}-#{len(self._generated) + 1}"
        return self._generated[name]

    def add(self, who: str, what: str, fields: dict[str, Any] | None = None) -> None:
        self.entries.append((who, what, self.norm(fields or {})))

    def add_method(self, who: str, method: Method, extra: dict[str, Any] | None = None) -> None:
        fields = method.as_dict()
        if "reply_text" in fields:
            fields["reply_text"] = self.norm_text(fields["reply_text"])
        if extra:
            fields.update(extra)
        self.add(who, method.NAME, fields)

    def add_item(self, who: str, item: Item) -> None:
        if isinstance(item, Closed):
            self.add(who, "EOF")
        elif isinstance(item, ProtocolError):
            err = item.error
            self.add(who, "protocol-error", {"code": err.reply_code, "text": str(err)})
        elif isinstance(item, ContentReceived):
            props = item.properties()
            extra: dict[str, Any] = {"body": _body(item.body)}
            if props.headers:
                extra["headers"] = _stable_headers(props.headers)
            self.add_method(who, item.method, extra)
        else:
            self.add_method(who, item.method)

    def text(self) -> str:
        return "\n".join(f"{who:8} {what} {fields}" for who, what, fields in self.entries)


def _stable_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Headers without the volatile ``time`` of dead-lettering records (``x-death``)."""
    out = dict(headers)
    deaths = out.get("x-death")
    if isinstance(deaths, list):
        out["x-death"] = [
            {k: v for k, v in d.items() if k != "time"} if isinstance(d, dict) else d
            for d in deaths
        ]
    return out


def _body(body: bytes) -> str:
    """Short bodies as text, long ones as their size and digest."""
    if len(body) <= 200:
        return body.decode("utf-8", "replace")
    return f"<{len(body)} bytes, sha1 {hashlib.sha1(body).hexdigest()[:16]}>"


def auth_response(mechanism: str, username: str, password: str) -> bytes:
    """The start-ok response: PLAIN is NUL-separated, AMQPLAIN a field table without its
    length prefix (as RabbitMQ and txAMQP encode it)."""
    if mechanism == "AMQPLAIN":
        return encode_table({"LOGIN": username, "PASSWORD": password})[4:]
    return b"\x00" + username.encode() + b"\x00" + password.encode()


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


class RawConnection:
    """One socket with a client-role protocol core and per-channel inboxes."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        transcript: Transcript,
        label: str,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.t = transcript
        self.label = label
        self.proto = Connection(Role.CLIENT)
        self.inboxes: dict[int, asyncio.Queue[Item]] = {}
        self.heartbeats = 0
        self.closed = False
        self.raw_input = bytearray()  # everything received, for header-level scenarios
        self.eof = Closed()
        # Items put in several inboxes (connection.close, EOF) are recorded once.
        self._recorded: list[Item] = []
        self._next_channel = 1
        self._task: asyncio.Task[None] | None = None

    # -- plumbing -------------------------------------------------------------------------

    def inbox(self, channel: int) -> asyncio.Queue[Item]:
        q = self.inboxes.get(channel)
        if q is None:
            q = self.inboxes[channel] = asyncio.Queue()
        return q

    def start_reading(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self.raw_input += data
                for event in self.proto.receive_data(data):
                    self._dispatch(event)
                self.flush()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            self.inbox(0)
            for q in self.inboxes.values():
                q.put_nowait(self.eof)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, HeartbeatReceived):
            self.heartbeats += 1
            return
        if isinstance(event, ProtocolError):
            self.inbox(0)
            for q in self.inboxes.values():
                q.put_nowait(event)
            return
        assert isinstance(event, MethodReceived | ContentReceived)
        method = event.method
        if event.channel == 0:
            if isinstance(method, spec.ConnectionClose):
                # Answer at once, as every client does; the scenario records the close
                # when it reads it, on whatever channel it was waiting.
                self.send(0, spec.ConnectionCloseOk())
                for ch, q in self.inboxes.items():
                    if ch != 0:
                        q.put_nowait(event)
            self.inbox(0).put_nowait(event)
            return
        if isinstance(method, spec.ChannelClose):
            self.send(event.channel, spec.ChannelCloseOk())
        self.inbox(event.channel).put_nowait(event)

    def flush(self) -> None:
        data = self.proto.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def send(self, channel: int, method: Method) -> None:
        """Send a method through the protocol core (which checks it is legal)."""
        self.proto.send_method(channel, method)
        self.flush()

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are, bypassing the core's checks."""
        if not self.writer.is_closing():
            self.writer.write(data)

    def send_raw_method(self, channel: int, method: Method) -> None:
        self.send_raw(method_frame(channel, method))

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

    async def handshake(
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
    ) -> bool:
        """Header, start/start-ok, tune/tune-ok, open/open-ok. ``None`` for a tune value
        means "accept the server's". Returns True when the connection is open."""
        self.proto.send_protocol_header()
        self.flush()
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
        props: dict[str, Any] = {
            "product": "kiltmq compat test client",
            "capabilities": CLIENT_CAPABILITIES,
        }
        self.send(
            0,
            spec.ConnectionStartOk(
                client_properties=props,
                mechanism=mechanism,
                response=auth_response(mechanism, username, password),
                locale="en_US",
            ),
        )
        item = await self.read_item(0)
        if not (isinstance(item, MethodReceived) and isinstance(item.method, spec.ConnectionTune)):
            self.record(self.label, item)
            return False
        tune = item.method
        if record:
            self.t.add_method(self.label, tune)
        self.send(
            0,
            spec.ConnectionTuneOk(
                channel_max=tune.channel_max if channel_max is None else channel_max,
                frame_max=tune.frame_max if frame_max is None else frame_max,
                heartbeat=tune.heartbeat if heartbeat is None else heartbeat,
            ),
        )
        self.send(0, spec.ConnectionOpen(virtual_host=vhost))
        item = await self.read_item(0)
        if record or not (
            isinstance(item, MethodReceived) and isinstance(item.method, spec.ConnectionOpenOk)
        ):
            self.record(self.label, item)
        return isinstance(item, MethodReceived) and isinstance(item.method, spec.ConnectionOpenOk)

    async def channel(self, number: int | None = None, record: bool = False) -> RawChannel:
        """Open a channel (the next free number unless given)."""
        if number is None:
            number = self._next_channel
            self._next_channel += 1
        ch = RawChannel(self, number)
        self.inbox(number)
        if record:
            await ch.call(spec.ChannelOpen())
        else:
            self.send(number, spec.ChannelOpen())
            item = await self.read_item(number)
            if not (
                isinstance(item, MethodReceived) and isinstance(item.method, spec.ChannelOpenOk)
            ):
                self.record(ch.who, item)
                raise ScenarioAborted(f"channel.open on {number} failed: {item}")
        return ch

    async def close(self) -> None:
        """Close politely and record the outcome."""
        if self.closed:
            return
        self.send(0, spec.ConnectionClose(reply_code=200, reply_text="bye"))
        while True:
            item = await self.read_item(0)
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
        if any(seen is self.eof for seen in self._recorded):
            return
        while True:
            item = await self.expect(timeout)
            if isinstance(item, Closed) or (
                isinstance(item, MethodReceived) and isinstance(item.method, spec.ConnectionClose)
            ):
                return

    def abort(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.writer.close()


class RawChannel:
    """One channel of a :class:`RawConnection`."""

    def __init__(self, conn: RawConnection, number: int) -> None:
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
        self.conn.proto.send_content(
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


def parse_url(url: str) -> tuple[str, int, str, str, str]:
    """host, port, username, password, vhost of an amqp:// URL."""
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return (
        parts.hostname or "127.0.0.1",
        parts.port or 5672,
        unquote(parts.username or "guest"),
        unquote(parts.password or "guest"),
        vhost,
    )


class Context:
    """What a scenario gets: a transcript, unique names, and connection factories."""

    def __init__(self, url: str, text_rules: Iterable[tuple[str, str]] = ()) -> None:
        self.url = url
        self.host, self.port, self.username, self.password, self.vhost = parse_url(url)
        self.prefix = f"compat-{uuid.uuid4().hex[:10]}."
        self.t = Transcript(self.prefix, text_rules)
        self.connections: list[RawConnection] = []
        self.queues: set[str] = set()
        self.exchanges: set[str] = set()
        self._labels = 0

    def q(self, name: str) -> str:
        """A unique queue name, deleted after the scenario."""
        full = self.prefix + name
        self.queues.add(full)
        return full

    def x(self, name: str) -> str:
        """A unique exchange name, deleted after the scenario."""
        full = self.prefix + name
        self.exchanges.add(full)
        return full

    async def socket(self, label: str | None = None) -> RawConnection:
        """A TCP connection and nothing else: no header sent yet."""
        if label is None:
            self._labels += 1
            label = f"c{self._labels}"
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), REPLY_TIMEOUT
        )
        conn = RawConnection(reader, writer, self.t, label)
        self.connections.append(conn)
        conn.start_reading()
        return conn

    async def connect(
        self,
        label: str | None = None,
        *,
        record: bool = False,
        vhost: str | None = None,
        username: str | None = None,
        password: str | None = None,
        heartbeat: int | None = 0,
    ) -> RawConnection:
        conn = await self.socket(label)
        ok = await conn.handshake(
            username=self.username if username is None else username,
            password=self.password if password is None else password,
            vhost=self.vhost if vhost is None else vhost,
            heartbeat=heartbeat,
            record=record,
        )
        if not ok and not record:
            raise ScenarioAborted(f"connection {conn.label} did not open")
        return conn

    async def channel(self, label: str | None = None) -> RawChannel:
        """A new connection with one channel open."""
        conn = await self.connect(label)
        return await conn.channel()

    def check(self, condition: bool, what: str) -> None:
        """Record a fact the scenario computed itself (so both brokers must agree)."""
        self.t.add("check", what, {"ok": condition})

    async def cleanup(self) -> None:
        for conn in self.connections:
            conn.abort()
        if not (self.queues or self.exchanges):
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._delete_all(), 10)

    async def _delete_all(self) -> None:
        quiet = Transcript(self.prefix)
        reader, writer = await asyncio.open_connection(self.host, self.port)
        conn = RawConnection(reader, writer, quiet, "cleanup")
        conn.start_reading()
        try:
            if not await conn.handshake(
                username=self.username, password=self.password, vhost=self.vhost
            ):
                return
            ch = await conn.channel()
            todo: list[Method] = [spec.QueueDelete(queue=q) for q in sorted(self.queues)]
            todo += [spec.ExchangeDelete(exchange=x) for x in sorted(self.exchanges)]
            for method in todo:
                item = await ch.call(method)
                if isinstance(item, MethodReceived) and isinstance(item.method, spec.ChannelClose):
                    ch = await conn.channel()
                elif isinstance(item, Closed | ProtocolError):
                    return
            await conn.close()
        finally:
            conn.abort()
