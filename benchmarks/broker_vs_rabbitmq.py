"""Broker scenarios, kiltmq and RabbitMQ side by side (see :mod:`kiltmq.bench`).

The matrix of ``kiltmq bench``: 100 B, 4 KiB, 64 KiB and Celery-shaped messages with
manual ack, no-ack, publish only and durable with confirms; fanout to 4 and 100 queues,
topic routing over 10,000 bindings, latency at 1,000 and 10,000 msg/s; memory per queued
message and per connection (docs/benchmarks.md).

Alone: ``python -m benchmarks.broker_vs_rabbitmq [options]`` (the options of
``kiltmq bench``). Under ``python -m benchmarks`` (``make bench``) it takes its options
from the ``KILTMQ_BENCH_ARGS`` environment variable, e.g. ``KILTMQ_BENCH_ARGS=--quick``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from kiltmq.bench import runner


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.broker_vs_rabbitmq")
    runner.add_arguments(parser)
    if argv is None:
        argv = shlex.split(os.environ.get("KILTMQ_BENCH_ARGS", ""))
    return runner.main(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
