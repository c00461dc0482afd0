"""Every fault of ``amqp_broker.faults``, and the clock, from each of the four clients a
test suite uses: pika (blocking), aio-pika, kombu and kiltmq's client.

Each test is one fault; its parameter is the client. A client drives the broker
through a small adapter (below) that speaks its own API: publish with confirms,
declare, bind, open channels; what a fault does is then checked on both sides, the
client's error (its reply code, as that library reports it) and the broker's state.
The asynchronous clients run on an event loop of their own in a thread, so that every
test here is synchronous and a publish can be left waiting for its confirm. Nothing
here sleeps: "not yet" is checked on the broker (its frames), "now" by waiting for it.

At the end, a pytester test shows that a fault, an alarm and a frozen clock set by one
test are gone for the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import aio_pika
import aiormq
import aiormq.exceptions
import amqp.exceptions
import pika
import pika.exceptions
import pytest
from kombu.connection import Connection as KombuConnection
from kombu.entity import Queue as KombuQueue
from kombu.messaging import Producer as KombuProducer

import kiltmq
from kiltmq.client.errors import ChannelClosed, ConnectionClosed, PublishNacked
from kiltmq.protocol.errors import AMQPError
from kiltmq.testing import BrokerFixture
from kiltmq.testing.frames import capture_of

# pytester (pytest's own fixture for testing plugins), for the last test
pytest_plugins = ["pytester"]

T = TypeVar("T")
TIMEOUT = 5.0
NAME = "matrix"
CLIENTS = ["pika", "aio-pika", "kombu", "kiltmq"]


# -- the clients ---------------------------------------------------------------------------


class Pending:
    """A publish under way (its confirm not yet in)."""

    def __init__(self, future: Future[bool]) -> None:
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> bool:
        return self._future.result(TIMEOUT)


def in_thread(function: Callable[[], bool]) -> Pending:
    """Run a blocking client's publish in a thread: the test thread leaves the client
    alone until :meth:`Pending.result`."""
    future: Future[bool] = Future()

    def run() -> None:
        try:
            future.set_result(function())
        except BaseException as exc:  # handed to the test
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return Pending(future)


class Client:
    """What a test does with a client; each library's subclass speaks its API."""

    #: the library opens again, by itself, a channel the broker closed
    reopens_closed_channels = False
    #: the codes a closed connection may be reported with: the broker's, or 0 by a
    #: client that reads nothing while idle and finds the socket gone when it next sends
    connection_closed_codes: tuple[int | None, ...] = (320,)

    def channel(self, *, confirm: bool = False) -> int:
        """Open a channel (in confirm mode if asked) and make it the current one."""
        raise NotImplementedError

    def declare(self, queue: str, *, durable: bool = False,
                arguments: dict[str, Any] | None = None) -> None:
        raise NotImplementedError

    def bind(self, queue: str, exchange: str, key: str) -> None:
        raise NotImplementedError

    def publish(self, queue: str, body: bytes, *, persistent: bool = False) -> bool:
        """Publish to ``queue`` through the default exchange; in confirm mode, wait for
        the confirm: True for basic.ack, False for basic.nack."""
        raise NotImplementedError

    def start_publish(self, queue: str, body: bytes) -> Pending:
        return in_thread(lambda: self.publish(queue, body))

    def code(self, exc: BaseException) -> int | None:
        """The reply code ``exc`` reports (0: the connection was lost without one)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class PikaClient(Client):

    def __init__(self, url: str) -> None:
        params = pika.URLParameters(url)
        params.socket_timeout = TIMEOUT
        params.connection_attempts = 1
        params.client_properties = {"connection_name": NAME}
        self.conn = pika.BlockingConnection(params)
        #: why pika closed its channels: a call on a channel already closed raises
        #: ChannelWrongStateError, without the code, which pika hands its callback
        self.reasons: list[BaseException] = []
        self.channel()

    def channel(self, *, confirm: bool = False) -> int:
        self.ch = self.conn.channel()
        # the blocking adapter's channel keeps the callback on its pika.channel.Channel
        self.ch._impl.add_on_close_callback(
            lambda _channel, reason: self.reasons.append(reason)
        )
        if confirm:
            self.ch.confirm_delivery()
        return int(self.ch.channel_number)

    def declare(self, queue: str, *, durable: bool = False,
                arguments: dict[str, Any] | None = None) -> None:
        self.ch.queue_declare(queue, durable=durable, arguments=arguments)

    def bind(self, queue: str, exchange: str, key: str) -> None:
        self.ch.queue_bind(queue, exchange, key)

    def publish(self, queue: str, body: bytes, *, persistent: bool = False) -> bool:
        props = pika.BasicProperties(delivery_mode=2 if persistent else None)
        try:
            self.ch.basic_publish("", queue, body, props)
        except pika.exceptions.NackError:
            return False
        return True

    def code(self, exc: BaseException) -> int | None:
        if isinstance(exc, (pika.exceptions.ChannelClosedByBroker,
                            pika.exceptions.ConnectionClosedByBroker)):
            return int(exc.reply_code)
        if isinstance(exc, pika.exceptions.StreamLostError):
            return 0
        if isinstance(exc, pika.exceptions.ChannelWrongStateError) and self.reasons:
            return self.code(self.reasons[-1])
        return None

    def close(self) -> None:
        with contextlib.suppress(pika.exceptions.AMQPError):
            if self.conn.is_open:
                self.conn.close()


class KombuClient(Client):
    """kombu's py-amqp transport: confirms are kombu's ``confirm_publish`` transport
    option (every publish on the connection waits for its confirm, so every channel
    here is in confirm mode once it publishes); channels are py-amqp's, which reopens a
    channel the broker closed. Idle, it reads nothing: a broker that went away is seen
    as a broken socket when it next sends, without the broker's connection.close."""

    reopens_closed_channels = True
    connection_closed_codes = (320, 0)

    def __init__(self, url: str) -> None:
        self.conn = KombuConnection(  # type: ignore[no-untyped-call]
            url, transport_options={
                "confirm_publish": True, "client_properties": {"connection_name": NAME},
            },
        )
        self.conn.connect()  # type: ignore[no-untyped-call]
        self.ch = self.conn.channel()  # type: ignore[no-untyped-call]

    def channel(self, *, confirm: bool = False) -> int:
        self.ch = self.conn.channel()  # type: ignore[no-untyped-call]
        return int(self.ch.channel_id)

    def declare(self, queue: str, *, durable: bool = False,
                arguments: dict[str, Any] | None = None) -> None:
        declaration = KombuQueue(  # type: ignore[no-untyped-call]
            queue, channel=self.ch, durable=durable, auto_delete=False,
            queue_arguments=arguments,
        )
        declaration.queue_declare()  # type: ignore[no-untyped-call]

    def bind(self, queue: str, exchange: str, key: str) -> None:
        self.ch.queue_bind(queue, exchange, key)

    def publish(self, queue: str, body: bytes, *, persistent: bool = False) -> bool:
        producer = KombuProducer(self.ch)  # type: ignore[no-untyped-call]
        try:
            producer.publish(  # type: ignore[no-untyped-call]
                body, routing_key=queue, delivery_mode=2 if persistent else 1, retry=False
            )
        except amqp.exceptions.MessageNacked:
            return False
        return True

    def code(self, exc: BaseException) -> int | None:
        if isinstance(exc, amqp.exceptions.AMQPError) and exc.reply_code:
            return int(exc.reply_code)
        if isinstance(exc, (ConnectionError, OSError)):
            return 0
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.release()  # type: ignore[no-untyped-call]


class LoopClient(Client):
    """An asynchronous client, run on the test module's event loop thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def run(self, awaitable: Awaitable[T]) -> T:
        async def wait() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wait(), self.loop).result(TIMEOUT)

    def start_publish(self, queue: str, body: bytes) -> Pending:
        return Pending(asyncio.run_coroutine_threadsafe(self._publish(queue, body), self.loop))

    def publish(self, queue: str, body: bytes, *, persistent: bool = False) -> bool:
        return self.run(self._publish(queue, body, persistent))

    async def _publish(self, queue: str, body: bytes, persistent: bool = False) -> bool:
        raise NotImplementedError


#: aiormq's channel errors name the reply code by their class
AIORMQ_CODES: dict[type[BaseException], int] = {
    aiormq.exceptions.ChannelAccessRefused: 403,
    aiormq.exceptions.ChannelNotFoundEntity: 404,
    aiormq.exceptions.ChannelLockedResource: 405,
    aiormq.exceptions.ChannelPreconditionFailed: 406,
}


class AioPikaClient(LoopClient):

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.conn = self.run(aio_pika.connect(url, client_properties={"connection_name": NAME}))
        #: why aio-pika closed its channels: a call on a channel already closed raises
        #: ChannelInvalidStateError, without the code, which went to close_callbacks
        self.reasons: list[BaseException] = []
        self.channel()

    def channel(self, *, confirm: bool = False) -> int:
        async def open_() -> Any:  # aio-pika makes its futures on the running loop
            channel = await self.conn.channel(publisher_confirms=confirm)
            channel.close_callbacks.add(self._closed)
            return channel

        self.ch = self.run(open_())
        return int(self.ch.number)

    def declare(self, queue: str, *, durable: bool = False,
                arguments: dict[str, Any] | None = None) -> None:
        self.run(self.ch.declare_queue(queue, durable=durable, arguments=arguments))

    def _closed(self, _channel: object, reason: BaseException | None) -> None:
        if reason is not None:
            self.reasons.append(reason)

    def bind(self, queue: str, exchange: str, key: str) -> None:
        async def bind() -> None:
            # aio-pika binds a Queue object; its underlying aiormq channel binds by name
            underlay = await self.ch.get_underlay_channel()
            await underlay.queue_bind(queue, exchange, routing_key=key)

        self.run(bind())

    async def _publish(self, queue: str, body: bytes, persistent: bool = False) -> bool:
        mode = aio_pika.DeliveryMode.PERSISTENT if persistent else None
        try:
            await self.ch.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=mode), queue
            )
        except aiormq.exceptions.DeliveryError:  # basic.nack
            return False
        return True

    def code(self, exc: BaseException) -> int | None:
        for kind, code in AIORMQ_CODES.items():
            if isinstance(exc, kind):
                return code
        if isinstance(exc, (aiormq.exceptions.ChannelClosed,
                            aiormq.exceptions.ConnectionClosed)) and exc.args:
            return int(exc.args[0])
        if isinstance(exc, ConnectionError):
            return 0
        if isinstance(exc, aiormq.exceptions.ChannelInvalidStateError):
            for _ in range(100):  # the callbacks run in a task of their own: let it
                if self.reasons:
                    return self.code(self.reasons[-1])
                self.run(asyncio.sleep(0))
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.conn.close())


class KiltmqClient(LoopClient):
    """kiltmq's client, without automatic recovery (a test of recovery is elsewhere:
    here each fault's error must reach the test)."""


    def __init__(self, url: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.conn = self.run(kiltmq.connect(url, name=NAME, recovery=False))
        self.ch = self.run(self.conn.channel())

    def channel(self, *, confirm: bool = False) -> int:
        async def open_() -> Any:
            channel = await self.conn.channel()
            if confirm:
                await channel.confirm_select()
            return channel

        self.ch = self.run(open_())
        return int(self.ch.number)

    def declare(self, queue: str, *, durable: bool = False,
                arguments: dict[str, Any] | None = None) -> None:
        self.run(self.ch.queue_declare(queue, durable=durable, arguments=arguments))

    def bind(self, queue: str, exchange: str, key: str) -> None:
        self.run(self.ch.queue_bind(queue, exchange, key))

    async def _publish(self, queue: str, body: bytes, persistent: bool = False) -> bool:
        props = kiltmq.BasicProperties(delivery_mode=2 if persistent else None)
        try:
            await self.ch.basic_publish(body, routing_key=queue, properties=props)
        except PublishNacked:
            return False
        return True

    def code(self, exc: BaseException) -> int | None:
        if isinstance(exc, AMQPError):
            return int(exc.reply_code)
        if isinstance(exc, (ChannelClosed, ConnectionClosed)):
            reason = getattr(exc, "reason", None)
            return int(reason.reply_code) if isinstance(reason, AMQPError) else 0
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.conn.close())


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop in a thread, for the asynchronous clients."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(TIMEOUT)
    loop.close()


@pytest.fixture(params=CLIENTS)
def connect(
    request: pytest.FixtureRequest, amqp_broker: BrokerFixture,
    loop: asyncio.AbstractEventLoop,
) -> Iterator[Callable[[], Client]]:
    """Connects the parametrized client to the test's broker (named "matrix"); each
    connection is closed after the test."""
    opened: list[Client] = []

    def open_() -> Client:
        kind = request.param
        client: Client
        if kind == "pika":
            client = PikaClient(amqp_broker.url)
        elif kind == "kombu":
            client = KombuClient(amqp_broker.url)
        elif kind == "aio-pika":
            client = AioPikaClient(amqp_broker.url, loop)
        else:
            client = KiltmqClient(amqp_broker.url, loop)
        opened.append(client)
        return client

    yield open_
    for client in opened:
        client.close()


def fails(client: Client, action: Callable[[], object]) -> int | None:
    """Run ``action``, which must fail; the reply code the client reports."""
    with pytest.raises(Exception) as failure:
        action()
    return client.code(failure.value)


def broker_sent(amqp_broker: BrokerFixture, name: str) -> list[str]:
    """The methods the broker sent on the "matrix" connections named ``name``."""
    amqp_broker.call_in_loop(lambda: None)  # what the broker's loop had to do is done
    return [f.name for f in amqp_broker.frames(NAME) if f.sender == "broker" and f.name == name]


def until_sent(amqp_broker: BrokerFixture, name: str) -> None:
    """Wait until the broker has sent method ``name`` on the "matrix" connection."""
    capture = capture_of(amqp_broker.broker)

    def sent() -> bool | None:
        frames = [f for r in capture.find(NAME, amqp_broker.vhost) for f in r.frames]
        return True if any(f.name == name for f in frames) else None

    amqp_broker._loop.wait(sent, lambda: f"{name} not sent", TIMEOUT)


# -- confirms ------------------------------------------------------------------------------


def test_nack_the_next_two_publishes(
    amqp_broker: BrokerFixture, connect: Callable[[], Client],
) -> None:
    client = connect()
    client.channel(confirm=True)
    client.declare("orders")
    fault = amqp_broker.faults.nack_publishes(2, connection=NAME)
    assert [client.publish("orders", b"o1"), client.publish("orders", b"o2")] == [False, False]
    assert not fault.active
    assert client.publish("orders", b"o3")
    assert amqp_broker.queue("orders").bodies == [b"o3"]


@pytest.mark.kiltmq_frames
def test_hold_confirms_then_release(
    amqp_broker: BrokerFixture, connect: Callable[[], Client],
) -> None:
    client = connect()
    client.channel(confirm=True)
    client.declare("invoices")
    hold = amqp_broker.faults.hold_confirms(connection=NAME)
    pending = client.start_publish("invoices", b"i1")
    amqp_broker.wait_messages("invoices")
    assert broker_sent(amqp_broker, "basic.ack") == []  # enqueued, not confirmed
    assert not pending.done()
    hold.release()
    assert pending.result()
    assert broker_sent(amqp_broker, "basic.ack") == ["basic.ack"]


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("reply_code", [403, 404, 405, 406])
def test_refuse_a_declare(
    amqp_broker: BrokerFixture, connect: Callable[[], Client], reply_code: int,
) -> None:
    client = connect()
    amqp_broker.faults.refuse("queue.declare", reply_code, name="tasks")
    assert fails(client, lambda: client.declare("tasks")) == reply_code
    client.channel()
    client.declare("tasks")  # only the next one
    assert amqp_broker.has_queue("tasks")


@pytest.mark.parametrize("reply_code", [403, 404, 405, 406])
def test_refuse_a_bind(
    amqp_broker: BrokerFixture, connect: Callable[[], Client], reply_code: int,
) -> None:
    client = connect()
    client.declare("audit")
    amqp_broker.faults.refuse("queue.bind", reply_code)
    assert fails(client, lambda: client.bind("audit", "amq.topic", "#")) == reply_code
    assert amqp_broker.exchange("amq.topic").bindings == ()
    client.channel()
    client.bind("audit", "amq.topic", "#")
    assert len(amqp_broker.exchange("amq.topic").bindings) == 1


# -- closing -------------------------------------------------------------------------------


def test_close_a_channel_now(amqp_broker: BrokerFixture, connect: Callable[[], Client]) -> None:
    client = connect()
    number = client.channel()
    before = amqp_broker.connections(NAME)[0].channels
    amqp_broker.faults.close_channel(NAME, number, reply_code=406,
                                     reply_text="PRECONDITION_FAILED - closed by test")
    assert fails(client, lambda: client.declare("after")) == 406
    assert not amqp_broker.has_queue("after")
    client.channel()  # the connection lives on
    client.declare("after")
    reopened = 1 if client.reopens_closed_channels else 0
    assert amqp_broker.connections(NAME)[0].channels == before + reopened


def test_close_a_channel_after_two_methods(
    amqp_broker: BrokerFixture, connect: Callable[[], Client],
) -> None:
    client = connect()
    number = client.channel()
    amqp_broker.faults.close_channel(NAME, number, after=2)
    client.declare("one")
    with contextlib.suppress(Exception):  # the second goes through, the close follows it
        client.declare("two")
    assert fails(client, lambda: client.declare("three")) == 406
    assert [amqp_broker.has_queue(q) for q in ("one", "two", "three")] == [True, True, False]
    client.channel()
    client.declare("four")


def test_close_the_connection_now(
    amqp_broker: BrokerFixture, connect: Callable[[], Client],
) -> None:
    client = connect()
    amqp_broker.faults.close_connection(NAME, reply_code=320)
    amqp_broker.wait_connections(0, NAME)
    assert fails(client, lambda: client.declare("after")) in client.connection_closed_codes
    assert not amqp_broker.has_queue("after")


def test_close_the_connection_after_two_methods(
    amqp_broker: BrokerFixture, connect: Callable[[], Client],
) -> None:
    client = connect()
    amqp_broker.faults.close_connection(NAME, after=2)
    client.declare("one")
    with contextlib.suppress(Exception):
        client.declare("two")
    amqp_broker.wait_connections(0, NAME)
    assert fails(client, lambda: client.declare("three")) in client.connection_closed_codes
    assert [amqp_broker.has_queue(q) for q in ("one", "two", "three")] == [True, True, False]


def test_drop_the_connection(amqp_broker: BrokerFixture, connect: Callable[[], Client]) -> None:
    client = connect()
    client.declare("before")
    amqp_broker.faults.drop_connection(NAME)
    amqp_broker.wait_connections(0, NAME)
    assert fails(client, lambda: client.declare("after")) == 0
    assert not amqp_broker.has_queue("after")


# -- alarms --------------------------------------------------------------------------------


@pytest.mark.kiltmq_frames
@pytest.mark.parametrize("how", ["block_publishers", "memory", "disk"])
def test_publishers_blocked_until_released(
    amqp_broker: BrokerFixture, connect: Callable[[], Client], how: str,
) -> None:
    client = connect()
    client.channel(confirm=True)
    client.declare("slow")
    client.publish("slow", b"first")  # a publisher: the alarm blocks it
    faults = amqp_broker.faults
    alarm = faults.block_publishers() if how == "block_publishers" else faults.alarm(how)
    with alarm:  # released at the end of the block, even if an assertion fails
        # as in RabbitMQ, the publish that meets the alarm goes through, then the
        # connection is blocked: the broker reads nothing more from it
        assert client.publish("slow", b"second")
        until_sent(amqp_broker, "connection.blocked")
        pending = client.start_publish("slow", b"third")
        amqp_broker.call_in_loop(lambda: None)
        assert amqp_broker.queue("slow").bodies == [b"first", b"second"]
        assert not pending.done()
    assert pending.result()
    assert amqp_broker.queue("slow").bodies == [b"first", b"second", b"third"]
    assert "connection.unblocked" in [f.name for f in amqp_broker.frames(NAME)]


# -- restart -------------------------------------------------------------------------------


@pytest.mark.kiltmq_broker(durable=True)
def test_restart(amqp_broker: BrokerFixture, connect: Callable[[], Client]) -> None:
    client = connect()
    client.channel(confirm=True)
    client.declare("kept", durable=True)
    client.declare("gone")
    assert client.publish("kept", b"persistent", persistent=True)
    amqp_broker.restart()
    assert fails(client, lambda: client.declare("after")) in client.connection_closed_codes
    assert amqp_broker.queue("kept").bodies == [b"persistent"]
    assert not amqp_broker.has_queue("gone")
    again = connect()
    again.declare("kept", durable=True)  # the same queue, recovered


# -- the clock -----------------------------------------------------------------------------


def test_a_ttl_expires_when_the_clock_is_advanced(
    amqp_broker: BrokerFixture, connect: Callable[[], Client],
) -> None:
    client = connect()
    amqp_broker.clock.freeze()
    client.declare("unpaid", arguments={"x-message-ttl": 30 * 60 * 1000})
    client.publish("unpaid", b"order")
    amqp_broker.wait_messages("unpaid")
    amqp_broker.clock.advance(30 * 60 - 1)
    assert amqp_broker.queue("unpaid").message_count == 1
    amqp_broker.clock.advance(1)
    assert amqp_broker.queue("unpaid").message_count == 0


# -- nothing leaks into the next test ------------------------------------------------------


def test_faults_alarms_and_a_frozen_clock_end_with_their_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import pika
        import pytest

        def declare(url, queue):
            conn = pika.BlockingConnection(pika.URLParameters(url))
            try:
                conn.channel().queue_declare(queue)
            finally:
                conn.close()

        def test_sets_everything(amqp_broker):
            amqp_broker.faults.refuse("queue.declare", 403, vhost=None, count=5)
            amqp_broker.faults.alarm("disk")
            amqp_broker.clock.freeze()
            assert amqp_broker.broker.alarms == {"disk"}

        def test_finds_nothing_left(amqp_broker, amqp_url):
            assert not amqp_broker.clock.frozen
            assert amqp_broker.broker.alarms == frozenset()
            declare(amqp_url, "free")             # not refused
            assert amqp_broker.has_queue("free")
            before = amqp_broker.clock.time()
            assert amqp_broker.clock.time() > before   # it runs
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=2)
