"""What the broker keeps for an idle connection with one open channel, from tracemalloc:
the Python objects allocated by broker code (the event loop's transport and socket aside)."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.protocol import spec

pytestmark = pytest.mark.timeout(120)

CONNECTIONS = 50
#: Bytes per idle connection with one channel at most (about 3,900 measured on CPython
#: 3.11; 6,270 before the channel had slots and made its confirm set and consumer-timeout
#: records only when needed).
LIMIT = 4_500


def _broker_bytes() -> int:
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, "*/kiltmq/broker/*", all_frames=True)]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


async def test_an_idle_connection_with_one_channel_stays_small() -> None:
    async with Broker(port=0) as broker:
        warm = await RawClient.connect(broker.port)  # caches of the first connection
        await warm.open_channel(1)
        clients: list[RawClient] = []
        tracemalloc.start(12)
        try:
            before = _broker_bytes()
            for _ in range(CONNECTIONS):
                client = await RawClient.connect(broker.port)
                await client.open_channel(1)
                clients.append(client)
            # a round trip on the last one: the broker has handled everything sent
            passive = spec.ExchangeDeclare("amq.direct", passive=True)
            await clients[-1].request(1, passive, spec.ExchangeDeclareOk)
            per = (_broker_bytes() - before) / CONNECTIONS
        finally:
            tracemalloc.stop()
            for client in [warm, *clients]:
                await client.close()
    assert 0 < per <= LIMIT, per
