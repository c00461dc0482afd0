"""A large body goes from the publisher's frame to the consumer's output batch without a
copy of its own: the delivery queues the message's body object itself."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.protocol import ContentReceived, spec

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
