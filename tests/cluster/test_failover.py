"""Failover on a real 3-node RabbitMQ cluster: the node a client is connected to is
killed (kill -9) in the middle of publishing and consuming a quorum queue; the client
moves to another node with its topology and consumers, and no confirmed message is lost.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

import kiltmq
from kiltmq import ConnectionLost, Message, PublishNacked
from kiltmq.client import Channel, Connection

from .conftest import RabbitMQCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

TIMEOUT = 120
WINDOW = 200  # publishes in flight at a time
AFTER = 300  # publishes after the connection loss


async def _connect(cluster: RabbitMQCluster, name: str) -> Connection:
    return await kiltmq.connect(
        cluster.urls, name=name, recovery_initial_delay=0.2, rpc_timeout=TIMEOUT
    )


async def _publish(
    conn: Connection,
    ch: Channel,
    queue: str,
    lost: asyncio.Event,
    outcomes: dict[int, asyncio.Future[None]],
) -> Channel:
    """Publish numbered messages with WINDOW in flight until the connection is lost, then
    AFTER more (sent once recovery is done), then one at a time until one is confirmed;
    return the channel that published it.

    The quorum queue nacks publishes while it has no leader. RabbitMQ 3.10 also goes on
    nacking them, for as long as the channel lives, when the channel's first publish to
    the queue came while the queue's record still named the dead leader (the channel's
    queue client keeps asking that node); a new channel asks the current leader. So after
    a nack the next attempt goes on a new channel, as an application would retry."""
    number = 0
    while not lost.is_set():
        if len(outcomes) - sum(f.done() for f in outcomes.values()) >= WINDOW:
            pending = [f for f in outcomes.values() if not f.done()]
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            continue
        outcomes[number] = ch.publish_nowait(str(number).encode(), routing_key=queue)
        number += 1
        await asyncio.sleep(0)
    for _ in range(AFTER):
        outcomes[number] = ch.publish_nowait(str(number).encode(), routing_key=queue)
        number += 1
    while True:
        outcomes[number] = ch.publish_nowait(str(number).encode(), routing_key=queue)
        number += 1
        try:
            await outcomes[number - 1]
            return ch
        except PublishNacked:
            await asyncio.sleep(0.05)
            ch = await conn.channel()
            await ch.confirm_select()


async def test_killing_the_connected_node_loses_no_confirmed_message(
    rabbitmq_cluster: RabbitMQCluster,
) -> None:
    cluster = rabbitmq_cluster
    queue = f"test.quorum.{uuid.uuid4().hex[:8]}"
    publisher = await _connect(cluster, "cluster test publisher")
    consumer_conn = await _connect(cluster, "cluster test consumer")
    killed: int | None = None
    try:
        # Both start on node 1, the first address.
        assert publisher.parameters.port == consumer_conn.parameters.port == cluster.ports[0]
        ch = await publisher.channel()
        await ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        await ch.confirm_select()

        deliveries: list[tuple[int, bool]] = []
        cch = await consumer_conn.channel()
        await cch.basic_qos(100)

        async def on_message(message: Message) -> None:
            deliveries.append((int(message.body), message.redelivered))
            await message.ack()

        tag = await cch.basic_consume(queue, on_message)

        lost = asyncio.Event()
        publisher.on_connection_lost.append(lambda error: lost.set())
        recovered = [asyncio.Event(), asyncio.Event()]
        publisher.on_recovered.append(recovered[0].set)
        consumer_conn.on_recovered.append(recovered[1].set)

        outcomes: dict[int, asyncio.Future[None]] = {}
        publishing = asyncio.create_task(_publish(publisher, ch, queue, lost, outcomes))
        async with asyncio.timeout(TIMEOUT):
            while sum(f.done() and not f.exception() for f in outcomes.values()) < 500:
                await asyncio.sleep(0.05)  # let some messages be confirmed first
        killed = cluster.node_of(publisher.parameters.port)
        await cluster.kill(killed)

        async with asyncio.timeout(TIMEOUT):
            last = await publishing
            await asyncio.gather(*(event.wait() for event in recovered))
            await asyncio.gather(*outcomes.values(), return_exceptions=True)
        assert publisher.parameters.port != cluster.ports[killed - 1]
        assert consumer_conn.parameters.port != cluster.ports[killed - 1]

        # Every publish has an outcome: confirmed; failed with ConnectionLost (those in
        # flight when the node died); or nacked (while the queue elected a new leader).
        # None is left pending, none is claimed confirmed that was not.
        results = {n: f.exception() for n, f in outcomes.items()}
        confirmed = {n for n, error in results.items() if error is None}
        lost_ones = {n for n, error in results.items() if isinstance(error, ConnectionLost)}
        nacked = {n for n, error in results.items() if isinstance(error, PublishNacked)}
        failed = lost_ones | nacked
        assert not set(results) - confirmed - failed, results
        assert lost_ones, "publishes were in flight when the node was killed"
        assert max(outcomes) in confirmed
        with pytest.raises(ConnectionLost):
            await ch.wait_for_confirms()
        # The channel that got that confirm goes on getting them.
        extra = max(outcomes) + 1
        await last.basic_publish(str(extra).encode(), routing_key=queue)
        confirmed.add(extra)

        # The consumer resumed on the new node: every confirmed message arrives.
        async with asyncio.timeout(TIMEOUT):
            while not confirmed <= {n for n, _ in deliveries}:
                await asyncio.sleep(0.05)
        # A message comes twice only when its first delivery was not acknowledged
        # before the node died: the repeat is flagged as a redelivery.
        seen: set[int] = set()
        for number, redelivered in deliveries:
            assert number not in seen or redelivered, f"message {number} duplicated"
            seen.add(number)

        # The killed node starts again and rejoins; the queue is readable through it.
        await cluster.restart(killed)
        killed = None
        await cluster.wait_clustered(TIMEOUT)
        await cch.basic_cancel(tag)
        async with kiltmq.connect(cluster.urls[0], rpc_timeout=TIMEOUT) as node1:
            check = await node1.channel()
            await check.confirm_select()
            await check.basic_publish(b"after the restart", routing_key=queue)
            async with asyncio.timeout(TIMEOUT):
                while (got := await check.basic_get(queue)) is None:
                    await asyncio.sleep(0.05)
            assert got.body in (b"after the restart", *(str(n).encode() for n in failed))
            await check.queue_delete(queue)
    finally:
        if killed is not None:
            await cluster.restart(killed)
        await publisher.close()
        await consumer_conn.close()

