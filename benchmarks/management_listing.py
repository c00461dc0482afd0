"""The management API's lists with many queues.

An embedded broker (in a thread, with the management API and Prometheus metrics on free
ports) gets ``--queues`` queues (default 10,000, declared by pika on one channel); then
each request below is made ``--rounds`` times over HTTP (urllib, basic auth as guest)
and the medians of its time and of the process's CPU time (broker thread and client; on
a machine others load too, the steadier figure) and its slowest time are printed, in
milliseconds:

- page 1 (``/api/queues?page=1&page_size=100``, the web UI's first request),
- a page sorted by a statistic (``sort=messages&sort_reverse=true``, the overview's
  deepest queues), and by name in reverse,
- a regular-expression filter (``name=^load-000[12]&use_regex=true``),
- the same page with ``columns=name,messages`` and with ``disable_stats=true``,
- the whole list without paging (``/api/queues``), and
- Prometheus' ``/metrics/per-object`` (one series per queue), and
- one sample of the management API's statistics sampler (every 5 s, on the broker's
  loop: what the API's rates, ``idle_since`` and history come from), and the memory its
  history takes after ``--samples`` samples of the idle queues (each one a change for
  a queue that is busy), and
- the overview and one queue with ten minutes of history (``lengths_age=600`` and
  ``msg_rates_age=600``, every 5 s), the web UI's first request of those pages.

``python -m benchmarks.management_listing [--queues N] [--rounds N] [--samples N]``
"""

from __future__ import annotations

import argparse
import base64
import statistics
import time
import urllib.request
from collections.abc import Callable, Sequence

import pika

from kiltmq.broker import Broker
from kiltmq.broker.monitor import Monitor
from kiltmq.management.stats import Sampler

REQUESTS = (
    ("page 1", "/api/queues?page=1&page_size=100"),
    ("sorted by messages", "/api/queues?page=1&page_size=100&sort=messages&sort_reverse=true"),
    ("sorted by name, reversed", "/api/queues?page=1&page_size=100&sort=name&sort_reverse=true"),
    ("regex filter", "/api/queues?page=1&page_size=100&name=%5Eload-000%5B12%5D&use_regex=true"),
    ("page 1, columns=name,messages", "/api/queues?page=1&page_size=100&columns=name,messages"),
    ("page 1, disable_stats", "/api/queues?page=1&page_size=100&disable_stats=true"),
    ("whole list", "/api/queues"),
)
HISTORY = "lengths_age=600&lengths_incr=5&msg_rates_age=600&msg_rates_incr=5"
HISTORY_REQUESTS = (
    ("overview", "/api/overview"),
    ("overview with history", f"/api/overview?{HISTORY}"),
    ("a queue", "/api/queues/%2F/load-00001"),
    ("a queue with history", f"/api/queues/%2F/load-00001?{HISTORY}"),
)
AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


def _get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": AUTH})
    with urllib.request.urlopen(request, timeout=300) as reply:
        body: bytes = reply.read()
        return body


def _timed(url: str, rounds: int) -> tuple[float, float, float]:
    return _timed_call(lambda: _get(url), rounds)


def _timed_call(call: Callable[[], object], rounds: int) -> tuple[float, float, float]:
    times = []
    cpu = []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return statistics.median(times), statistics.median(cpu), max(times)


def _declare(url: str, count: int) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url + "?heartbeat=0"))
    try:
        channel = conn.channel()
        for n in range(count):
            channel.queue_declare(f"load-{n:05d}")
    finally:
        conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.management_listing")
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args(argv)
    broker = Broker(port=0, management_port=0, prometheus_port=0)
    with broker:
        start = time.perf_counter()
        _declare(broker.url, args.queues)
        print(f"{args.queues} queues declared in {time.perf_counter() - start:.1f} s")
        base = str(broker.management_url)
        cases = [(name, base + path) for name, path in REQUESTS]
        cases.append(("prometheus /metrics/per-object",
                      f"{broker.prometheus_url}/metrics/per-object"))
        cases.extend((name, base + path) for name, path in HISTORY_REQUESTS)
        print(f"{'request':<34} {'median ms':>10} {'CPU ms':>10} {'max ms':>10}")
        for name, url in cases:
            median, cpu, slowest = _timed(url, args.rounds)
            print(f"{name:<34} {median:>10.1f} {cpu:>10.1f} {slowest:>10.1f}", flush=True)
        sampler = Sampler(Monitor(broker))
        median, cpu, slowest = _timed_call(lambda: broker.call_in_loop(sampler.sample),
                                           args.rounds)
        print(f"{'sampler, one sample':<34} {median:>10.1f} {cpu:>10.1f} {slowest:>10.1f}")
        for _ in range(args.samples):
            broker.call_in_loop(sampler.sample)
        if not hasattr(sampler, "history_bytes"):  # a sampler without history
            return 0
        print(f"history after {args.samples + args.rounds} samples: "
              f"{sampler.history_bytes() / 2**20:.1f} MiB, "
              f"{sampler.history_rows():,} numbers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
