"""A big read pauses reading its connection until the next loop turn, so that one
publisher's backlog cannot hold up the other connections (uvloop reads a busy socket up
to 32 times in one turn)."""

from __future__ import annotations

import asyncio

import pytest

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.broker.server import READ_TURN
from kiltmq.protocol import spec
from kiltmq.protocol.frames import HEARTBEAT_FRAME

pytestmark = pytest.mark.timeout(60)


async def test_a_big_read_waits_for_the_next_loop_turn(abroker: Broker) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    (conn,) = abroker.connections
    assert conn.transport is not None
    conn.data_received(HEARTBEAT_FRAME * 10)  # a small read changes nothing
    assert conn.transport.is_reading()
    conn.data_received(HEARTBEAT_FRAME * (READ_TURN // len(HEARTBEAT_FRAME) + 1))
    assert not conn.transport.is_reading()
    for _ in range(3):
        await asyncio.sleep(0)
    assert conn.transport.is_reading()
    ok = await client.request(1, spec.QueueDeclare(queue="after"), spec.QueueDeclareOk)
    assert ok.queue == "after"
    await client.close()
