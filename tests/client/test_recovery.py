"""Automatic recovery: reconnect after the connection drops and restore what the
application declared; unconfirmed publishes are reported, never silently lost; the
broker's basic.cancel ends a consumer or resubscribes it, per its policy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import kiltmq
from kiltmq import ConnectionLost, Message
from kiltmq.client import Connection, Consumer

from .conftest import TcpProxy, rabbitmqctl

TIMEOUT = 20


async def _close_from_rabbitmq(conn: Connection) -> None:
    """Have RabbitMQ close the client's connection (connection.close 320), found by the
    client's local port in ``rabbitmqctl list_connections``."""
    address = conn.local_address
    assert address is not None
    prefix = f"{address[0]}:{address[1]} ->"
    listing = await rabbitmqctl("list_connections", "-q", "--no-table-headers", "pid", "name")
    for line in listing.splitlines():
        pid, _, name = line.partition("\t")
        if name.startswith(prefix):
            await rabbitmqctl("close_connection", pid, "closed by the recovery test")
            return
    pytest.fail(f"connection {prefix} not found in rabbitmqctl list_connections")


def _recovered_event(conn: Connection) -> asyncio.Event:
    event = asyncio.Event()
    conn.on_recovered.append(event.set)
    return event


async def _next(consumer: Consumer) -> Message:
    async with asyncio.timeout(TIMEOUT):
        return await anext(consumer)


async def test_recovery_after_the_server_closes_the_connection(
    rabbitmq_url: str, unique: Callable[[str], str]
) -> None:
    exchange, named = unique("fanout"), unique("work")
    conn = await kiltmq.connect(rabbitmq_url, name=unique("conn"), recovery_initial_delay=0.05)
    try:
        recovered = _recovered_event(conn)
        ch = await conn.channel()
        await ch.basic_qos(10)
        publisher = await conn.channel()
        await publisher.confirm_select()
        await ch.exchange_declare(exchange, "fanout")
        temporary = (await ch.queue_declare("", exclusive=True)).queue
        await ch.queue_bind(temporary, exchange)
        await ch.queue_declare(named)
        fanned = await ch.consume(temporary)
        work = await ch.consume(named)
        for i in range(3):
            await publisher.basic_publish(b"f%d" % i, exchange)
        for i in range(3):
            message = await _next(fanned)
            assert message.body == b"f%d" % i
            await message.ack()
        for i in range(1, 5):
            await publisher.basic_publish(b"n%d" % i, routing_key=named)
        for i in (1, 2):
            message = await _next(work)
            assert message.body == b"n%d" % i
            await message.ack()
        unacked = await _next(work)
        assert unacked.body == b"n3"

        await _close_from_rabbitmq(conn)
        await asyncio.wait_for(recovered.wait(), TIMEOUT)
        assert conn.recoveries == 1 and conn.is_open and ch.is_open

        # The server-named queue was declared again under a new name; the old name
        # keeps working on this connection.
        assert conn.current_name(temporary) != temporary
        assert fanned.current_queue == conn.current_name(temporary)
        await unacked.ack()  # its delivery tag died with the old connection: a no-op
        # Nothing acked is redelivered, nothing unacked is lost.
        redelivered = await _next(work)
        assert (redelivered.body, redelivered.redelivered) == (b"n3", True)
        await redelivered.ack()
        last = await _next(work)
        assert last.body == b"n4"
        await last.ack()
        # Bindings and consumers are back: the fanout still reaches the consumer.
        await publisher.basic_publish(b"after", exchange)
        assert (await _next(fanned)).body == b"after"
        await publisher.basic_publish(b"by old name", routing_key=temporary)
        assert (await _next(fanned)).body == b"by old name"
        ok = await ch.queue_declare(named, passive=True)
        assert ok.message_count == 0
        await ch.queue_delete(named)
        await ch.exchange_delete(exchange)
    finally:
        await conn.close()


async def test_network_drop_reports_unconfirmed_and_recovers(
    proxy: TcpProxy, unique: Callable[[str], str]
) -> None:
    conn = await kiltmq.connect(proxy.url, recovery_initial_delay=0.05)
    try:
        recovered = _recovered_event(conn)
        ch = await conn.channel()
        await ch.confirm_select()
        queue = (await ch.queue_declare("", exclusive=True)).queue
        consumer = await ch.consume(queue, no_ack=True)
        await ch.basic_publish(b"before", routing_key=queue)
        assert (await _next(consumer)).body == b"before"

        proxy.freeze()  # the broker never sees these, so it cannot confirm them
        in_flight = [ch.publish_nowait(b"lost %d" % i, routing_key=queue) for i in range(10)]
        await asyncio.sleep(0.1)
        proxy.drop_all()
        proxy.thaw()
        results = await asyncio.wait_for(
            asyncio.gather(*in_flight, return_exceptions=True), TIMEOUT
        )
        assert all(isinstance(result, ConnectionLost) for result in results), results

        await asyncio.wait_for(recovered.wait(), TIMEOUT)
        assert proxy.connections == 2
        # wait_for_confirms does not say "all confirmed" after publishes were lost
        with pytest.raises(ConnectionLost):
            await ch.wait_for_confirms(timeout=TIMEOUT)
        await ch.basic_publish(b"after", routing_key=queue)  # confirmed again
        assert (await _next(consumer)).body == b"after"
        await ch.wait_for_confirms(timeout=TIMEOUT)
    finally:
        await conn.close()


async def test_calls_wait_for_recovery(proxy: TcpProxy) -> None:
    conn = await kiltmq.connect(proxy.url, recovery_initial_delay=0.3)
    try:
        ch = await conn.channel()
        queue = (await ch.queue_declare("", exclusive=True)).queue
        proxy.drop_all()
        async with asyncio.timeout(TIMEOUT):
            while conn.is_open:
                await asyncio.sleep(0.01)
        # Issued while recovering: waits for the new connection, then runs.
        ok = await asyncio.wait_for(ch.queue_declare(queue, passive=True), TIMEOUT)
        assert ok.queue == queue  # the name the application knows
        assert conn.current_name(queue) != queue
        await ch.basic_publish(b"x", routing_key=queue)
        assert conn.recoveries == 1
        new = await conn.channel()
        assert new.is_open
    finally:
        await conn.close()


async def test_without_recovery_the_connection_closes(proxy: TcpProxy) -> None:
    conn = await kiltmq.connect(proxy.url, recovery=False)
    ch = await conn.channel()
    await ch.confirm_select()
    queue = (await ch.queue_declare("", exclusive=True)).queue
    consumer = await ch.consume(queue)
    proxy.freeze()
    pending = ch.publish_nowait(b"x", routing_key=queue)
    proxy.drop_all()
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(pending, TIMEOUT)
    with pytest.raises(ConnectionLost):
        await _next(consumer)
    assert isinstance(await asyncio.wait_for(conn.wait_closed(), TIMEOUT), ConnectionLost)
    with pytest.raises(kiltmq.ChannelClosed):
        await ch.queue_declare("")
    assert proxy.connections == 1


async def test_broker_cancel_stops_consumer(
    conn: Connection, unique: Callable[[str], str]
) -> None:
    queue = unique("doomed")
    ch = await conn.channel()
    await ch.queue_declare(queue)
    consumer = await ch.consume(queue)
    other = await conn.channel()
    await other.queue_delete(queue)  # the broker sends basic.cancel to the consumer
    with pytest.raises(StopAsyncIteration):
        await _next(consumer)
    assert ch.is_open


async def test_broker_cancel_resubscribes(
    amqp_url: str, conn: Connection, unique: Callable[[str], str]
) -> None:
    queue, exchange = unique("phoenix"), unique("direct")
    ch = await conn.channel()
    await ch.exchange_declare(exchange, "direct", auto_delete=True)
    await ch.queue_declare(queue, auto_delete=True)
    await ch.queue_bind(queue, exchange, "key")
    consumer = await ch.consume(queue, on_cancel="resubscribe")
    await ch.basic_publish(b"first", exchange, "key")
    first = await _next(consumer)
    await first.ack()
    # Someone else deletes the queue under the consumer ...
    async with kiltmq.connect(amqp_url) as admin:
        admin_ch = await admin.channel()
        await admin_ch.queue_delete(queue)
    # ... the consumer declares it again, binds it and goes on.
    async with asyncio.timeout(TIMEOUT):
        while consumer.resubscriptions == 0:
            await asyncio.sleep(0.01)
    assert (await ch.queue_declare(queue, passive=True)).consumer_count == 1
    await ch.basic_publish(b"again", exchange, "key")
    message = await _next(consumer)
    assert message.body == b"again"
    await message.ack()
    await consumer.cancel()


async def test_recovery_gives_up_after_its_attempts(proxy: TcpProxy) -> None:
    conn = await kiltmq.connect(proxy.url, recovery_attempts=2, recovery_initial_delay=0.05)
    ch = await conn.channel()
    consumer = await ch.consume((await ch.queue_declare("", exclusive=True)).queue)
    await proxy.close()  # the broker is gone for good: nothing listens any more
    reason = await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    assert isinstance(reason, ConnectionLost) and "2 attempts" in str(reason)
    with pytest.raises(ConnectionLost):
        await _next(consumer)
    with pytest.raises(kiltmq.ChannelClosed):
        await ch.queue_declare("")


async def test_close_while_recovering(proxy: TcpProxy) -> None:
    conn = await kiltmq.connect(proxy.url, recovery_initial_delay=0.05)
    ch = await conn.channel()
    await proxy.close()
    async with asyncio.timeout(TIMEOUT):
        while conn.is_open:
            await asyncio.sleep(0.01)
    assert conn.state.value == "recovering"
    await asyncio.wait_for(conn.close(), TIMEOUT)
    assert conn.is_closed and conn.close_reason is None
    assert ch.is_closed
