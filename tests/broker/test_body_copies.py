"""A large body goes from the publisher's frame to the consumer's output batch without a
copy of its own: the delivery queues the message's body object itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import pytest

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.protocol import ContentReceived, spec

from .transport_spy import Calls, WriteSpy, pieces

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("size", [100, 4096, 65536])
async def test_a_large_body_is_queued_for_output_as_it_is(
    abroker: Broker, size: int
) -> None:
    body = bytes(i % 251 for i in range(size))
    publisher = await RawClient.connect(abroker.port)
    await publisher.open_channel(1)
    await publisher.call(1, spec.QueueDeclare("big"))
    publisher.publish(1, "", "big", body)
    ok = await publisher.call(1, spec.QueueDeclare("big", passive=True))
    assert isinstance(ok, spec.QueueDeclareOk) and ok.message_count == 1
    message = next(iter(abroker.vhosts["/"].queues["big"].ready)).message

    consumer = await RawClient.connect(abroker.port)
    await consumer.open_channel(1)
    queued: list[bytes] = []
    for c in abroker.connections:
        send_raw = c.core.send_raw

        def spy(data: bytes, send_raw: Callable[[bytes], None] = send_raw) -> None:
            queued.append(data)
            send_raw(data)

        c.core.send_raw = spy  # type: ignore[method-assign]
    consumer.send(1, spec.BasicConsume("big", "c", no_ack=True))
    got = await consumer.event()
    while not isinstance(got, ContentReceived):
        got = await consumer.event()
    assert isinstance(got.method, spec.BasicDeliver) and got.body == body
    assert any(data is message.body for data in queued) == (size > 2048)
    await publisher.disconnect()
    await consumer.disconnect()


async def _delivered_writes(size: int) -> tuple[bytes, list[object]]:
    """Publish one body of ``size`` bytes, consume it, and return the message's body
    object and what the broker's transports were given to write."""
    body = bytes(i % 251 for i in range(size))
    async with Broker(port=0) as broker:
        publisher = await RawClient.connect(broker.port)
        await publisher.open_channel(1)
        await publisher.call(1, spec.QueueDeclare("big"))
        publisher.publish(1, "", "big", body)
        await publisher.call(1, spec.QueueDeclare("big", passive=True))
        stored = next(iter(broker.vhosts["/"].queues["big"].ready)).message.body
        consumer = await RawClient.connect(broker.port)
        await consumer.open_channel(1)
        calls: Calls = []
        for c in broker.connections:
            c.transport = cast(asyncio.Transport, WriteSpy(c.transport, calls))
        consumer.send(1, spec.BasicConsume("big", "c", no_ack=True))
        got = await consumer.event()
        while not isinstance(got, ContentReceived):
            got = await consumer.event()
        assert got.body == body
        await publisher.disconnect()
        await consumer.disconnect()
    return stored, pieces(calls)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_large_body_is_written_without_a_join_where_the_loop_allows(loop: str) -> None:
    """uvloop writes a list of buffers with one writev: the body goes to the socket as the
    object the publisher's frame made. asyncio's loop (Python 3.11) would join a list, so
    there the batch is written as one joined bytes object."""
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        new_loop = uvloop.new_event_loop()
    else:
        new_loop = asyncio.new_event_loop()
    try:
        stored, written = new_loop.run_until_complete(_delivered_writes(65536))
    finally:
        new_loop.close()
    assert any(part is stored for part in written) == (loop == "uvloop")
    assert b"".join(cast(list[bytes], written)).count(stored) == 1
