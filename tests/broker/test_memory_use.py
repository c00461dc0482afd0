"""The memory alarm counts everything the broker holds for messages: ready, delivered
and awaiting acks, in uncommitted transactions, partly received, waiting to be written;
the per-message overheads it adds are measured here."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import pytest

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.broker.memory import (
    MESSAGE_OVERHEAD,
    UNACKED_OVERHEAD,
    parse_bytes,
    parse_memory_limit,
    total_memory,
)
from kiltmq.protocol import spec
from kiltmq.protocol.connection import MethodReceived
from kiltmq.protocol.frames import content_header_payload, encode_frame, method_frame

pytestmark = pytest.mark.timeout(120)

#: Messages measured: enough that the allocator's own slack does not matter.
MEASURED = 10_000
BODY = b"x" * 100
#: How far a measured overhead may be from the constant.
TOLERANCE = 0.2


async def _settled(client: RawClient, queue: str) -> int:
    """Wait for everything sent so far to be handled; the queue's message count."""
    ok = await client.request(1, spec.QueueDeclare(queue, passive=True), spec.QueueDeclareOk)
    return ok.message_count


def _traced(client: RawClient) -> int:
    client.events.clear()  # what the client received is not the broker's
    client.received.clear()
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def test_the_overheads_per_message_are_measured() -> None:
    """Traced memory per message, less its body, ready in a queue and then delivered to
    a consumer that does not ack: within TOLERANCE of the constants."""
    async with Broker(port=0) as broker:
        client = await RawClient.connect(broker.port)
        await client.open_channel(1)
        await client.request(1, spec.QueueDeclare("q"), spec.QueueDeclareOk)
        client.publish(1, "", "", b"warm-up")  # caches of the publish path
        await _settled(client, "q")
        tracemalloc.start()
        try:
            before = _traced(client)
            for _ in range(MEASURED):
                client.publish(1, "", "q", BODY)
            assert await _settled(client, "q") == MEASURED
            ready = (_traced(client) - before) / MEASURED - len(BODY)
            await client.request(1, spec.BasicConsume("q", "never-acks"), spec.BasicConsumeOk)
            queue = broker.vhosts["/"].queues["q"]
            while queue.ready:
                await asyncio.sleep(0.02)
            await _settled(client, "q")
            unacked = (_traced(client) - before) / MEASURED - len(BODY)
        finally:
            tracemalloc.stop()
        print(f"ready: {ready:.0f} B, unacked: {unacked:.0f} B per message besides its body")
        assert abs(ready - MESSAGE_OVERHEAD) <= MESSAGE_OVERHEAD * TOLERANCE, ready
        assert abs(unacked - UNACKED_OVERHEAD) <= UNACKED_OVERHEAD * TOLERANCE, unacked
        use = broker.memory_use()
        assert use.ready == 0
        assert use.unacked == MEASURED * (len(BODY) + UNACKED_OVERHEAD)


async def test_each_place_messages_are_held_counts() -> None:
    async with Broker(port=0) as broker:
        client = await RawClient.connect(broker.port)
        for number in (1, 2, 3, 4):
            await client.open_channel(number)
        await client.request(1, spec.QueueDeclare("q"), spec.QueueDeclareOk)
        await client.request(1, spec.QueueDeclare("other"), spec.QueueDeclareOk)
        client.publish(1, "", "q", b"r" * 1000)
        await _settled(client, "q")
        assert broker.memory_use().ready == 1000 + MESSAGE_OVERHEAD

        # delivered, awaiting the ack: counted until acked
        await client.request(2, spec.BasicConsume("q", "c"), spec.BasicConsumeOk)
        await _settled(client, "q")
        use = broker.memory_use()
        assert (use.ready, use.unacked) == (0, 1000 + UNACKED_OVERHEAD)

        # acked in a transaction: still held until the commit
        await client.request(2, spec.TxSelect(), spec.TxSelectOk)
        client.send(2, spec.BasicAck(1, False))
        client.publish(2, "", "other", b"t" * 3000)
        await _settled(client, "q")
        use = broker.memory_use()
        assert use.unacked == 1000 + UNACKED_OVERHEAD
        assert use.uncommitted == 3000 + MESSAGE_OVERHEAD
        await client.request(2, spec.TxCommit(), spec.TxCommitOk)
        use = broker.memory_use()
        assert (use.unacked, use.uncommitted) == (0, 0)
        assert use.ready == 3000 + MESSAGE_OVERHEAD  # the committed publish, in "other"
        await client.request(2, spec.BasicCancel("c"), spec.BasicCancelOk)

        # partly received: the body frames so far
        client.send_raw(method_frame(3, spec.BasicPublish(routing_key="q")))
        client.send_raw(encode_frame(2, 3, content_header_payload(60, 50_000, None)))
        client.send_raw(encode_frame(3, 3, b"p" * 20_000))
        await _settled(client, "q")
        assert broker.memory_use().partial == 20_000
        client.send_raw(encode_frame(3, 3, b"p" * 30_000))
        assert await _settled(client, "q") == 1
        assert broker.memory_use().partial == 0
        await client.request(1, spec.QueuePurge("q"), spec.QueuePurgeOk)
        await client.request(1, spec.QueuePurge("other"), spec.QueuePurgeOk)
        await client.close()
        assert broker.memory_use().total == 0


async def test_a_consumer_that_does_not_read_counts_with_its_write_buffer() -> None:
    async with Broker(port=0) as broker:
        sleeper = await RawClient.connect(broker.port)
        await sleeper.open_channel(1)
        await sleeper.request(1, spec.QueueDeclare("q"), spec.QueueDeclareOk)
        await sleeper.request(1, spec.BasicConsume("q", "c", no_ack=True), spec.BasicConsumeOk)
        sleeper.pause_reading()
        publisher = await RawClient.connect(broker.port)
        await publisher.open_channel(1)
        body = b"o" * 100_000
        for _ in range(200):  # 20 MB: more than the kernel's socket buffers take
            publisher.publish(1, "", "q", body)
        await _settled(publisher, "q")
        while broker.memory_use().outbound == 0:
            await asyncio.sleep(0.02)
        sleeper.abort()
        await publisher.close()


async def test_a_consumer_that_never_acks_raises_the_memory_alarm() -> None:
    """With prefetch 0 everything goes to the consumer at once and stays unacked: that
    counts, so the publisher is blocked (connection.blocked, "low on memory") while the
    consumer's connection goes on."""
    limit = 1_000_000
    capabilities = {"connection.blocked": True}
    async with Broker(port=0, memory_limit=limit, memory_check_interval=0.02) as broker:
        consumer = await RawClient.connect(broker.port, capabilities=capabilities)
        await consumer.open_channel(1)
        await consumer.request(1, spec.QueueDeclare("q"), spec.QueueDeclareOk)
        await consumer.request(1, spec.BasicConsume("q", "c"), spec.BasicConsumeOk)
        publisher = await RawClient.connect(broker.port, capabilities=capabilities)
        await publisher.open_channel(1)
        for _ in range(3000):
            publisher.publish(1, "", "q", b"k" * 1024)
        blocked = await publisher.method(0)  # the alarm came while it published
        assert blocked == spec.ConnectionBlocked("low on memory")
        assert broker.alarms == {"memory"}
        assert broker.memory_used() > limit
        assert broker.memory_use().unacked > limit * 0.8
        # the consumer is still read: its ack clears the alarm
        consumer.send(1, spec.BasicAck(0, True))
        unblocked = await publisher.method(0)
        assert unblocked == spec.ConnectionUnblocked()
        assert not any(isinstance(e, MethodReceived) and e.channel == 0 for e in consumer.events)
        publisher.abort()
        consumer.abort()


async def test_a_streams_log_counts_and_raises_the_memory_alarm() -> None:
    """A stream keeps what it was sent, read or not: its log counts (bodies and the
    per-message overhead) until retention drops whole segments; enough of it raises the
    memory alarm."""
    limit = 1_000_000
    capabilities = {"connection.blocked": True}
    stream = {"x-queue-type": "stream", "x-stream-max-segment-size-bytes": 200_000,
              "x-max-length-bytes": 500_000}
    async with Broker(port=0, memory_limit=limit, memory_check_interval=0.02) as broker:
        client = await RawClient.connect(broker.port, capabilities=capabilities)
        await client.open_channel(1)
        await client.request(
            1, spec.QueueDeclare("s", durable=True, arguments=stream), spec.QueueDeclareOk
        )
        for _ in range(3):
            client.publish(1, "", "s", b"s" * 1000)
        await _settled(client, "s")
        assert broker.memory_use().ready == 3 * (1000 + MESSAGE_OVERHEAD)
        # read and acked: still in the log
        await client.request(1, spec.BasicQos(prefetch_count=10), spec.BasicQosOk)
        await client.request(
            1, spec.BasicConsume("s", "c", arguments={"x-stream-offset": "first"}),
            spec.BasicConsumeOk,
        )
        client.send(1, spec.BasicAck(3, True))
        await _settled(client, "s")
        assert broker.memory_use().ready == 3 * (1000 + MESSAGE_OVERHEAD)
        await client.request(1, spec.BasicCancel("c"), spec.BasicCancelOk)
        body = b"b" * 10_000
        for _ in range(120):  # 1.2 MB, with retention down to 2-3 segments: 0.6 MB
            client.publish(1, "", "s", body)
        await _settled(client, "s")
        retained = broker.vhosts["/"].queues["s"]
        assert broker.memory_use().ready < 3 * 200_000 + 120 * MESSAGE_OVERHEAD
        assert broker.memory_use().ready == sum(
            m.size + MESSAGE_OVERHEAD for m in retained.log  # type: ignore[attr-defined]
        )
        await client.request(
            1, spec.QueueDeclare("big", durable=True, arguments={"x-queue-type": "stream"}),
            spec.QueueDeclareOk,
        )
        for _ in range(100):  # 1 MB more, kept whole: over the limit
            client.publish(1, "", "big", body)
        await _settled(client, "big")
        assert broker.memory_use().ready > limit
        while not broker.alarms:  # the next check
            await asyncio.sleep(0.02)
        assert broker.alarms == {"memory"}
        client.abort()


def test_limits_are_read_as_rabbitmq_writes_them() -> None:
    assert parse_bytes("1000") == 1000
    assert parse_bytes("200MB") == 200_000_000
    assert parse_bytes("200MiB") == parse_bytes("200M") == 200 * 2**20
    assert parse_bytes("1GB") == 10**9 and parse_bytes("2GiB") == 2 * 2**30
    assert parse_bytes("64kB") == 64_000 and parse_bytes("64k") == 65536
    total = total_memory()
    assert total is not None and total > 0
    assert parse_memory_limit("0.4") == parse_memory_limit(0.4) == int(total * 0.4)
    assert parse_memory_limit(123) == 123
    assert parse_memory_limit("200MB") == 200_000_000
    for bad in ("lots", "12 parsecs", "-5", "1.5.2", ""):
        with pytest.raises(ValueError):
            parse_memory_limit(bad)
    with pytest.raises(ValueError):
        parse_memory_limit(1.5)
