"""aio-pika (on aiormq) against kiltmq and RabbitMQ: the tutorial scenarios and more."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import aio_pika.exceptions
import aiormq.exceptions
import pamqp.commands
import pytest

from .conftest import Names

TIMEOUT = 10.0
ROUND_ROBIN = {(b"task 0", b"task 2", b"task 4"), (b"task 1", b"task 3", b"task 5")}

Connect = Callable[[], Awaitable[aio_pika.abc.AbstractConnection]]


async def bounded(awaitable: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(awaitable, TIMEOUT)


@pytest.fixture
async def connect(broker_url: str) -> AsyncIterator[Connect]:
    made: list[aio_pika.abc.AbstractConnection] = []

    async def make() -> aio_pika.abc.AbstractConnection:
        conn: aio_pika.abc.AbstractConnection = await bounded(
            aio_pika.connect(broker_url, timeout=TIMEOUT)
        )
        made.append(conn)
        return conn

    yield make
    for conn in made:
        with contextlib.suppress(Exception):
            await bounded(conn.close())


async def collect(queue: aio_pika.abc.AbstractQueue, n: int) -> list[bytes]:
    """Consume ``n`` messages (acknowledging them) and cancel."""
    bodies: list[bytes] = []

    async def run() -> None:
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    bodies.append(message.body)
                if len(bodies) >= n:
                    return

    await bounded(run())
    return bodies


async def test_consumer_declares_binds_and_consumes(connect: Connect, names: Names) -> None:
    consumer = await connect()
    cch = await consumer.channel()
    x = await cch.declare_exchange(names.x("logs"), aio_pika.ExchangeType.DIRECT)
    q = await cch.declare_queue(names.q("inbox"), exclusive=True)
    await q.bind(x, routing_key="error")
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            received.put_nowait(message.body)

    await q.consume(on_message)
    producer = await connect()
    pch = await producer.channel()
    px = await pch.get_exchange(names.x("logs"))
    for key in ("error", "info", "error"):
        await px.publish(aio_pika.Message(f"{key} message".encode()), routing_key=key)
    got = [await bounded(received.get()) for _ in range(2)]
    assert got == [b"error message", b"error message"]


async def test_message_waits_for_a_consumer(connect: Connect, names: Names) -> None:
    producer = await connect()
    pch = await producer.channel()  # publisher confirms are on by default
    await pch.declare_queue(names.q("work"), durable=False)
    await pch.default_exchange.publish(
        aio_pika.Message(b"queued", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=names.q("work"),
    )
    await producer.close()
    consumer = await connect()
    cch = await consumer.channel()
    q = await cch.declare_queue(names.q("work"), passive=True)
    assert q.declaration_result.message_count == 1
    assert await collect(q, 1) == [b"queued"]


async def test_two_consumers_share_round_robin(connect: Connect, names: Names) -> None:
    inboxes: list[asyncio.Queue[bytes]] = []
    for _ in range(2):
        ch = await (await connect()).channel()
        q = await ch.declare_queue(names.q("tasks"))
        inbox: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_message(
            message: aio_pika.abc.AbstractIncomingMessage, inbox: asyncio.Queue[bytes] = inbox
        ) -> None:
            await message.ack()
            inbox.put_nowait(message.body)

        await q.consume(on_message)
        inboxes.append(inbox)
    pch = await (await connect()).channel()
    for i in range(6):
        await pch.default_exchange.publish(
            aio_pika.Message(f"task {i}".encode()), routing_key=names.q("tasks")
        )
    got = set()
    for inbox in inboxes:
        got.add(tuple([await bounded(inbox.get()) for _ in range(3)]))
    assert got == ROUND_ROBIN


async def test_fanout_every_consumer_gets_every_message(connect: Connect, names: Names) -> None:
    queues = []
    for _ in range(3):
        ch = await (await connect()).channel()
        x = await ch.declare_exchange(names.x("broadcast"), aio_pika.ExchangeType.FANOUT)
        q = await ch.declare_queue(exclusive=True)
        assert q.name.startswith("amq.gen-")
        await q.bind(x)
        queues.append(q)
    pch = await (await connect()).channel()
    px = await pch.get_exchange(names.x("broadcast"))
    for i in range(3):
        await px.publish(aio_pika.Message(f"news {i}".encode()), routing_key="")
    for q in queues:
        assert await collect(q, 3) == [b"news 0", b"news 1", b"news 2"]


async def test_publisher_confirms(connect: Connect, names: Names) -> None:
    ch = await (await connect()).channel(publisher_confirms=True, on_return_raises=True)
    q = await ch.declare_queue(names.q("confirmed"), exclusive=True)
    for i in range(5):
        confirmation = await ch.default_exchange.publish(
            aio_pika.Message(f"m{i}".encode()), routing_key=q.name
        )
        assert isinstance(confirmation, pamqp.commands.Basic.Ack)
    with pytest.raises(aio_pika.exceptions.DeliveryError) as info:
        await ch.default_exchange.publish(
            aio_pika.Message(b"lost"), routing_key=names.q("absent"), mandatory=True
        )
    assert info.value.message is not None
    q = await ch.declare_queue(names.q("confirmed"), passive=True)
    assert q.declaration_result.message_count == 5


async def test_basic_get(connect: Connect, names: Names) -> None:
    ch = await (await connect()).channel()
    q = await ch.declare_queue(names.q("get"), exclusive=True)
    assert await q.get(fail=False) is None
    await ch.default_exchange.publish(
        aio_pika.Message(b"one", headers={"k": "v"}, priority=4), routing_key=q.name
    )
    await ch.default_exchange.publish(aio_pika.Message(b"two"), routing_key=q.name)
    message = await q.get(timeout=TIMEOUT)
    assert message is not None
    assert (message.body, message.headers, message.priority) == (b"one", {"k": "v"}, 4)
    assert message.message_count == 1
    await message.ack()
    message = await q.get(no_ack=True, timeout=TIMEOUT)
    assert message is not None and message.body == b"two"
    with pytest.raises(aio_pika.exceptions.QueueEmpty):
        await q.get(timeout=TIMEOUT)


async def test_nack_requeue_redelivers(connect: Connect, names: Names) -> None:
    ch = await (await connect()).channel()
    q = await ch.declare_queue(names.q("retry"), exclusive=True)
    await ch.default_exchange.publish(aio_pika.Message(b"flaky"), routing_key=q.name)
    message = await q.get(timeout=TIMEOUT)
    assert message is not None and not message.redelivered
    await message.nack(requeue=True)
    message = await q.get(timeout=TIMEOUT)
    assert message is not None and message.redelivered and message.body == b"flaky"
    await message.reject(requeue=False)
    assert await q.get(fail=False) is None


async def test_channel_error_leaves_connection_usable(connect: Connect, names: Names) -> None:
    conn = await connect()
    ch = await conn.channel()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity) as info:
        await ch.declare_queue(names.q("missing"), passive=True)
    assert "NOT_FOUND" in str(info.value)
    assert not conn.is_closed
    ch2 = await conn.channel()
    q = await ch2.declare_queue(exclusive=True)
    await ch2.default_exchange.publish(aio_pika.Message(b"fine"), routing_key=q.name)
    message = await q.get(no_ack=True, timeout=TIMEOUT)
    assert message is not None and message.body == b"fine"
    # A second kind of channel error: a 406 on redeclaring with other properties.
    named = await ch2.declare_queue(names.q("plain"), auto_delete=True)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await ch2.declare_queue(named.name, durable=True)
    ch3 = await conn.channel()
    await ch3.declare_queue(exclusive=True)
