"""The broker's hot path, CPU per message: publish -> route -> enqueue -> deliver -> ack.

The broker runs in this process on its own thread (``Broker.start_in_thread``); the load
generator (:mod:`kiltmq.bench.loadclient`, which counts deliveries without decoding them)
runs on the main thread. What is reported is the CPU time of the broker's thread alone
(its POSIX thread CPU clock), divided by the messages: on a shared, loaded machine CPU
time is far steadier than a rate.

Message shapes:

* ``bare``: 100-byte body, no properties;
* ``celery``: what Celery sends: content type and encoding, correlation id, reply-to,
  delivery mode 2, priority 0 and a headers table of 16 entries (strings, ints, a list,
  voids), a 400-byte body;
* ``4k`` and ``64k``: bodies of 4 KiB and 64 KiB, no properties.

Modes:

* ``e2e``: one producer, one consumer with manual acks (prefetch 1000, a multiple ack every
  100 deliveries), at most 2,000 messages in flight;
* ``publish``: publish only, into a queue without consumers (purged after each run);
* ``paced``: one message at a time, each published once the one before was delivered and
  each acknowledged on its own, so that every publish, delivery and ack is a read or a
  write of its own, as at a low fixed rate (what ``kiltmq bench``'s ``latency-1k`` does):
  the broker's fixed costs per event-loop wake-up, not its batched throughput;
* ``durable``: as ``e2e``, but to a durable queue, the messages persistent (delivery mode
  2) and published with publisher confirms, at most 1,000 unconfirmed (what ``kiltmq
  bench``'s ``durable-confirm`` does); the broker keeps them in an ``SQLiteStore`` in a
  temporary directory. Its line adds the CPU of all the broker's threads (the store's
  writer and reader with the event loop's) per message, and the store's commits, rows
  written and rows never written (acknowledged before their batch was) per run.

``--allocs`` also reports the memory blocks a queued message keeps
(``sys.getallocatedblocks`` after publishing into a queue, per message); ``--profile``
writes the broker thread's cProfile statistics of one more run of each case (not
counted) to ``--profile-dir``.

Run: ``PYTHONPATH=src python -m benchmarks.hot_path [--shapes bare,celery] [--modes e2e]
[--repeat 5] [--count 20000] [--uvloop]`` (under ``python -m benchmarks``, the options from the
``KILTMQ_HOT_PATH_ARGS`` environment variable); it prints one line per case with the
median and the spread of the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import cProfile
import gc
import os
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kiltmq.bench import loadclient
from kiltmq.bench.loadclient import LoadClient, connect, encode_publish
from kiltmq.bench.payloads import PAYLOADS
from kiltmq.broker import Broker, SQLiteStore
from kiltmq.protocol import spec
from kiltmq.protocol.spec import BasicProperties

BATCH = 50
MAX_IN_FLIGHT = 2000
#: Unconfirmed publishes at most (durable mode).
CONFIRM_WINDOW = 1000

# Every acknowledgement here is a multiple ack per 100 deliveries, and the rest once all
# came: no idle-ack timer, so each run acknowledges the same way.
loadclient.ACK_DELAY = 3600.0


def celery_properties() -> BasicProperties:
    """Properties as Celery 5 sends a task message (the broker benchmark's ``celery``
    payload), with priority 0 set as kombu does when a task names one."""
    props = copy.copy(PAYLOADS["celery"].properties)
    props.priority = 0
    return props


SHAPES: dict[str, tuple[int, Callable[[], BasicProperties | None]]] = {
    "bare": (100, lambda: None),
    "celery": (400, celery_properties),
    "4k": (4096, lambda: None),
    "64k": (65536, lambda: None),
}
DEFAULT_COUNTS = {"bare": 20000, "celery": 20000, "4k": 10000, "64k": 2000}
#: Messages per paced run (each a round trip).
PACED_COUNT = 3000


class BrokerClock:
    """CPU seconds of the broker's thread."""

    def __init__(self, broker: Broker) -> None:
        ident = broker.call_in_loop(threading.get_ident)
        self.clock = time.pthread_getcpuclockid(ident)

    def seconds(self) -> float:
        return time.clock_gettime(self.clock)


class DurableFigures:
    """What a durable run also reports: the CPU of all the broker's threads (the process's
    less the load generator's, this thread) and the store's counters."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.all_cpu = self.commits = self.written = self.skipped = 0.0
        self._start = (0.0, 0, 0, 0)

    def _now(self) -> tuple[float, int, int, int]:
        store = self.store
        cpu = time.process_time() - time.thread_time()
        return cpu, store.commits, store.rows_written, store.rows_skipped

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> None:
        now = self._now()
        self.all_cpu, self.commits, self.written, self.skipped = (
            b - a for a, b in zip(self._start, now, strict=True)
        )


async def _publish(
    producer: LoadClient, frames: bytes, count: int, bound: Callable[[int], Any],
    size: int = BATCH,
) -> None:
    sent = 0
    batch = frames * size
    while sent < count:
        n = min(size, count - sent)
        producer.send_raw(batch if n == size else frames * n)
        sent += n
        if producer.paused:
            await producer.wait_writable()
        await bound(sent)


def _persistent(props: BasicProperties | None) -> BasicProperties:
    if props is None:
        return BasicProperties(delivery_mode=2)
    props.delivery_mode = 2
    return props


async def run_case(
    broker: Broker, clock: BrokerClock, shape: str, mode: str, count: int,
    profiler: cProfile.Profile | None = None, durable: DurableFigures | None = None,
) -> tuple[float, float | None]:
    """One run: broker CPU µs per message, and (publish mode) blocks kept per message."""
    size, props = SHAPES[shape]
    body = bytes(i % 251 for i in range(size))
    queue = f"hot.{shape}.{mode}"
    url = broker.url
    persistent = mode == "durable"
    producer = await connect(url)
    await producer.open_channel(1)
    await producer.request(
        1, spec.QueueDeclare(queue=queue, durable=persistent), spec.QueueDeclareOk
    )
    properties = _persistent(props()) if persistent else props()
    frames = encode_publish("", queue, body, properties, frame_max=producer.frame_max)
    if persistent:
        await producer.select_confirms(1)
    consumer: LoadClient | None = None
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    progress: list[asyncio.Future[None]] = []

    if mode in ("e2e", "paced", "durable"):
        paced = mode == "paced"
        in_flight = 0 if paced else MAX_IN_FLIGHT
        consumer = await connect(url)
        await consumer.open_channel(1)
        await consumer.consume(
            1, queue, no_ack=False, prefetch=1000, ack_every=1 if paced else 100
        )

        def delivered(n: int) -> None:
            while progress and not progress[0].done():
                progress.pop(0).set_result(None)
            if n >= count and not done.done():
                done.set_result(None)

        consumer.on_delivered = delivered

        async def bound(sent: int) -> None:
            assert consumer is not None
            while sent - consumer.delivered > in_flight:
                waiter = loop.create_future()
                progress.append(waiter)
                await waiter
            if persistent:
                while sent + BATCH - producer.confirmed > CONFIRM_WINDOW:
                    await producer.wait_confirm()
    else:
        async def bound(sent: int) -> None:
            return None

    gc.collect()
    blocks = sys.getallocatedblocks()
    if profiler is not None:
        broker.call_in_loop(profiler.enable)
    if durable is not None:
        durable.start()
    start = clock.seconds()
    await _publish(producer, frames, count, bound, 1 if mode == "paced" else BATCH)
    if consumer is not None:
        await done
        assert consumer is not None
        consumer._flush_acks()
        while persistent and producer.confirmed < count:
            await producer.wait_confirm()
    else:
        while True:
            ok = await producer.request(
                1, spec.QueueDeclare(queue=queue, passive=True), spec.QueueDeclareOk
            )
            if ok.message_count >= count:
                break
            await asyncio.sleep(0.01)
    cpu = clock.seconds() - start
    if durable is not None:
        durable.stop()
    if profiler is not None:
        broker.call_in_loop(profiler.disable)
    kept = None
    if mode == "publish":
        gc.collect()
        kept = (sys.getallocatedblocks() - blocks) / count
    if consumer is not None:
        await asyncio.sleep(0.05)  # the last acks
        await consumer.close()
    await producer.request(1, spec.QueueDelete(queue=queue), spec.QueueDeleteOk)
    await producer.close()
    return cpu / count * 1e6, kept


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="kiltmq-hot-path-") as data_dir:
        await _main_async(args, data_dir)


async def _main_async(args: argparse.Namespace, data_dir: str) -> None:
    store = SQLiteStore(data_dir) if "durable" in args.modes.split(",") else None
    broker = Broker(
        port=0, heartbeat=0, memory_limit=None, disk_free_limit=None, store=store
    )
    broker.start_in_thread()
    try:
        clock = BrokerClock(broker)
        for shape in args.shapes.split(","):
            for mode in args.modes.split(","):
                count = args.count or (PACED_COUNT if mode == "paced" else DEFAULT_COUNTS[shape])
                await run_case(broker, clock, shape, mode, min(count, 2000))  # warm-up
                results: list[float] = []
                kept: list[float] = []
                figures: list[tuple[float, float, float, float]] = []
                profiler = None
                durable = (
                    DurableFigures(store) if mode == "durable" and store is not None else None
                )
                for _ in range(args.repeat):
                    us, blocks = await run_case(
                        broker, clock, shape, mode, count, durable=durable
                    )
                    results.append(us)
                    if blocks is not None:
                        kept.append(blocks)
                    if durable is not None:
                        figures.append(
                            (durable.all_cpu / count * 1e6, durable.commits,
                             durable.written, durable.skipped)
                        )
                if args.profile:  # one more run, not counted: the profiler costs CPU too
                    profiler = cProfile.Profile()
                    await run_case(broker, clock, shape, mode, count, profiler)
                line = (
                    f"{shape:7} {mode:8} n={count:6} broker CPU µs/msg: median "
                    f"{statistics.median(results):7.2f}  min {min(results):7.2f}  "
                    f"max {max(results):7.2f}"
                )
                if args.allocs and kept:
                    line += f"  blocks kept/queued msg {statistics.median(kept):.1f}"
                if figures:
                    all_cpu, commits, written, skipped = (
                        statistics.median(f[i] for f in figures) for i in range(4)
                    )
                    line += (
                        f"  all threads µs/msg {all_cpu:.2f}; per run: {commits:.0f} "
                        f"commits, {written:.0f} rows written, {skipped:.0f} never"
                    )
                print(line, flush=True)
                if profiler is not None:
                    out = Path(args.profile_dir)
                    out.mkdir(parents=True, exist_ok=True)
                    profiler.dump_stats(str(out / f"{shape}-{mode}.prof"))
    finally:
        broker.stop_thread()


def main(argv: Sequence[str] | None = None) -> int:
    """Under ``python -m benchmarks`` the options come from ``KILTMQ_HOT_PATH_ARGS``."""
    if argv is None:
        argv = shlex.split(os.environ.get("KILTMQ_HOT_PATH_ARGS", ""))
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hot_path")
    parser.add_argument("--shapes", default="bare,celery,4k,64k")
    parser.add_argument("--modes", default="e2e,publish")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--count", type=int, default=0, help="messages per run")
    parser.add_argument("--allocs", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-dir", default="hot-path-profiles")
    parser.add_argument(
        "--uvloop", action="store_true", help="broker and load generator on uvloop"
    )
    args = parser.parse_args(argv)
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
