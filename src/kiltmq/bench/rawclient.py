"""A raw AMQP 0-9-1 client on the sans-IO protocol core: the caller decides every frame.

It drives the RabbitMQ compatibility scenarios, the broker's protocol tests and (as
:class:`~kiltmq.bench.loadclient.LoadClient`) the benchmarks' load. It is not the kiltmq
client library (:mod:`kiltmq.client`): nothing is sent unless asked for, no reply is
awaited unless asked for.

Sending: legal methods go through a client-role :class:`~kiltmq.protocol.Connection`
(:meth:`RawClient.send`, :meth:`RawClient.publish`), which tracks the connection and
channel states; anything at all is written as it is (:meth:`RawClient.send_raw`,
:meth:`RawClient.send_raw_method`).

Receiving: bytes go to the core; every event it yields goes to
:meth:`RawClient.event_received`, which queues it for :meth:`RawClient.event` (a subclass
may dispatch events otherwise). The bytes themselves are kept for
:meth:`RawClient.read_bytes`. Every read has a timeout, so a test never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Self, TypeVar, cast

from kiltmq.protocol import spec
from kiltmq.protocol.codec import encode_table
from kiltmq.protocol.connection import (
    Connection,
    ContentReceived,
    Event,
    HeartbeatReceived,
    MethodReceived,
    ProtocolError,
    Role,
)
from kiltmq.protocol.dialect import AMQP_0_9_1, Dialect
from kiltmq.protocol.errors import AMQPError, error_for
from kiltmq.protocol.frames import method_frame
from kiltmq.protocol.spec import BasicProperties, Method

__all__ = [
    "CAPABILITIES",
    "TIMEOUT",
    "Disconnected",
    "RawClient",
    "UnexpectedReply",
    "auth_response",
    "close_error",
]

M = TypeVar("M", bound=Method)

TIMEOUT = 10.0
"""Seconds a read waits by default."""

CAPABILITIES: dict[str, Any] = {
    "consumer_cancel_notify": True,
    "authentication_failure_close": True,
}
"""The client capabilities announced in connection.start-ok unless others are given."""


class Disconnected(ConnectionError):
    """The server closed the socket."""


class UnexpectedReply(Exception):
    """The server answered with something other than the expected method."""

    def __init__(self, expected: str, event: Event) -> None:
        super().__init__(f"expected {expected}, got {event!r}")
        self.event = event


def auth_response(mechanism: str, username: str, password: str) -> bytes:
    """The start-ok response: PLAIN is NUL-separated, AMQPLAIN a field table without its
    length prefix (as RabbitMQ and txAMQP encode it)."""
    if mechanism == "AMQPLAIN":
        return encode_table({"LOGIN": username, "PASSWORD": password})[4:]
    return b"\x00" + username.encode() + b"\x00" + password.encode()


def close_error(method: spec.ConnectionClose | spec.ChannelClose) -> AMQPError:
    """The exception for a connection.close or channel.close received."""
    scope = "connection" if isinstance(method, spec.ConnectionClose) else "channel"
    return error_for(
        method.reply_code, method.reply_text, method.class_id, method.method_id, scope=scope
    )


class RawClient(asyncio.Protocol):
    """One AMQP connection. Create with :meth:`open` (TCP only) or :meth:`connect`."""

    def __init__(self, dialect: Dialect = AMQP_0_9_1) -> None:
        #: The protocol core, speaking ``dialect`` (AMQP 0-9-1 unless told otherwise).
        self.core = Connection(Role.CLIENT, dialect)
        self.transport: asyncio.Transport | None = None
        self.server_properties: dict[str, Any] = {}
        #: Events not yet read by :meth:`event`.
        self.events: deque[Event] = deque()
        #: Every byte the core received, for :meth:`read_bytes`.
        self.received = bytearray()
        self.heartbeats = 0
        #: The first AMQP error: a connection.close or channel.close received, or bad
        #: framing; None while all is well.
        self.error: AMQPError | None = None
        #: Answer connection.close and channel.close with their close-ok at once.
        self.answer_close = False
        self.closed = False
        loop = asyncio.get_running_loop()
        self._lost: asyncio.Future[None] = loop.create_future()
        self._changed: asyncio.Future[None] | None = None
        self._read_pos = 0
        self._closing = False  # close() sent connection.close

    # -- opening --------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, port: int, host: str = "127.0.0.1", *, timeout: float = TIMEOUT, **kwargs: Any
    ) -> Self:
        """A TCP connection and nothing else: no protocol header sent yet. ``kwargs`` go
        to the constructor."""
        loop = asyncio.get_running_loop()
        _, client = await asyncio.wait_for(
            loop.create_connection(lambda: cls(**kwargs), host, port), timeout
        )
        return client

    @classmethod
    async def connect(
        cls, port: int, host: str = "127.0.0.1", *, timeout: float = TIMEOUT, **options: Any
    ) -> Self:
        """Connect and run the handshake up to connection.open-ok; ``options`` are those
        of :meth:`handshake`."""
        client = await cls.open(port, host, timeout=timeout)
        try:
            await client.handshake(timeout=timeout, **options)
        except BaseException:
            client.abort()
            raise
        return client

    async def start(self, timeout: float = TIMEOUT) -> Method:
        """Send the protocol header; return the next method (connection.start)."""
        self.core.send_protocol_header()
        self.flush()
        return await self.method(0, timeout)

    def send_start_ok(
        self,
        username: str,
        password: str,
        mechanism: str = "PLAIN",
        capabilities: dict[str, Any] | None = None,
        product: str = "kiltmq raw client",
        extra: dict[str, Any] | None = None,
    ) -> None:
        """connection.start-ok; ``extra``: more client properties."""
        properties = {
            "product": product,
            "capabilities": CAPABILITIES if capabilities is None else capabilities,
            **(extra or {}),
        }
        self.send(
            0,
            spec.ConnectionStartOk(
                client_properties=properties,
                mechanism=mechanism,
                response=auth_response(mechanism, username, password),
                locale="en_US",
            ),
        )

    async def login(
        self,
        username: str,
        password: str,
        mechanism: str = "PLAIN",
        capabilities: dict[str, Any] | None = None,
        timeout: float = TIMEOUT,
    ) -> Method:
        """Send connection.start-ok; return the next method (connection.tune)."""
        self.send_start_ok(username, password, mechanism, capabilities)
        return await self.method(0, timeout)

    def send_tune_ok(
        self,
        tune: spec.ConnectionTune,
        *,
        heartbeat: int | None = 0,
        frame_max: int | None = None,
        channel_max: int | None = None,
    ) -> None:
        """connection.tune-ok; ``None`` for a value means "accept the server's"."""
        self.send(
            0,
            spec.ConnectionTuneOk(
                channel_max=tune.channel_max if channel_max is None else channel_max,
                frame_max=tune.frame_max if frame_max is None else frame_max,
                heartbeat=tune.heartbeat if heartbeat is None else heartbeat,
            ),
        )

    async def handshake(
        self,
        *,
        username: str = "guest",
        password: str = "guest",
        vhost: str = "/",
        heartbeat: int | None = 0,
        frame_max: int | None = None,
        channel_max: int | None = None,
        mechanism: str = "PLAIN",
        capabilities: dict[str, Any] | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        """Header, start/start-ok, tune/tune-ok, open/open-ok. ``None`` for a tune value
        means "accept the server's". A connection.close raises its error, anything else
        unexpected :class:`UnexpectedReply`."""
        self._expect(await self.start(timeout), spec.ConnectionStart)
        tune = self._expect(
            await self.login(username, password, mechanism, capabilities, timeout),
            spec.ConnectionTune,
        )
        self.send_tune_ok(tune, heartbeat=heartbeat, frame_max=frame_max, channel_max=channel_max)
        self.send(0, spec.ConnectionOpen(virtual_host=vhost))
        self._expect(await self.method(0, timeout), spec.ConnectionOpenOk)

    def _expect(self, method: Method, expected: type[M]) -> M:
        if isinstance(method, expected):
            return method
        if isinstance(method, spec.ConnectionClose | spec.ChannelClose):
            raise close_error(method)
        raise UnexpectedReply(expected.NAME, MethodReceived(0, method))

    async def open_channel(self, number: int = 1) -> int:
        open_ok = type(self.core.dialect.channel_open_ok)
        await self.request(number, spec.ChannelOpen(), open_ok, TIMEOUT)
        return number

    @property
    def frame_max(self) -> int:
        """The negotiated frame_max (0: no limit)."""
        return self.core.frame_max

    def server_version(self) -> str:
        """``product version`` from connection.start's server properties."""
        product = self.server_properties.get("product", "?")
        version = self.server_properties.get("version", "?")
        if isinstance(product, bytes):
            product = product.decode(errors="replace")
        if isinstance(version, bytes):
            version = version.decode(errors="replace")
        return f"{product} {version}"

    # -- closing --------------------------------------------------------------------------

    async def close(self, timeout: float = 5.0) -> None:
        """connection.close; close the socket on close-ok, or after ``timeout`` seconds."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._closing = True
        self.send(0, self.core.dialect.connection_close(reply_code=200, reply_text="bye"))
        try:
            await asyncio.wait_for(asyncio.shield(self._lost), timeout)
        except TimeoutError:
            transport.abort()

    async def disconnect(self, timeout: float = TIMEOUT) -> None:
        """Close the socket without a word and wait until it is closed."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._lost), timeout)

    def abort(self) -> None:
        """Drop the socket at once."""
        if self.transport is not None:
            self.transport.abort()

    # -- sending --------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what the core has queued."""
        data = self.core.data_to_send()
        if data:
            self.send_raw(data)

    def send(self, channel: int, method: Method) -> None:
        """Send a method through the core, which checks that it is legal now."""
        self.core.send_method(channel, method)
        self.flush()

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are, around the core's state tracking."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def send_raw_method(self, channel: int, method: Method) -> None:
        """A method frame written around the core (for illegal ones)."""
        self.send_raw(method_frame(channel, method))

    def publish(
        self,
        channel: int,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: BasicProperties | None = None,
        *,
        mandatory: bool = False,
    ) -> None:
        """basic.publish with its content, through the core."""
        self.core.send_content(
            channel,
            spec.BasicPublish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
            properties,
            body,
        )
        self.flush()

    async def drain(self) -> None:
        """Wait until everything written has been handed to the kernel."""
        transport = self.transport
        while (
            transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() > 0
        ):
            await asyncio.sleep(0.001)

    def pause_reading(self) -> None:
        """Stop reading the socket: its buffers fill up and the server sees a consumer
        that does not keep up."""
        if self.transport is not None:
            self.transport.pause_reading()

    async def call(self, channel: int, method: Method, timeout: float = TIMEOUT) -> Method:
        """Send ``method``; return the next method received, on whatever channel."""
        self.send(channel, method)
        return await self.method(None, timeout)

    async def request(
        self, channel: int, method: Method, reply: type[M], timeout: float | None = None
    ) -> M:
        """Send ``method`` and wait for ``reply`` on ``channel``; other methods meanwhile
        are dropped. A channel.close (of ``channel``) or connection.close raises its
        error; so does bad framing."""
        self.send(channel, method)
        while True:
            event = await self.event(timeout)
            if isinstance(event, ProtocolError):
                raise event.error
            if not isinstance(event, MethodReceived | ContentReceived):
                continue
            got = event.method
            if isinstance(got, reply) and event.channel == channel:
                return got
            if isinstance(got, spec.ConnectionClose) or (
                isinstance(got, spec.ChannelClose) and event.channel == channel
            ):
                raise close_error(got)

    # -- receiving ------------------------------------------------------------------------

    def event_received(self, event: Event) -> None:
        """Called for every event of the core; queues it for :meth:`event`."""
        self.events.append(event)

    async def event(self, timeout: float | None = TIMEOUT, *, heartbeats: bool = False) -> Event:
        """The next event (heartbeats are skipped unless asked for). Raises
        :class:`Disconnected` once the socket is closed and every event was read,
        TimeoutError after ``timeout`` seconds (None: no limit)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        events = self.events
        while True:
            while events:
                event = events.popleft()
                if heartbeats or type(event) is not HeartbeatReceived:
                    return event
            if self.closed:
                raise Disconnected("the server closed the connection")
            await self.wait_for_data(deadline, "no event from the server")

    async def wait_for_data(self, deadline: float | None, what: str) -> None:
        """Wait until something arrives or the socket closes; TimeoutError(``what``) once
        ``deadline`` (loop time, None: never) has passed."""
        loop = asyncio.get_running_loop()
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            raise TimeoutError(what)
        changed = self._changed
        if changed is None or changed.done():
            changed = self._changed = loop.create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(changed), remaining)

    async def method(self, channel: int | None = None, timeout: float = TIMEOUT) -> Method:
        """The next method (with or without content), on ``channel`` if given."""
        event = await self.event(timeout)
        if not isinstance(event, MethodReceived | ContentReceived):
            raise UnexpectedReply("a method", event)
        if channel is not None and event.channel != channel:
            raise UnexpectedReply(f"a method on channel {channel}", event)
        return event.method

    async def eof(self, timeout: float = TIMEOUT) -> list[Event]:
        """Read until the server closes the socket; return the events seen meanwhile
        (heartbeats included)."""
        seen: list[Event] = []
        with contextlib.suppress(Disconnected):
            while True:
                seen.append(await self.event(timeout, heartbeats=True))
        return seen

    async def read_bytes(self, timeout: float = TIMEOUT) -> bytes:
        """The bytes received since the last call (waiting for some); b"" once the server
        closed the socket."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) == self._read_pos:
            if self.closed:
                return b""
            await self.wait_for_data(deadline, "no bytes from the server")
        data = bytes(self.received[self._read_pos :])
        self._read_pos = len(self.received)
        return data

    def feed_core(self, data: bytes) -> None:
        """Keep ``data`` and hand it to the core."""
        self.received += data
        self.dispatch(self.core.receive_data(data))

    def dispatch(self, events: list[Event]) -> None:
        """Note what the core's ``events`` say, answer closes if asked to, pass them on
        to :meth:`event_received`, and wake the readers."""
        for event in events:
            if isinstance(event, MethodReceived):
                self._method_received(event.channel, event.method)
            elif isinstance(event, HeartbeatReceived):
                self.heartbeats += 1
            elif isinstance(event, ProtocolError) and self.error is None:
                self.error = event.error
            self.event_received(event)
        self.flush()
        self.wake()

    def _method_received(self, channel: int, method: Method) -> None:
        if isinstance(method, spec.ConnectionClose):
            self.error = close_error(method)
            if self.answer_close:
                self.send(0, self.core.dialect.connection_close_ok())
        elif isinstance(method, spec.ChannelClose):
            if self.error is None:
                self.error = close_error(method)
            if self.answer_close:
                self.send(channel, spec.ChannelCloseOk())
        elif isinstance(method, spec.ConnectionCloseOk):
            if self._closing and self.transport is not None:
                self.transport.close()
        elif isinstance(method, spec.ConnectionStart):
            self.server_properties = dict(method.server_properties or {})

    def wake(self) -> None:
        """Wake whoever waits in :meth:`wait_for_data`."""
        changed = self._changed
        if changed is not None and not changed.done():
            changed.set_result(None)

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.feed_core(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._lost.done():
            self._lost.set_result(None)
        self.wake()
