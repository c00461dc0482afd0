"""Memory per queued message and per idle connection, from the broker's resident memory.

Per queued message: declare a queue, publish and consume a warm-up of the same messages,
let the broker settle and read its RSS (VmRSS of its process), publish N messages with
publisher confirms (at most 1,000 unconfirmed) while nobody consumes, wait until the queue
holds them, let the broker settle, read RSS again: (after - before) / N. Per connection:
the same around opening N connections, each with one open channel, that then stay idle.

Settled means the RSS moved by at most :data:`SETTLE_TOLERANCE` over the last
:data:`SETTLE_WINDOW` seconds (read every 0.25 s), the same test for every broker: a fresh
Erlang VM gives memory back for some 20 s after it boots, and after a burst of work.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from kiltmq.bench import procstat
from kiltmq.bench.loadclient import LoadClient, connect, encode_publish
from kiltmq.bench.results import Result
from kiltmq.bench.topology import Topology
from kiltmq.protocol import spec

__all__ = [
    "SETTLE_TOLERANCE",
    "SETTLE_WINDOW",
    "measure_connections",
    "measure_queue",
    "settled_rss",
]

SETTLE_WINDOW = 3.0
"""Seconds over which the RSS must stay within :data:`SETTLE_TOLERANCE` to count as settled."""

SETTLE_TOLERANCE = 64 << 10
"""Bytes the RSS may move within :data:`SETTLE_WINDOW` and still count as settled."""

_SAMPLE = 0.25

_WINDOW = 1000


def _rss(pid: int | None) -> int | None:
    try:
        return procstat.rss_bytes(pid) if pid is not None else None
    except (OSError, RuntimeError):
        return None


async def settled_rss(pid: int | None, timeout: float) -> tuple[int | None, bool]:
    """The RSS of ``pid`` once settled, or after ``timeout`` seconds; and whether it settled
    (None and False if it cannot be read)."""
    readings: deque[tuple[float, int]] = deque()
    deadline = time.monotonic() + timeout
    while True:
        rss, now = _rss(pid), time.monotonic()
        if rss is None:
            return None, False
        readings.append((now, rss))
        while now - readings[0][0] > SETTLE_WINDOW:
            readings.popleft()
        span = max(r for _, r in readings) - min(r for _, r in readings)
        # Settled: readings that cover the whole window (the oldest one is just inside it).
        if now - readings[0][0] >= SETTLE_WINDOW - _SAMPLE and span <= SETTLE_TOLERANCE:
            return rss, True
        if now >= deadline:
            return rss, False
        await asyncio.sleep(_SAMPLE)


async def _publish_confirmed(url: str, topology: Topology, count: int) -> None:
    payload = topology.scenario.payload
    client = await connect(url)
    try:
        await client.open_channel(1)
        await client.select_confirms(1)
        frame = encode_publish(
            "", topology.queues[0], payload.body, payload.properties, 1, client.frame_max
        )
        published = 0
        while published < count:
            if published - client.confirmed >= _WINDOW:
                await client.wait_confirm()
                continue
            n = min(count - published, 100, _WINDOW - (published - client.confirmed))
            client.send_raw(frame * n)
            published += n
            await asyncio.sleep(0)
        while client.confirmed < count:
            await client.wait_confirm()
        if client.nacked:
            raise RuntimeError(f"{client.nacked} publishes were nacked")
    finally:
        await client.close()


async def measure_queue(
    ctl: LoadClient,
    url: str,
    pid: int | None,
    topology: Topology,
    count: int,
    result: Result,
    settle: float,
) -> None:
    """Memory per message in ``topology``'s (declared, empty) queue, into ``result``;
    ``settle``: seconds at most to wait for the RSS to settle, each time."""
    queue = topology.queues[0]
    await _publish_confirmed(url, topology, min(count, 1000))
    await ctl.request(1, spec.QueuePurge(queue=queue), spec.QueuePurgeOk)
    before, settled = await settled_rss(pid, settle)
    started = time.monotonic()
    cpu = procstat.cpu_seconds_or_none(pid)
    await _publish_confirmed(url, topology, count)
    result.accounted = await topology.depth(ctl)
    await _finish(result, pid, before, settled, settle, cpu, started, count)


async def measure_connections(
    url: str, pid: int | None, count: int, result: Result, settle: float
) -> None:
    """Memory per idle connection (with one open channel), into ``result``; ``settle``
    as for :func:`measure_queue`."""
    clients: list[LoadClient] = []
    try:
        before, settled = await settled_rss(pid, settle)
        started = time.monotonic()
        cpu = procstat.cpu_seconds_or_none(pid)
        for _ in range(count):
            client = await connect(url)
            clients.append(client)
            await client.open_channel(1)
        result.accounted = sum(1 for c in clients if c.error is None and not c.closed)
        await _finish(result, pid, before, settled, settle, cpu, started, count)
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def _finish(
    result: Result,
    pid: int | None,
    before: int | None,
    settled: bool,
    settle: float,
    cpu: float | None,
    started: float,
    count: int,
) -> None:
    after, settled_after = await settled_rss(pid, settle)
    result.memory_settled = settled and settled_after
    end_cpu = procstat.cpu_seconds_or_none(pid)
    result.window = time.monotonic() - started
    result.messages = result.published = result.expected = count
    if cpu is not None and end_cpu is not None:
        result.broker_cpu = end_cpu - cpu
    result.broker_rss = after
    if before is not None and after is not None:
        result.memory_per = (after - before) / count
