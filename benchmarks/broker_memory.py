"""Memory of a kiltmq broker per queued message.

For each case a fresh ``python -m kiltmq broker`` process is started, a queue is declared
and warmed up (a few thousand messages published and consumed), then N messages with
100-byte bodies are published with confirms (at most 1,000 unconfirmed) while nobody
consumes, until the queue holds all of them; the
broker's resident memory (VmRSS in ``/proc/<pid>/status``) before and after, divided by N,
is the memory per queued message.

Cases: transient messages in a transient queue; persistent messages in a durable queue
with the default paging (bodies beyond 10,000 ready messages stay on disk); the same with
paging off (``--page-messages`` above N: every body in memory); and 1,000,000 persistent
messages with the default paging (the total).

``python -m benchmarks.broker_memory [--count 200000] [--million]``; under
``python -m benchmarks`` options come from ``KILTMQ_MEMORY_BENCH_ARGS`` (default: no
million-message case).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.broker_persistent import WINDOW
from kiltmq.bench import procstat
from kiltmq.bench.loadclient import LoadClient, connect, encode_publish
from kiltmq.protocol import spec
from kiltmq.protocol.spec import BasicProperties

BODY = bytes(100)


@dataclass
class Case:
    title: str
    durable: bool
    delivery_mode: int
    count: int
    broker_args: tuple[str, ...] = ()


async def _depth(client: LoadClient, queue: str, durable: bool) -> int:
    ok = await client.request(
        1, spec.QueueDeclare(queue=queue, durable=durable, passive=True), spec.QueueDeclareOk
    )
    return int(ok.message_count)


async def _fill(url: str, queue: str, case: Case, count: int) -> None:
    """Publish ``count`` messages with confirms, at most 1,000 unconfirmed (as a careful
    publisher does), and wait until the queue holds them."""
    client = await connect(url)
    try:
        await client.open_channel(1)
        await client.select_confirms(1)
        frame = encode_publish(
            "", queue, BODY, BasicProperties(delivery_mode=case.delivery_mode), 1,
            client.frame_max,
        )
        target = await _depth(client, queue, case.durable) + count
        sent = 0
        while sent < count:
            room = WINDOW - (sent - client.confirmed)
            if room <= 0:
                await client.wait_confirm()
                continue
            if client.paused:
                await client.wait_writable()
            n = min(room, 200, count - sent)
            client.send_raw(frame * n)
            sent += n
            await asyncio.sleep(0)
        while client.confirmed < sent:
            await client.wait_confirm()
        deadline = time.monotonic() + 600
        while await _depth(client, queue, case.durable) < target:
            if time.monotonic() > deadline:
                raise RuntimeError("the queue did not fill up")
            await asyncio.sleep(0.2)
    finally:
        await client.close()


async def _drain(url: str, queue: str, durable: bool) -> None:
    client = await connect(url)
    try:
        await client.open_channel(1)
        await client.consume(1, queue, no_ack=True, prefetch=0)
        while await _depth(client, queue, durable):
            await asyncio.sleep(0.05)
    finally:
        await client.close()


async def _declare(url: str, queue: str, durable: bool) -> None:
    client = await connect(url)
    try:
        await client.open_channel(1)
        await client.request(
            1, spec.QueueDeclare(queue=queue, durable=durable), spec.QueueDeclareOk
        )
    finally:
        await client.close()


def _start(data_dir: str, args: tuple[str, ...]) -> tuple[subprocess.Popen[str], str, float]:
    """A broker process on ``data_dir``, its URL, and the seconds it took to listen."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiltmq", "broker", "--port", "0", "--data-dir", data_dir,
         "--log-level", "warning", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    port = 0
    deadline = time.monotonic() + 300
    while not port and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        port = procstat.listening_port(proc.pid)
    if not port:
        proc.kill()
        raise RuntimeError("the broker did not start")
    return proc, f"amqp://guest:guest@127.0.0.1:{port}/", time.monotonic() - start


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_restart(count: int) -> tuple[float, int, int]:
    """Fill a durable queue with ``count`` persistent messages, stop the broker, start it
    again: (seconds to start listening, RSS of an empty broker, RSS after recovery)."""
    case = Case("", True, 2, count)
    with tempfile.TemporaryDirectory(prefix="kiltmq-mem-") as data_dir:
        proc, _url, _ = _start(data_dir + "/empty", ())
        time.sleep(0.5)
        empty = procstat.rss_bytes(proc.pid)
        _stop(proc)
        proc, url, _ = _start(data_dir, ())
        try:
            asyncio.run(_declare(url, "memory", True))
            asyncio.run(_fill(url, "memory", case, count))
        finally:
            _stop(proc)
        proc, url, seconds = _start(data_dir, ())
        try:
            time.sleep(0.5)
            return seconds, empty, procstat.rss_bytes(proc.pid)
        finally:
            _stop(proc)


def measure(case: Case) -> tuple[int, int, float]:
    """(RSS before, RSS after, seconds to fill) for one case in a fresh broker."""
    with tempfile.TemporaryDirectory(prefix="kiltmq-mem-") as data_dir:
        proc, url, _ = _start(data_dir, case.broker_args)
        try:
            queue = "memory"
            asyncio.run(_declare(url, queue, case.durable))
            asyncio.run(_fill(url, queue, case, 5000))  # warm up: allocations, code paths
            asyncio.run(_drain(url, queue, case.durable))
            time.sleep(0.5)
            before = procstat.rss_bytes(proc.pid)
            start = time.monotonic()
            asyncio.run(_fill(url, queue, case, case.count))
            filled = time.monotonic() - start
            time.sleep(1.0)  # let the last batches commit
            after = procstat.rss_bytes(proc.pid)
            return before, after, filled
        finally:
            _stop(proc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.broker_memory")
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--million", action="store_true", help="also 1,000,000 persistent")
    if argv is None:
        argv = shlex.split(os.environ.get("KILTMQ_MEMORY_BENCH_ARGS", ""))
    args = parser.parse_args(argv)
    n = args.count
    cases = [
        Case("transient, transient queue", False, 1, n),
        Case("persistent, durable queue, paging (default)", True, 2, n),
        Case("persistent, durable queue, no paging", True, 2, n,
             ("--page-messages", str(n * 2), "--page-bytes", str(2**40))),
    ]
    if args.million:
        cases.append(Case("persistent, durable queue, paging (default)", True, 2, 1_000_000))
        cases.append(Case("transient, transient queue", False, 1, 1_000_000))
    print("| messages | case | RSS before | RSS after | bytes per message | fill time |")
    print("|---:|---|---:|---:|---:|---:|")
    for case in cases:
        before, after, filled = measure(case)
        per = (after - before) / case.count
        print(
            f"| {case.count:,} | {case.title} | {before / 2**20:.0f} MiB | "
            f"{after / 2**20:.0f} MiB | {per:.0f} | {filled:.1f} s |",
            flush=True,
        )
    if args.million:
        seconds, empty, after = measure_restart(1_000_000)
        print(
            f"\nrestart with 1,000,000 persistent messages waiting: listening after "
            f"{seconds:.1f} s, RSS {after / 2**20:.0f} MiB (an empty broker: "
            f"{empty / 2**20:.0f} MiB, so {(after - empty) / 1_000_000:.0f} bytes per message)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
