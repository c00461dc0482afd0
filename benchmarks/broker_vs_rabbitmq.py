"""Broker scenarios (a)-(e), kiltmq and RabbitMQ side by side (see :mod:`kiltmq.bench`).

(a) one producer and one consumer on one queue, manual ack with prefetch 1000;
(b) the same with no-ack; (c) publish only; (d) a fanout exchange to 4 queues with 4
consumers; (e) latency at 1,000 msg/s. 100-byte transient messages throughout.

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
