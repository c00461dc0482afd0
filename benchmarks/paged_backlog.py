"""Responsiveness while a paged backlog is drained.

A kiltmq broker process (``kiltmq broker --data-dir DIR``) gets a backlog of persistent
messages in a durable queue (``--count``, default 200,000, of ``--size`` bytes), and is
restarted, so that every body is in the store only. Then one consumer (the load
aiormq client, in its own process: manual acks, prefetch 1000, ``multiple`` every
100) drains the backlog while a
prober on another connection publishes one transient message at a time to a queue of
its own, with publisher confirms, every 5 ms, and times each publish-to-confirm round
trip. Reported: the drain rate and the round trip's median, 99th percentile and maximum.
The broker runs the kiltmq found on ``PYTHONPATH`` (to compare versions).

``python -m benchmarks.paged_backlog [--count N] [--size BYTES]``
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiormq
import aiormq.abc

from kiltmq.bench.loadclient import connect, encode_publish
from kiltmq.protocol import spec
from kiltmq.protocol.spec import BasicProperties

QUEUE = "paged.backlog"
WINDOW = 2000


def _start(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiltmq", "broker", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"ready on \S+:(\d+)", line)
        if found:
            return proc, f"amqp://guest:guest@127.0.0.1:{found.group(1)}/"
    raise RuntimeError("the broker did not start")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(120)


async def _fill(url: str, count: int, size: int) -> None:
    client = await connect(url)
    try:
        await client.open_channel(1)
        await client.request(1, spec.QueueDeclare(queue=QUEUE, durable=True), spec.QueueDeclareOk)
        await client.select_confirms(1)
        frame = encode_publish(
            "", QUEUE, bytes(size), BasicProperties(delivery_mode=2), 1, client.frame_max
        )
        published = 0
        while published < count:
            if published - client.confirmed >= WINDOW:
                await client.wait_confirm()
                continue
            batch = min(200, count - published)
            client.send_raw(frame * batch)
            published += batch
            await asyncio.sleep(0)
        while client.confirmed < published:
            await client.wait_confirm()
    finally:
        await client.close()


async def _consume(url: str, count: int, shared: Any) -> None:
    conn = await aiormq.connect(url)
    try:
        channel = await conn.channel()
        await channel.basic_qos(prefetch_count=1000)
        done = asyncio.Event()
        received = 0

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            nonlocal received
            received += 1
            shared[0] = received
            if received % 100 == 0 or received == count:
                assert message.delivery_tag is not None
                await channel.basic_ack(message.delivery_tag, multiple=True)
            if received == count:
                done.set()

        await channel.basic_consume(QUEUE, on_message, no_ack=False)
        await done.wait()
    finally:
        await conn.close()


def _consumer(url: str, count: int, shared: Any) -> None:
    asyncio.run(_consume(url, count, shared))


async def _probe(url: str, count: int, shared: Any) -> tuple[list[float], float]:
    client = await connect(url)
    try:
        await client.open_channel(1)
        ok = await client.request(1, spec.QueueDeclare(exclusive=True), spec.QueueDeclareOk)
        await client.select_confirms(1)
        frame = encode_publish("", ok.queue, b"ping", BasicProperties(), 1, client.frame_max)
        await client.request(1, spec.QueuePurge(queue=ok.queue), spec.QueuePurgeOk)
        while shared[0] == 0:  # the drain has started
            await asyncio.sleep(0.001)
        started = time.perf_counter()
        times = []
        while shared[0] < count:
            before = client.confirmed
            sent = time.perf_counter()
            client.send_raw(frame)
            while client.confirmed == before:
                await client.wait_confirm()
            times.append(time.perf_counter() - sent)
            await asyncio.sleep(0.005)
        return times, time.perf_counter() - started
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paged_backlog")
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        proc, url = _start(data_dir)
        try:
            asyncio.run(_fill(url, args.count, args.size))
        finally:
            _stop(proc)
        proc, url = _start(data_dir)  # every body is in the store only now
        try:
            shared = multiprocessing.Array("q", 1)
            consumer = multiprocessing.Process(
                target=_consumer, args=(url, args.count, shared), daemon=True
            )
            consumer.start()
            times, seconds = asyncio.run(_probe(url, args.count, shared))
            consumer.join(60)
        finally:
            _stop(proc)
    times.sort()
    ms = [t * 1000 for t in times]
    print(
        f"drained {args.count:,} paged messages of {args.size} B in {seconds:.1f} s "
        f"({args.count / seconds:,.0f} msg/s); publish-confirm round trip on another "
        f"connection: median {statistics.median(ms):.2f} ms, "
        f"p99 {ms[int(len(ms) * 0.99)]:.2f} ms, max {ms[-1]:.2f} ms ({len(ms)} probes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
