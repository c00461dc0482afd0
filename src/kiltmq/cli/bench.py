"""``kiltmq bench``: broker scenarios against kiltmq and RabbitMQ, side by side."""

from __future__ import annotations

import argparse

from kiltmq.cli.main import SubParsers


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    from kiltmq.bench.runner import add_arguments

    parser = subparsers.add_parser(
        "bench",
        help="benchmark the broker against RabbitMQ",
        description="Run the same scenarios against a kiltmq broker (started in its own "
        "process unless --kiltmq-url is given) and a RabbitMQ, interleaved; print messages "
        "per second, the broker's CPU microseconds per message, latency, resident memory, "
        "memory per queued message and per connection, and the ratios.",
    )
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from kiltmq.bench.runner import main

    return main(args)
