"""The whole kilt store under load: orders per second and order-to-approved latency.

The store runs as the demo runs it (every service in one process, the mailbox, the
payment gateway, the CRM), on kiltmq's embedded broker (persistent, in a temporary
data directory), on ``kiltmq broker`` in a process of its own (``--kiltmq-broker``, also
persistent), on RabbitMQ and on a RabbitMQ cluster (``--cluster-url``, every node's URL
separated by commas: the store then declares quorum queues), each under a name prefix of
its own, deleted afterwards.
The driver places ``--orders`` orders (default 1,000) through the three front doors in
turn: the web store's checkout form (HTTP POST), the phone-order form (HTTP POST) and
the CRM's XML-RPC API (``crm.add_customer`` then ``crm.add_order``; the CRM adapter
polls it every 0.5 s, as in the demo), at most ``--concurrency`` at a time. Each order
has an e-mail address of its own; a queue of the driver's, bound to
``order.approved.*``, ``order.declined.*`` and ``order.invalid.*``, sees each order's
outcome.

Reported per broker: orders per second (orders over the time from the first placement
to the last approval) and the latency from placing an order (the request sent) to its
``approved`` event, p50 and p99, overall and per source. Every order must be approved;
a declined or invalid one, or one missing after ``--timeout`` seconds, fails the run.

With ``--rate R`` the orders are placed at R per second (open loop) instead of all at
once, so the latency is that of a store keeping up rather than of a backlog.

``python -m benchmarks.kiltstore_load [--orders 1000] [--concurrency 16] [--rate R]
[--no-rabbitmq] [--no-kiltmq] [--kiltmq-broker] [--rabbitmq-url URL] [--cluster-url URLS]``;
under ``python -m benchmarks`` options come from ``KILTSTORE_LOAD_BENCH_ARGS``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import xmlrpc.client
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

import kiltmq
from kiltstore import samples
from kiltstore.config import broker_urls
from kiltstore.demo import Store
from kiltstore.domain import OrderEvent
from kiltstore.topology import ORDERS, Topology

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
SOURCES = ("web", "phone", "crm")


@dataclass
class Run:
    """One broker's run: when each order was placed and when it was approved."""

    broker: str
    placed: dict[str, float] = field(default_factory=dict)  # e-mail -> monotonic time
    source: dict[str, str] = field(default_factory=dict)  # e-mail -> source
    approved: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # e-mail -> state and reasons


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


async def place(
    http: aiohttp.ClientSession, store: Store, index: int, run: Run
) -> None:
    source = SOURCES[index % len(SOURCES)]
    email = f"load{index}@example.org"
    run.source[email] = source
    if source == "web":
        form = dict(samples.WEB_FORM, email=email, full_name=f"Load Web {index}")
        run.placed[email] = time.monotonic()
        async with http.post(store.urls["web store"] + "/checkout", data=form,
                             allow_redirects=False) as response:
            if response.status != 303:
                raise RuntimeError(f"checkout answered {response.status}")
    elif source == "phone":
        form = dict(samples.PHONE_FORM, email=email, name=f"Load Phone {index}")
        run.placed[email] = time.monotonic()
        async with http.post(store.urls["phone orders"] + "/slips", data=form,
                             allow_redirects=False) as response:
            if response.status != 303:
                raise RuntimeError(f"phone form answered {response.status}")
    else:
        rpc = store.urls["CRM XML-RPC"]
        customer = dict(samples.CRM_CUSTOMER, email=email, first_name="Load",
                        last_name=f"CRM {index}")
        customer_id = await call(http, rpc, "crm.add_customer", customer)
        run.placed[email] = time.monotonic()
        await call(http, rpc, "crm.add_order", customer_id, [samples.CRM_ITEM],
                   samples.APPROVED_CARD, "")


async def call(http: aiohttp.ClientSession, url: str, method: str, *params: Any) -> Any:
    body = xmlrpc.client.dumps(params, method, allow_none=True)
    async with http.post(url, data=body, headers={"Content-Type": "text/xml"}) as response:
        answer, _ = xmlrpc.client.loads(await response.read())
    return answer[0]


async def watch(amqp_url: str, topology: Topology, run: Run, ready: asyncio.Event,
                total: int) -> None:
    """Record each order's outcome from a queue of the driver's own."""
    async with kiltmq.connect(broker_urls(amqp_url)) as conn:
        ch = await conn.channel()
        ok = await ch.queue_declare("", exclusive=True)
        for key in ("order.approved.*", "order.declined.*", "order.invalid.*"):
            await ch.queue_bind(ok.queue, topology.exchange(ORDERS), key)
        await ch.basic_qos(prefetch_count=500)
        ready.set()
        async for message in ch.consume(ok.queue, no_ack=True):
            now = time.monotonic()
            event = OrderEvent.from_json(message.body)
            email = event.order.customer.email
            if message.routing_key.startswith("order.approved."):
                run.approved.setdefault(email, now)
            else:
                run.failed[email] = f"{event.state}: {'; '.join(event.reasons)}"
            if len(run.approved) + len(run.failed) >= total:
                return


async def delete_topology(amqp_url: str, topology: Topology) -> None:
    async with kiltmq.connect(broker_urls(amqp_url)) as conn:
        ch = await conn.channel()
        for queue in topology.queues:
            await ch.queue_delete(topology.queue(queue.key), timeout=10)
        for exchange in topology.exchanges:
            await ch.exchange_delete(topology.exchange(exchange.key), timeout=10)


async def run_store(broker: str, amqp_url: str | None, orders: int, concurrency: int,
                    timeout: float, rate: float = 0.0) -> Run:
    run = Run(broker)
    prefix = f"kiltload-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="kiltload-") as folder:
        try:
            async with Store(data_dir=Path(folder), amqp_url=amqp_url, prefix=prefix) as store:
                url = store.amqp_url
                assert url is not None
                ready = asyncio.Event()
                watcher = asyncio.create_task(watch(url, Topology(prefix), run, ready, orders))
                await asyncio.wait_for(ready.wait(), 30)
                limit = asyncio.Semaphore(concurrency)
                connector = aiohttp.TCPConnector(limit=concurrency)
                async with aiohttp.ClientSession(
                    connector=connector, timeout=aiohttp.ClientTimeout(total=120)
                ) as http:

                    start = time.monotonic()

                    async def one(index: int) -> None:
                        if rate:  # open loop: order i is placed at i / rate seconds
                            await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
                        async with limit:
                            await place(http, store, index, run)

                    await asyncio.gather(*(one(i) for i in range(orders)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watcher, timeout)
        finally:
            if amqp_url is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(delete_topology(amqp_url, Topology(prefix)), 60)
    return run


@contextlib.contextmanager
def kiltmq_broker(folder: str) -> Any:
    """``kiltmq broker`` in a child process, persistent in ``folder``; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "kiltmq", "broker", "--port", str(port), "--data-dir", folder,
         "--management-port", "0", "--prometheus-port", "0", "--no-ctl-socket",
         "--log-level", "warning"],
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"amqp://guest:guest@127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(30)


def report(run: Run, orders: int) -> tuple[str, bool]:
    latencies = {email: run.approved[email] - run.placed[email]
                 for email in run.approved if email in run.placed}
    ok = len(latencies) == orders and not run.failed
    if not latencies:
        return f"{run.broker:13}  no order approved", False
    span = max(run.approved.values()) - min(run.placed.values())
    values = list(latencies.values())
    line = (f"{run.broker:13}  {len(latencies):5d}/{orders} approved  "
            f"{len(latencies) / span:7.1f} orders/s  p50 {percentile(values, .5) * 1000:7.0f} ms"
            f"  p99 {percentile(values, .99) * 1000:7.0f} ms")
    for source in SOURCES:
        mine = [v for e, v in latencies.items() if run.source.get(e) == source]
        if mine:
            line += (f"\n               {source:5}  {len(mine):4d} orders  p50 "
                     f"{percentile(mine, .5) * 1000:7.0f} ms  p99 "
                     f"{percentile(mine, .99) * 1000:7.0f} ms")
    if run.failed:
        example = next(iter(run.failed.items()))
        line += f"\n               {len(run.failed)} not approved, e.g. {example}"
    return line, ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kiltstore_load",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="orders per second (default 0: as fast as the front doors take them)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait for the last approval")
    parser.add_argument("--rabbitmq-url", default=DEFAULT_RABBITMQ_URL)
    parser.add_argument("--no-rabbitmq", action="store_true")
    parser.add_argument("--no-kiltmq", action="store_true",
                        help="skip the embedded broker")
    parser.add_argument("--kiltmq-broker", action="store_true",
                        help="also run on `kiltmq broker` in a process of its own")
    parser.add_argument("--cluster-url", default="",
                        help="also run on this RabbitMQ cluster (every node's URL, separated "
                        "by commas), on quorum queues")
    if argv is None:
        argv = shlex.split(os.environ.get("KILTSTORE_LOAD_BENCH_ARGS", ""))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    targets: list[tuple[str, str | None]] = []
    if not args.no_kiltmq:
        targets.append(("embedded", None))
    if args.kiltmq_broker:
        targets.append(("kiltmq-broker", "kiltmq-broker"))
    if not args.no_rabbitmq:
        targets.append(("rabbitmq", args.rabbitmq_url))
    if args.cluster_url:
        targets.append(("cluster", args.cluster_url))
    pace = f"{args.rate:g}/s" if args.rate else "as fast as taken"
    print(f"{args.orders} orders (web, phone, CRM in turn), {pace}, {args.concurrency} at a time; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    failures = 0
    for broker, url in targets:
        try:
            with contextlib.ExitStack() as stack:
                if url == "kiltmq-broker":
                    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="kiltmqb-"))
                    url = stack.enter_context(kiltmq_broker(folder))
                run = asyncio.run(run_store(broker, url, args.orders, args.concurrency,
                                            args.timeout, args.rate))
        except (OSError, kiltmq.ConnectError) as exc:
            print(f"{broker:13}  not run: {exc}", flush=True)
            failures += 1
            continue
        line, ok = report(run, args.orders)
        print(line, flush=True)
        failures += 0 if ok else 1
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
