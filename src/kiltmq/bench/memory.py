"""Memory per queued message and per idle connection, from the broker's resident memory.

Per queued message: declare a queue, publish and consume a warm-up of the same messages,
read the broker's RSS (VmRSS of its process), publish N messages with publisher confirms
(at most 1,000 unconfirmed) while nobody consumes, wait until the queue holds them, let the
broker settle, read RSS again: (after - before) / N. Per connection: the same around
opening N connections, each with one open channel, that then stay idle.
"""

from __future__ import annotations

import asyncio
import time

from kiltmq.bench import procstat
from kiltmq.bench.loadclient import LoadClient, connect, encode_publish
from kiltmq.bench.results import Result
from kiltmq.bench.topology import Topology
from kiltmq.protocol import spec

__all__ = ["SETTLE", "measure_connections", "measure_queue"]

SETTLE = 1.0
"""Seconds to wait before reading the memory after the N messages or connections."""

_WINDOW = 1000


def _rss(pid: int | None) -> int | None:
    try:
        return procstat.rss_bytes(pid) if pid is not None else None
    except (OSError, RuntimeError):
        return None


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
    ctl: LoadClient, url: str, pid: int | None, topology: Topology, count: int, result: Result
) -> None:
    """Memory per message in ``topology``'s (declared, empty) queue, into ``result``."""
    queue = topology.queues[0]
    await _publish_confirmed(url, topology, min(count, 1000))
    await ctl.request(1, spec.QueuePurge(queue=queue), spec.QueuePurgeOk)
    await asyncio.sleep(SETTLE)
    started = time.monotonic()
    before = _rss(pid)
    cpu = procstat.cpu_seconds_or_none(pid)
    await _publish_confirmed(url, topology, count)
    result.accounted = await topology.depth(ctl)
    await asyncio.sleep(SETTLE)
    _finish(result, pid, before, cpu, started, count)


async def measure_connections(url: str, pid: int | None, count: int, result: Result) -> None:
    """Memory per idle connection (with one open channel), into ``result``."""
    clients: list[LoadClient] = []
    try:
        await asyncio.sleep(SETTLE)
        started = time.monotonic()
        before = _rss(pid)
        cpu = procstat.cpu_seconds_or_none(pid)
        for _ in range(count):
            client = await connect(url)
            clients.append(client)
            await client.open_channel(1)
        result.accounted = sum(1 for c in clients if c.error is None and not c.closed)
        await asyncio.sleep(SETTLE)
        _finish(result, pid, before, cpu, started, count)
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def _finish(
    result: Result,
    pid: int | None,
    before: int | None,
    cpu: float | None,
    started: float,
    count: int,
) -> None:
    after = _rss(pid)
    end_cpu = procstat.cpu_seconds_or_none(pid)
    result.window = time.monotonic() - started
    result.messages = result.published = result.expected = count
    if cpu is not None and end_cpu is not None:
        result.broker_cpu = end_cpu - cpu
    result.broker_rss = after
    if before is not None and after is not None:
        result.memory_per = (after - before) / count
