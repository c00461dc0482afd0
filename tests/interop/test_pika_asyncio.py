"""pika's AsyncioConnection (callback style) against kiltmq and RabbitMQ.

pika's asynchronous adapters report everything through callbacks; the helpers here turn
each callback into an awaited future, bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pika
import pika.exceptions
import pytest
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel

from .conftest import Names

TIMEOUT = 10.0


async def bounded(awaitable: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(awaitable, TIMEOUT)


class AsyncPika:
    """One AsyncioConnection and futures for its callbacks."""

    def __init__(self, conn: AsyncioConnection) -> None:
        self.conn = conn
        self.closed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        conn.add_on_close_callback(self._on_close)

    def _on_close(self, _conn: AsyncioConnection, reason: BaseException) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)

    @classmethod
    async def connect(cls, url: str) -> AsyncPika:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[AsyncioConnection] = loop.create_future()

        def on_error(_conn: AsyncioConnection, error: BaseException) -> None:
            if not opened.done():
                opened.set_exception(RuntimeError(f"connection failed: {error!r}"))

        params = pika.URLParameters(url)
        params.socket_timeout = 5
        params.stack_timeout = 10
        AsyncioConnection(
            params,
            on_open_callback=lambda conn: opened.set_result(conn),
            on_open_error_callback=on_error,
            custom_ioloop=loop,
        )
        return cls(await bounded(opened))

    async def channel(self) -> AsyncChannel:
        fut: asyncio.Future[Channel] = asyncio.get_running_loop().create_future()
        self.conn.channel(on_open_callback=fut.set_result)
        return AsyncChannel(await bounded(fut))

    async def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()
        if not self.closed.done():
            await bounded(self.closed)


class AsyncChannel:
    def __init__(self, ch: Channel) -> None:
        self.ch = ch
        self.closed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        ch.add_on_close_callback(self._on_close)

    def _on_close(self, _ch: Channel, reason: BaseException) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a pika channel method that takes ``callback=`` and await that callback,
        or the channel's closing (returned as the exception object)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(*result: Any) -> None:
            if not fut.done():
                fut.set_result(result[-1] if result else None)

        method(*args, callback=done, **kwargs)
        finished, _ = await asyncio.wait(
            [fut, self.closed], timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        assert finished, f"no reply to {method.__name__}"
        if fut in finished:
            return fut.result()
        return self.closed.result()

    def consume(self, queue: str, into: asyncio.Queue[tuple[Any, bytes]], ack: bool = True) -> Any:
        def on_message(ch: Channel, method: Any, _props: Any, body: bytes) -> None:
            into.put_nowait((method, body))
            if ack:
                ch.basic_ack(method.delivery_tag)

        return self.call(self.ch.basic_consume, queue, on_message)


@pytest.fixture
async def connect(broker_url: str) -> AsyncIterator[Callable[[], Awaitable[AsyncPika]]]:
    made: list[AsyncPika] = []

    async def make() -> AsyncPika:
        conn = await AsyncPika.connect(broker_url)
        made.append(conn)
        return conn

    yield make
    for conn in made:
        with contextlib.suppress(Exception):
            await conn.close()


async def take(queue: asyncio.Queue[tuple[Any, bytes]], n: int) -> list[bytes]:
    return [(await bounded(queue.get()))[1] for _ in range(n)]


async def test_consumer_declares_binds_and_consumes(
    connect: Callable[[], Awaitable[AsyncPika]], names: Names
) -> None:
    x, q = names.x("logs"), names.q("inbox")
    cch = await (await connect()).channel()
    await cch.call(cch.ch.exchange_declare, x, exchange_type="topic")
    await cch.call(cch.ch.queue_declare, q, exclusive=True)
    await cch.call(cch.ch.queue_bind, q, x, routing_key="kern.*")
    inbox: asyncio.Queue[tuple[Any, bytes]] = asyncio.Queue()
    await cch.consume(q, inbox)
    pch = await (await connect()).channel()
    for key in ("kern.info", "user.info", "kern.crit"):
        pch.ch.basic_publish(x, key, key.encode())
    assert await take(inbox, 2) == [b"kern.info", b"kern.crit"]


async def test_message_waits_for_a_consumer(
    connect: Callable[[], Awaitable[AsyncPika]], names: Names
) -> None:
    q = names.q("work")
    producer = await connect()
    pch = await producer.channel()
    await pch.call(pch.ch.queue_declare, q)
    confirms: asyncio.Queue[Any] = asyncio.Queue()
    await pch.call(pch.ch.confirm_delivery, confirms.put_nowait)
    pch.ch.basic_publish("", q, b"queued")
    frame = await bounded(confirms.get())
    assert isinstance(frame.method, pika.spec.Basic.Ack)
    await producer.close()
    cch = await (await connect()).channel()
    inbox: asyncio.Queue[tuple[Any, bytes]] = asyncio.Queue()
    await cch.consume(q, inbox)
    assert await take(inbox, 1) == [b"queued"]


async def test_two_consumers_share_round_robin(
    connect: Callable[[], Awaitable[AsyncPika]], names: Names
) -> None:
    q = names.q("tasks")
    inboxes: list[asyncio.Queue[tuple[Any, bytes]]] = []
    for _ in range(2):
        ch = await (await connect()).channel()
        await ch.call(ch.ch.queue_declare, q)
        inbox: asyncio.Queue[tuple[Any, bytes]] = asyncio.Queue()
        await ch.consume(q, inbox)
        inboxes.append(inbox)
    pch = await (await connect()).channel()
    for i in range(6):
        pch.ch.basic_publish("", q, f"task {i}".encode())
    got = {tuple(await take(inbox, 3)) for inbox in inboxes}
    assert got == {(b"task 0", b"task 2", b"task 4"), (b"task 1", b"task 3", b"task 5")}


async def test_fanout_every_consumer_gets_every_message(
    connect: Callable[[], Awaitable[AsyncPika]], names: Names
) -> None:
    x = names.x("broadcast")
    inboxes: list[asyncio.Queue[tuple[Any, bytes]]] = []
    for _ in range(3):
        ch = await (await connect()).channel()
        await ch.call(ch.ch.exchange_declare, x, exchange_type="fanout")
        ok = await ch.call(ch.ch.queue_declare, "", exclusive=True)
        await ch.call(ch.ch.queue_bind, ok.method.queue, x)
        inbox: asyncio.Queue[tuple[Any, bytes]] = asyncio.Queue()
        await ch.consume(ok.method.queue, inbox)
        inboxes.append(inbox)
    pch = await (await connect()).channel()
    for i in range(3):
        pch.ch.basic_publish(x, "", f"news {i}".encode())
    for inbox in inboxes:
        assert await take(inbox, 3) == [b"news 0", b"news 1", b"news 2"]


async def test_publisher_confirms(
    connect: Callable[[], Awaitable[AsyncPika]], names: Names
) -> None:
    q = names.q("confirmed")
    ch = await (await connect()).channel()
    await ch.call(ch.ch.queue_declare, q, exclusive=True)
    confirms: asyncio.Queue[Any] = asyncio.Queue()
    returned: asyncio.Queue[Any] = asyncio.Queue()
    ch.ch.add_on_return_callback(lambda _ch, method, _props, body: returned.put_nowait(body))
    await ch.call(ch.ch.confirm_delivery, confirms.put_nowait)
    for i in range(4):
        ch.ch.basic_publish("", q, f"m{i}".encode())
    ch.ch.basic_publish("amq.direct", "nowhere", b"lost", mandatory=True)
    settled: set[int] = set()
    while len(settled) < 5:
        frame = await bounded(confirms.get())
        assert isinstance(frame.method, pika.spec.Basic.Ack)
        tag = frame.method.delivery_tag
        settled.update(range(1, tag + 1) if frame.method.multiple else [tag])
    assert settled == {1, 2, 3, 4, 5}
    assert await bounded(returned.get()) == b"lost"


async def test_basic_get(connect: Callable[[], Awaitable[AsyncPika]], names: Names) -> None:
    q = names.q("get")
    ch = await (await connect()).channel()
    await ch.call(ch.ch.queue_declare, q, exclusive=True)
    ch.ch.basic_publish("", q, b"one", pika.BasicProperties(correlation_id="c1"))
    ch.ch.basic_publish("", q, b"two")
    got: asyncio.Queue[tuple[Any, Any, bytes]] = asyncio.Queue()
    ch.ch.basic_get(q, lambda _ch, method, props, body: got.put_nowait((method, props, body)))
    method, props, body = await bounded(got.get())
    assert (body, props.correlation_id, method.message_count) == (b"one", "c1", 1)
    ch.ch.basic_ack(method.delivery_tag)
    ch.ch.basic_get(
        q, lambda _ch, method, props, body: got.put_nowait((method, props, body)), auto_ack=True
    )
    method, _props, body = await bounded(got.get())
    assert (body, method.message_count) == (b"two", 0)


async def test_nack_requeue_redelivers(
    connect: Callable[[], Awaitable[AsyncPika]], names: Names
) -> None:
    q = names.q("retry")
    ch = await (await connect()).channel()
    await ch.call(ch.ch.queue_declare, q, exclusive=True)
    inbox: asyncio.Queue[tuple[Any, bytes]] = asyncio.Queue()
    await ch.consume(q, inbox, ack=False)
    ch.ch.basic_publish("", q, b"flaky")
    method, body = await bounded(inbox.get())
    assert (body, method.redelivered) == (b"flaky", False)
    ch.ch.basic_nack(method.delivery_tag, requeue=True)
    method, body = await bounded(inbox.get())
    assert (body, method.redelivered) == (b"flaky", True)
    ch.ch.basic_ack(method.delivery_tag)


async def test_channel_error_leaves_connection_usable(
    connect: Callable[[], Awaitable[AsyncPika]], names: Names
) -> None:
    conn = await connect()
    ch = await conn.channel()
    reason = await ch.call(ch.ch.queue_declare, names.q("missing"), passive=True)
    assert isinstance(reason, pika.exceptions.ChannelClosedByBroker)
    assert reason.reply_code == 404
    assert conn.conn.is_open
    ch2 = await conn.channel()
    ok = await ch2.call(ch2.ch.queue_declare, "", exclusive=True)
    assert ok.method.queue.startswith("amq.gen-")
    reason = await ch2.call(
        functools.partial(ch2.ch.exchange_declare, exchange_type="direct"), "amq.reserved"
    )
    assert isinstance(reason, pika.exceptions.ChannelClosedByBroker)
    assert reason.reply_code == 403
    assert (await conn.channel()).ch.is_open
