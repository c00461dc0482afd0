"""What a test using the pytest plugin costs, against RabbitMQ.

Each case is what one test pays before and after its own code, with pika as the client
(a BlockingConnection, a channel, one queue.declare, close), run ``--rounds`` times; the
median and the slowest are printed, in milliseconds:

- *fresh vhost*: the default ``amqp_broker`` (the session's broker, a vhost of the test's
  own created and deleted around it, the publish log on), and that without the client;
- *broker per test*: ``@pytest.mark.kiltmq_broker(scope="function")``
  (``BrokerFixture.start()`` and ``stop()``, a broker in a thread);
- *frozen clock, 30-minute TTL*: a fresh vhost, a message with a 30-minute TTL expired by
  ``clock.advance(1800)``;
- *RabbitMQ, connect and declare*: the same client work against the running RabbitMQ
  (``KILTMQ_RABBITMQ_URL``, default amqp://guest:guest@127.0.0.1:5672/), skipped if it is
  not reachable; a vhost per test there would add a management call on top;
- *RabbitMQ node started* (``--rabbitmq-starts N``, default 0: left out): a throwaway
  RabbitMQ node of Debian's rabbitmq-server, started N times as a test suite that starts
  its own would: its own node name, AMQP and distribution ports and data, log and
  config directories in a temporary directory (the benchmark's own fresh nodes, see
  :mod:`kiltmq.bench.rabbitmq_node`), timed from launch until it answers AMQP (polled
  every 0.25 s) and a pika connection declares a queue; then stopped by its PID
  (SIGTERM) and its directory deleted. The shared node on 5672 is not touched.
  Needs root (the node runs as the rabbitmq user, with its Erlang cookie).

``python -m benchmarks.testing_fixture [--rounds 30] [--rabbitmq-starts 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence

import pika
import pika.exceptions

from kiltmq.bench.rabbitmq_node import rabbitmq_node
from kiltmq.testing import BrokerFixture

RABBITMQ_URL = os.environ.get("KILTMQ_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


def client_work(url: str, queue: str = "bench") -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    channel = conn.channel()
    channel.queue_declare(queue, auto_delete=True)
    conn.close()


def start_rabbitmq_node() -> float:
    """Start a throwaway RabbitMQ node (:func:`kiltmq.bench.rabbitmq_node.rabbitmq_node`:
    its own name, ports and files, stopped by its PID and deleted after), and time it
    until AMQP accepts a pika connection: the seconds it took."""
    start = time.perf_counter()
    with rabbitmq_node() as node:
        if node.error is not None:
            raise RuntimeError(node.error)
        client_work(node.url)
        return time.perf_counter() - start


def timed(rounds: int, one: Callable[[int], None]) -> tuple[float, float]:
    times = []
    for n in range(rounds):
        start = time.perf_counter()
        one(n)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.testing_fixture")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--rabbitmq-starts", type=int, default=0,
        help="also start a throwaway RabbitMQ node this many times (needs root and "
        "Debian's rabbitmq-server)",
    )
    args = parser.parse_args(argv)
    rows: list[tuple[str, float, float]] = []

    with BrokerFixture.start() as shared:
        def fresh_vhost(n: int) -> None:
            fixture = shared.add_vhost(f"pytest/{n}/bench")
            fixture.record_published()
            client_work(fixture.url)
            fixture.stop_recording_published()
            fixture.delete_vhost()

        rows.append(("fresh vhost (default amqp_broker)", *timed(args.rounds, fresh_vhost)))

        def vhost_only(n: int) -> None:
            fixture = shared.add_vhost(f"pytest/only{n}/bench")
            fixture.record_published()
            fixture.stop_recording_published()
            fixture.delete_vhost()

        rows.append(("  of which the fixture (no client)", *timed(args.rounds, vhost_only)))

        def frozen_ttl(n: int) -> None:
            fixture = shared.add_vhost(f"pytest/ttl{n}/bench")
            fixture.clock.freeze()
            fixture.call_in_loop(lambda: None)
            conn = pika.BlockingConnection(pika.URLParameters(fixture.url))
            channel = conn.channel()
            channel.queue_declare("q", arguments={"x-message-ttl": 1_800_000})
            channel.basic_publish("", "q", b"x")
            fixture.wait_messages("q")
            fixture.clock.advance(1800)
            assert fixture.queue("q").message_count == 0
            conn.close()
            fixture.clock.resume()
            fixture.delete_vhost()

        rows.append(("fresh vhost, 30-minute TTL expired", *timed(args.rounds, frozen_ttl)))

    def own_broker(_n: int) -> None:
        with BrokerFixture.start() as fixture:
            client_work(fixture.url)

    rows.append(("broker per test", *timed(args.rounds, own_broker)))

    try:
        client_work(RABBITMQ_URL)
    except (pika.exceptions.AMQPError, OSError) as exc:
        print(f"RabbitMQ at {RABBITMQ_URL} not reachable ({exc}): its row is left out")
    else:
        rows.append((
            "RabbitMQ: connect and declare",
            *timed(args.rounds, lambda n: client_work(RABBITMQ_URL, f"kiltmq-bench-{n}")),
        ))

    if args.rabbitmq_starts:
        starts = [start_rabbitmq_node() * 1000 for _ in range(args.rabbitmq_starts)]
        rows.append((
            f"RabbitMQ node started ({args.rabbitmq_starts}x)",
            statistics.median(starts), max(starts),
        ))

    print(f"{args.rounds} rounds each; milliseconds per test (pika connect, channel, "
          "queue.declare, close included)")
    print(f"| {'case':<38} | {'median':>7} | {'slowest':>8} |")
    print(f"|{'-' * 40}|{'-' * 8}:|{'-' * 9}:|")
    for title, median, slowest in rows:
        print(f"| {title:<38} | {median:>7.1f} | {slowest:>8.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
