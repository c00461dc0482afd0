"""Persistent messages with publisher confirms, kiltmq vs RabbitMQ.

One producer publishes 100-byte persistent messages (delivery-mode 2) to a durable queue
with publisher confirms, keeping at most 1,000 unconfirmed; one consumer acks as it goes
(manual ack, prefetch 1000, ``basic.ack multiple`` every 100, as in the transient
scenario (a) of ``broker_vs_rabbitmq``). The producer and the consumer are the load
generator of :mod:`kiltmq.bench` (its client, in two more processes), with a confirm
counter added to the producer's connection.

Reported: consumed msg/s and confirmed msg/s in the measured window, and the broker's CPU
time per message (``/proc/<pid>/stat`` of the broker process, all threads: for kiltmq
that includes the SQLite writer thread). A second scenario ("publish only") has no
consumer: every message is written, and confirmed msg/s is the rate of the disk path.

kiltmq runs in its own process on a fresh data directory: ``Broker(store=SQLiteStore(dir))``
(``python -m kiltmq.bench._broker_proc --data-dir DIR``), what ``kiltmq broker --data-dir
DIR`` runs; ``--on-loop`` also measures the store committing on the event loop instead of
in its writer thread.

``python -m benchmarks.broker_persistent [--seconds 5] [--repeat 3] [--on-loop]
[--no-rabbitmq] [--rabbitmq-url URL]``; under ``python -m benchmarks`` options come from
``KILTMQ_PERSISTENT_BENCH_ARGS``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any, cast

from kiltmq.bench import procstat
from kiltmq.bench.loadclient import connect, encode_publish
from kiltmq.bench.options import DEFAULT_RABBITMQ_URL
from kiltmq.bench.targets import kiltmq_process
from kiltmq.bench.url import parse_url
from kiltmq.protocol import spec
from kiltmq.protocol.spec import BasicProperties

WINDOW = 1000
BODY_SIZE = 100

# shared counters
GO, STOP, PUBLISHED, CONFIRMED, CONSUMED, READY_P, READY_C, NACKED = range(8)


async def _produce(url: str, queue: str, shared: Any) -> None:
    client = await connect(url)
    try:
        await client.open_channel(1)
        await client.select_confirms(1)
        frame = encode_publish(
            "", queue, bytes(BODY_SIZE), BasicProperties(delivery_mode=2), 1, client.frame_max
        )
        shared[READY_P] = 1
        while not shared[GO]:
            await asyncio.sleep(0.001)
        published = 0
        while not shared[STOP]:
            room = WINDOW - (published - client.confirmed)
            if room <= 0:
                await client.wait_confirm()
                shared[CONFIRMED] = client.confirmed
                continue
            if client.paused:
                await client.wait_writable()
                continue
            count = min(room, 128)
            client.send_raw(frame * count)
            published += count
            shared[PUBLISHED] = published
            shared[CONFIRMED] = client.confirmed
            await asyncio.sleep(0)
        while client.confirmed < published:  # every publish gets its confirm
            await client.wait_confirm()
        shared[CONFIRMED] = client.confirmed
        shared[NACKED] = client.nacked
    finally:
        await client.close()


async def _consume(url: str, queue: str, shared: Any) -> None:
    client = await connect(url)
    try:
        await client.open_channel(1)
        client.on_delivered = lambda n: shared.__setitem__(CONSUMED, n)
        await client.consume(1, queue, no_ack=False, prefetch=1000)
        shared[READY_C] = 1
        while shared[STOP] < 2:
            if client.error is not None:
                raise client.error
            await asyncio.sleep(0.005)
    finally:
        await client.close()


def _worker(role: str, url: str, queue: str, shared: Any, report: Pipe) -> None:
    error = None
    try:
        asyncio.run((_produce if role == "producer" else _consume)(url, queue, shared))
    except BaseException as exc:
        error = f"{role}: {type(exc).__name__}: {exc}"
    report.send(error)
    report.close()


@dataclass
class Run:
    broker: str
    scenario: str
    consumed_rate: float
    confirmed_rate: float
    cpu_us: float | None
    error: str | None = None


async def _control(url: str, method: spec.Method, reply: type[spec.Method]) -> None:
    client = await connect(url)
    try:
        await client.open_channel(1)
        await client.request(1, method, reply)
    finally:
        await client.close()


def measure(
    name: str, url: str, pid: int | None, seconds: float, warmup: float, consumer: bool = True
) -> Run:
    queue = f"kiltmq.bench.persistent.{os.getpid()}.{time.monotonic_ns() % 10**6}"
    asyncio.run(_control(url, spec.QueueDeclare(queue=queue, durable=True), spec.QueueDeclareOk))
    ctx = multiprocessing.get_context("spawn")
    shared = cast(Any, ctx.RawArray("q", 8))
    procs = []
    try:
        for role in ("consumer", "producer") if consumer else ("producer",):
            receiver, sender = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(role, url, queue, shared, sender))
            proc.start()
            procs.append((role, proc, receiver))
            ready = READY_C if role == "consumer" else READY_P
            deadline = time.monotonic() + 30
            while not shared[ready]:
                if not proc.is_alive() or time.monotonic() > deadline:
                    why = receiver.recv() if receiver.poll(1) else "no report"
                    raise RuntimeError(f"{role} did not start: {why}")
                time.sleep(0.01)
        shared[GO] = 1
        time.sleep(warmup)
        cpu0 = procstat.cpu_seconds_or_none(pid)
        t0, c0, f0 = time.monotonic(), shared[CONSUMED], shared[CONFIRMED]
        time.sleep(seconds)
        t1, c1, f1 = time.monotonic(), shared[CONSUMED], shared[CONFIRMED]
        cpu1 = procstat.cpu_seconds_or_none(pid)
        shared[STOP] = 1
        deadline = time.monotonic() + 60
        while consumer and shared[CONSUMED] < shared[PUBLISHED] and time.monotonic() < deadline:
            time.sleep(0.01)
        procs[-1][1].join(60)  # the producer, once every publish is confirmed
        shared[STOP] = 2
        errors = []
        for role, proc, receiver in procs:
            proc.join(60)
            message = receiver.recv() if receiver.poll(5) else f"{role}: no report"
            if message:
                errors.append(message)
        if consumer and shared[CONSUMED] != shared[PUBLISHED]:
            errors.append(f"published {shared[PUBLISHED]}, consumed {shared[CONSUMED]}")
        if shared[CONFIRMED] != shared[PUBLISHED] or shared[NACKED]:
            errors.append(f"published {shared[PUBLISHED]}, confirmed {shared[CONFIRMED]}")
        consumed = c1 - c0
        counted = consumed if consumer else f1 - f0
        cpu_us = None
        if cpu0 is not None and cpu1 is not None and counted:
            cpu_us = (cpu1 - cpu0) / counted * 1e6
        return Run(
            name,
            "1 producer, 1 consumer" if consumer else "publish only",
            consumed / (t1 - t0),
            (f1 - f0) / (t1 - t0),
            cpu_us,
            "; ".join(errors) or None,
        )
    finally:
        for _role, proc, _receiver in procs:
            if proc.is_alive():
                proc.kill()
        with contextlib.suppress(Exception):
            asyncio.run(_control(url, spec.QueueDelete(queue=queue), spec.QueueDeleteOk))


@contextlib.contextmanager
def kiltmq_broker(on_loop: bool) -> Iterator[tuple[str, int]]:
    """A kiltmq broker process with an SQLiteStore on a fresh data directory: its URL and
    pid. It prints its store's counts when it stops."""
    with tempfile.TemporaryDirectory(prefix="kiltmq-bench-") as data_dir:
        args = ["--data-dir", data_dir] + (["--on-loop"] if on_loop else [])
        with kiltmq_process(args, show_stderr=True) as target:
            if target.error is not None or target.pid is None:
                raise RuntimeError(target.error or "the kiltmq broker did not start")
            yield target.url, target.pid


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.broker_persistent")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--on-loop", action="store_true", help="also kiltmq committing on the loop")
    parser.add_argument("--no-rabbitmq", action="store_true")
    parser.add_argument("--rabbitmq-url", default=DEFAULT_RABBITMQ_URL)
    if argv is None:
        argv = shlex.split(os.environ.get("KILTMQ_PERSISTENT_BENCH_ARGS", ""))
    args = parser.parse_args(argv)
    variants = [("kiltmq", False)] + ([("kiltmq on-loop", True)] if args.on_loop else [])
    runs: dict[tuple[str, str], list[Run]] = {}
    failed = False
    for _ in range(args.repeat):
        for consumer in (True, False):
            for name, on_loop in variants:
                with kiltmq_broker(on_loop) as (url, pid):
                    run = measure(name, url, pid, args.seconds, args.warmup, consumer)
                runs.setdefault((run.scenario, name), []).append(run)
                _print(run)
            if not args.no_rabbitmq:
                rabbit_pid = procstat.find_rabbitmq_pid(parse_url(args.rabbitmq_url).port)
                run = measure(
                    "RabbitMQ", args.rabbitmq_url, rabbit_pid, args.seconds, args.warmup, consumer
                )
                runs.setdefault((run.scenario, "RabbitMQ"), []).append(run)
                _print(run)
    print()
    print("| scenario | broker | consumed msg/s | confirmed msg/s | broker CPU µs/msg |")
    print("|---|---|---:|---:|---:|")
    for (scenario, name), results in runs.items():
        good = [r for r in results if r.error is None]
        failed = failed or len(good) != len(results)
        if not good:
            print(f"| {scenario} | {name} | failed | | |")
            continue
        cpu = [r.cpu_us for r in good if r.cpu_us is not None]
        cpu_text = f"{statistics.median(cpu):.1f}" if cpu else "n/a"
        consumed = statistics.median(r.consumed_rate for r in good)
        print(
            f"| {scenario} | {name} | {consumed:,.0f} "
            f"| {statistics.median(r.confirmed_rate for r in good):,.0f} | {cpu_text} |"
        )
    return 1 if failed else 0


def _print(run: Run) -> None:
    cpu = f"{run.cpu_us:.1f} µs/msg" if run.cpu_us is not None else "CPU n/a"
    status = f"  ERROR {run.error}" if run.error else ""
    print(
        f"{run.scenario:>22} {run.broker:>14}: {run.consumed_rate:9,.0f} consumed/s  "
        f"{run.confirmed_rate:9,.0f} confirmed/s  {cpu}{status}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
