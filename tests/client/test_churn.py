"""No memory growth when channels and consumers come and go by the thousand."""

from __future__ import annotations

import gc
import tracemalloc

from kiltmq.client import Connection

CYCLES = 1500
#: Allowed growth of traced memory over CYCLES after warming up (a leak of one small
#: object per cycle would exceed it).
ALLOWED_GROWTH = 64 * 1024


async def _churn(conn: Connection, queue: str, cycles: int) -> None:
    holder = await conn.channel()
    for _ in range(cycles):
        ch = await conn.channel()
        consumer = await ch.consume(queue)
        await consumer.cancel()
        tag = await holder.basic_consume(queue, lambda message: None)
        await holder.basic_cancel(tag)
        await ch.close()
    await holder.close()


async def test_channel_and_consumer_churn_does_not_grow_memory(conn: Connection) -> None:
    setup = await conn.channel()
    queue = (await setup.queue_declare("", exclusive=True)).queue
    tracemalloc.start()
    try:
        await _churn(conn, queue, 200)  # warm up caches and free lists
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        await _churn(conn, queue, CYCLES)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"traced memory grew by {after - before} bytes")
    assert after - before < ALLOWED_GROWTH, f"grew by {after - before} bytes"
    assert list(conn._channels) == [setup.number]
    assert setup._consumers == {}
