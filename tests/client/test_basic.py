"""Declare, bind, publish, consume, get, ack/nack/reject, qos: the client's everyday path,
against each broker."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import kiltmq
from kiltmq import BasicProperties, Message
from kiltmq.client import Channel, Connection


async def test_connect_and_server_properties(conn: Connection) -> None:
    assert conn.is_open
    assert conn.server_properties.get("capabilities")
    assert conn.frame_max >= 4096
    assert conn.local_address is not None


async def test_connect_as_context_manager(amqp_url: str) -> None:
    async with kiltmq.connect(amqp_url) as conn:
        ch = await conn.channel()
        assert ch.is_open
    assert conn.is_closed
    assert ch.is_closed


async def test_declare_publish_get(ch: Channel, unique: Callable[[str], str]) -> None:
    queue = unique("q")
    ok = await ch.queue_declare(queue, exclusive=True)
    assert (ok.queue, ok.message_count, ok.consumer_count) == (queue, 0, 0)
    props = BasicProperties(
        content_type="text/plain",
        headers={"n": 1, "s": "x", "nested": {"ok": True}},
        correlation_id="c-1",
        delivery_mode=2,
    )
    await ch.basic_publish(b"hello", routing_key=queue, properties=props)
    await ch.basic_publish("text body", routing_key=queue)
    first = await ch.basic_get(queue)
    assert first is not None
    assert first.body == b"hello"
    assert first.routing_key == queue and first.exchange == ""
    assert first.properties.content_type == "text/plain"
    assert first.properties.correlation_id == "c-1"
    assert first.headers == {"n": 1, "s": "x", "nested": {"ok": True}}
    assert first.message_count == 1
    assert not first.redelivered
    await first.ack()
    second = await ch.basic_get(queue, no_ack=True)
    assert second is not None and second.text() == "text body"
    assert await ch.basic_get(queue) is None
    assert (await ch.queue_declare(queue, passive=True)).message_count == 0


async def test_server_named_queue(ch: Channel) -> None:
    ok = await ch.queue_declare("", exclusive=True)
    assert ok.queue.startswith("amq.gen-")
    await ch.basic_publish(b"x", routing_key=ok.queue)
    message = await ch.basic_get(ok.queue, no_ack=True)
    assert message is not None and message.body == b"x"


async def test_exchanges_and_bindings(ch: Channel, unique: Callable[[str], str]) -> None:
    topic, fanout, queue = unique("topic"), unique("fanout"), unique("q")
    await ch.exchange_declare(topic, "topic")
    await ch.exchange_declare(fanout, "fanout", auto_delete=True)
    await ch.queue_declare(queue, exclusive=True)
    await ch.queue_bind(queue, topic, "kilt.*.red")
    await ch.exchange_bind(fanout, topic, "kilt.#")
    second = (await ch.queue_declare("", exclusive=True)).queue
    await ch.queue_bind(second, fanout)
    await ch.basic_publish(b"a", topic, "kilt.wool.red")
    await ch.basic_publish(b"b", topic, "kilt.wool.blue")
    await ch.basic_publish(b"c", topic, "sporran")
    await ch.tx_select()  # a round trip: everything above has been routed
    await ch.tx_commit()
    assert (await ch.queue_declare(queue, passive=True)).message_count == 1
    assert (await ch.queue_declare(second, passive=True)).message_count == 2
    await ch.queue_unbind(queue, topic, "kilt.*.red")
    await ch.exchange_unbind(fanout, topic, "kilt.#")
    await ch.basic_publish(b"d", topic, "kilt.wool.red")
    await ch.tx_commit()
    assert (await ch.queue_declare(queue, passive=True)).message_count == 1
    assert await ch.queue_purge(queue) == 1
    assert await ch.queue_purge(second) == 2
    assert await ch.queue_delete(queue) == 0
    await ch.exchange_delete(fanout)
    await ch.exchange_delete(topic)


async def test_consume_ack_nack_reject(ch: Channel, unique: Callable[[str], str]) -> None:
    queue = unique("q")
    await ch.queue_declare(queue, exclusive=True)
    for body in (b"ack", b"nack", b"reject", b"requeue"):
        await ch.basic_publish(body, routing_key=queue)
    seen: list[tuple[bytes, bool]] = []
    async with asyncio.timeout(10), ch.consume(queue) as consumer:
        async for message in consumer:
            seen.append((message.body, message.redelivered))
            if message.body == b"ack":
                await message.ack()
            elif message.body == b"nack":
                await message.nack(requeue=False)
            elif message.body == b"reject":
                await message.reject(requeue=False)
            elif not message.redelivered:
                await message.nack(requeue=True)  # comes back, redelivered
            else:
                await message.ack()
                break
    assert seen == [
        (b"ack", False),
        (b"nack", False),
        (b"reject", False),
        (b"requeue", False),
        (b"requeue", True),
    ]
    assert consumer.state.value == "ended"
    assert (await ch.queue_declare(queue, passive=True)).message_count == 0


async def test_cancel_ends_iteration(ch: Channel, unique: Callable[[str], str]) -> None:
    queue = unique("q")
    await ch.queue_declare(queue, exclusive=True)
    consumer = await ch.consume(queue, no_ack=True)
    await ch.basic_publish(b"one", routing_key=queue)
    received: list[bytes] = []

    async def drain() -> None:
        async for message in consumer:
            received.append(message.body)
            await ch.basic_cancel(consumer.consumer_tag)

    async with asyncio.timeout(10):
        await drain()  # ends with StopAsyncIteration after the cancel
    assert received == [b"one"]
    assert ch.consumer(consumer.consumer_tag) is None


async def test_qos_limits_unacked(ch: Channel, unique: Callable[[str], str]) -> None:
    queue = unique("q")
    await ch.queue_declare(queue, exclusive=True)
    await ch.basic_qos(prefetch_count=2)
    for i in range(5):
        await ch.basic_publish(str(i), routing_key=queue)
    held: list[Message] = []
    async with asyncio.timeout(10), ch.consume(queue) as consumer:
        async for message in consumer:
            held.append(message)
            if len(held) == 2:
                break
        # Two are unacked: the broker keeps the other three.
        ok = await ch.queue_declare(queue, passive=True)
        assert ok.message_count == 3
        await held[1].ack(multiple=True)
        async for message in consumer:
            held.append(message)
            await message.ack()
            if len(held) == 5:
                break
    assert [m.body for m in held] == [b"0", b"1", b"2", b"3", b"4"]


async def test_delivery_tags_start_afresh_per_channel(
    conn: Connection, unique: Callable[[str], str]
) -> None:
    queue = unique("q")
    first = await conn.channel()
    await first.queue_declare(queue, exclusive=True)
    for _ in range(3):
        await first.basic_publish(b"x", routing_key=queue)
    tags = []
    for _ in range(2):
        message = await first.basic_get(queue)
        assert message is not None
        tags.append(message.delivery_tag)
    assert tags == [1, 2]
    second = await conn.channel()
    message = await second.basic_get(queue)
    assert message is not None and message.delivery_tag == 1
    await message.ack()
    await first.close()
    await second.queue_delete(queue)


async def test_basic_recover_redelivers(ch: Channel, unique: Callable[[str], str]) -> None:
    queue = unique("q")
    await ch.queue_declare(queue, exclusive=True)
    await ch.basic_publish(b"again", routing_key=queue)
    async with asyncio.timeout(10), ch.consume(queue) as consumer:
        first = await anext(consumer)
        assert not first.redelivered
        await ch.basic_recover(requeue=True)
        second = await anext(consumer)
        assert second.body == b"again" and second.redelivered
        await second.ack()


async def test_callback_consumers(ch: Channel, unique: Callable[[str], str]) -> None:
    queue = unique("q")
    await ch.queue_declare(queue, exclusive=True)
    got_async: list[bytes] = []
    got_sync: list[tuple[bytes, bool]] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def on_async(message: Message) -> None:
        got_async.append(message.body)
        await message.ack()

    def on_sync(message: Message) -> None:
        got_sync.append((message.body, threading.current_thread() is threading.main_thread()))
        message.ack()  # from a worker thread
        if len(got_sync) + len(got_async) == 6:
            loop.call_soon_threadsafe(done.set)

    tag_a = await ch.basic_consume(queue, on_async)
    for i in range(3):
        await ch.basic_publish(f"a{i}", routing_key=queue)
    async with asyncio.timeout(10):
        while len(got_async) < 3:
            await asyncio.sleep(0.01)
    await ch.basic_cancel(tag_a)
    tag_s = await ch.basic_consume(queue, on_sync)
    for i in range(3):
        await ch.basic_publish(f"s{i}", routing_key=queue)
    async with asyncio.timeout(10):
        await done.wait()
    await ch.basic_cancel(tag_s)
    assert got_async == [b"a0", b"a1", b"a2"]
    assert [body for body, _ in got_sync] == [b"s0", b"s1", b"s2"]
    assert not any(in_main for _, in_main in got_sync)  # sync handlers ran in a thread
    assert (await ch.queue_declare(queue, passive=True)).message_count == 0


async def test_failing_callback_nacks(ch: Channel, unique: Callable[[str], str]) -> None:
    queue, dead = unique("q"), unique("dead")
    dlx = unique("dlx")
    await ch.exchange_declare(dlx, "fanout", auto_delete=True)
    await ch.queue_declare(dead, auto_delete=True)
    await ch.queue_bind(dead, dlx)
    await ch.queue_declare(queue, auto_delete=True, arguments={"x-dead-letter-exchange": dlx})

    async def broken(message: Message) -> None:
        raise RuntimeError("handler bug")

    tag = await ch.basic_consume(queue, broken)
    await ch.basic_publish(b"poison", routing_key=queue)
    async with asyncio.timeout(10):
        while (await ch.queue_declare(dead, passive=True)).message_count == 0:
            await asyncio.sleep(0.02)
    await ch.basic_cancel(tag)
    message = await ch.basic_get(dead, no_ack=True)
    assert message is not None and message.body == b"poison"


async def test_large_message_is_split_in_frames(
    ch: Channel, conn: Connection, unique: Callable[[str], str]
) -> None:
    queue = unique("q")
    await ch.queue_declare(queue, exclusive=True)
    body = bytes(range(256)) * (conn.frame_max // 256 * 3 + 7)
    await ch.basic_publish(body, routing_key=queue)
    message = await ch.basic_get(queue, no_ack=True)
    assert message is not None and message.body == body


async def test_channel_flow_and_close_idempotent(conn: Connection) -> None:
    ch = await conn.channel()
    assert await ch.channel_flow(True) is True
    await ch.close()
    await ch.close()
    assert ch.is_closed


async def test_amqplain_authentication(amqp_url: str) -> None:
    separator = "&" if "?" in amqp_url else "?"
    async with kiltmq.connect(amqp_url + separator + "auth_mechanism=AMQPLAIN") as conn:
        assert (await conn.channel()).is_open


async def test_connection_name_and_heartbeat_are_negotiated(amqp_url: str) -> None:
    async with kiltmq.connect(amqp_url, name="kiltmq test", heartbeat=7) as conn:
        assert conn.heartbeat == 7
        assert conn.name == "kiltmq test"
