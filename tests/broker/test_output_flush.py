"""Output caused by a read goes out at the end of that read: a delivery to a consumer on
another connection is written when the publisher's read is done, not in a callback of
its own one loop iteration later; output no read caused still goes out in the same loop
iteration."""

from __future__ import annotations

import asyncio

import pytest

from kiltmq.bench.loadclient import encode_publish
from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.protocol import spec
from kiltmq.protocol.events import ContentReceived

from .loops import LOOPS, running

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("loop", LOOPS)
async def test_a_delivery_is_written_at_the_end_of_the_publishers_read(loop: str) -> None:
    with running(Broker(port=0), loop) as broker:
        consumer = await RawClient.connect(broker.port)
        await consumer.open_channel(1)
        await consumer.request(1, spec.QueueDeclare(queue="flushed"), spec.QueueDeclareOk)
        await consumer.request(
            1, spec.BasicConsume(queue="flushed", no_ack=True), spec.BasicConsumeOk
        )
        (consumer_conn,) = broker.connections
        publisher = await RawClient.connect(broker.port)
        await publisher.open_channel(1)
        (publisher_conn,) = broker.connections - {consumer_conn}
        frames = encode_publish("", "flushed", b"at once", None, frame_max=publisher.frame_max)

        def read() -> tuple[int, int]:
            """The consumer's bytes written before and after the publisher's read, as
            the loop would run it, with no loop iteration after it."""
            before = consumer_conn.send_oct
            publisher_conn.data_received(frames)
            return before, consumer_conn.send_oct

        for attempt in range(2):
            before, after = broker.call_in_loop(read)
            assert after > before, attempt
            event = await consumer.event()
            assert isinstance(event, ContentReceived)
            assert event.body == b"at once"
        await publisher.close()
        await consumer.close()


async def test_output_outside_a_read_goes_out_in_the_same_loop_iteration(
    abroker: Broker,
) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    (conn,) = abroker.connections
    written = conn.send_oct
    conn.send_method(1, spec.BasicQosOk())  # as a timer or the store would
    assert conn.send_oct == written
    await asyncio.sleep(0)
    assert conn.send_oct > written
    assert isinstance((await client.method(1)), spec.BasicQosOk)
    await client.close()
