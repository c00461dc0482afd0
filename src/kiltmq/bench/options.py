"""The broker benchmark's options, and the command-line arguments that set them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from kiltmq.bench.scenarios import ALIASES, SCENARIOS, SHAPES, select

__all__ = ["DEFAULT_RABBITMQ_URL", "Options", "add_arguments", "options_from_args"]

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass
class Options:
    seconds: float = 5.0
    warmup: float = 1.0
    only: tuple[str, ...] = tuple(SCENARIOS)
    kiltmq: bool = True
    kiltmq_url: str | None = None  # None: start a kiltmq broker process
    kiltmq_pid: int | None = None
    rabbitmq: bool = True
    rabbitmq_url: str = DEFAULT_RABBITMQ_URL
    rabbitmq_pid: int | None = None
    rabbitmq_fresh: bool = True  # memory runs on a fresh local RabbitMQ node when possible
    max_in_flight: int = 10000  # deliveries published but not yet consumed
    max_in_flight_bytes: int = 64 << 20  # the same bound in bodies' bytes
    publish_limit_bytes: int = 512 << 20  # publish-only: bodies queued per window at most
    memory_messages: int = 100_000  # memory-queue: messages queued
    memory_connections: int = 500  # memory-connection: connections opened
    memory_settle: float = 60.0  # memory runs: seconds at most for the broker's RSS to settle
    repeat: int = 1  # runs per scenario and broker; the tables show the median
    drain_timeout: float = 30.0
    uvloop: bool | None = None  # None: uvloop if installed, unless KILTMQ_UVLOOP=0
    management: bool = False  # the started kiltmq broker serves the management API too
    verbose: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by ``kiltmq bench`` and ``python -m benchmarks``)."""
    parser.add_argument(
        "--seconds", type=float, default=None, help="measured seconds per scenario (default 5)"
    )
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds before measuring (default 1)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 s per scenario, 0.3 s warm-up, "
        "fewer messages and connections for the memory scenarios",
    )
    parser.add_argument(
        "--only",
        default="*",
        help="scenarios to run, comma-separated keys SHAPE/PAYLOAD or patterns (default: "
        "all): shapes "
        + "; ".join(f"{s.key}: {s.title}" for s in SHAPES.values())
        + "; payloads 100b, 4k, 64k, celery; "
        + ", ".join(f"{k} = {v}" for k, v in ALIASES.items()),
    )
    parser.add_argument(
        "--rabbitmq-url", default=DEFAULT_RABBITMQ_URL, help="RabbitMQ to compare against"
    )
    parser.add_argument("--rabbitmq-pid", type=int, help="RabbitMQ's process (default: found)")
    parser.add_argument("--no-rabbitmq", action="store_true", help="benchmark kiltmq only")
    parser.add_argument(
        "--rabbitmq-fresh",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run each memory scenario on a fresh RabbitMQ node of its own, started here "
        "(the default when rabbitmq-server is installed and may be run: as root or the "
        "rabbitmq user; else the running one is measured, and the report says so); "
        "--no-rabbitmq-fresh measures the running one",
    )
    parser.add_argument(
        "--kiltmq-url", help="an already-running kiltmq broker (default: start one)"
    )
    parser.add_argument(
        "--kiltmq-pid", type=int, help="its process, for CPU time (default: found by port)"
    )
    parser.add_argument("--no-kiltmq", action="store_true", help="benchmark RabbitMQ only")
    loop = parser.add_mutually_exclusive_group()
    loop.add_argument(
        "--uvloop",
        action="store_true",
        default=None,
        help="run the started kiltmq broker and the load generator on uvloop (the default "
        "when it is installed, unless KILTMQ_UVLOOP=0)",
    )
    loop.add_argument(
        "--no-uvloop",
        action="store_false",
        dest="uvloop",
        help="run them on asyncio's own event loop",
    )
    parser.add_argument(
        "--management",
        action="store_true",
        help="the started kiltmq broker also serves the management API and Prometheus "
        "metrics (as a RabbitMQ with its management plugin does)",
    )
    parser.add_argument(
        "--memory-messages",
        type=int,
        default=None,
        help="messages queued by the memory-queue scenarios (default 100000; --quick 10000)",
    )
    parser.add_argument(
        "--memory-connections",
        type=int,
        default=None,
        help="connections opened by the memory-connection scenario (default 500; --quick 50)",
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=10000,
        help="published but not yet consumed messages allowed (default 10000)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per scenario and broker, interleaved; the summary shows the median",
    )
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")


def options_from_args(args: argparse.Namespace) -> Options:
    only = select(k.strip() for k in args.only.split(",") if k.strip())
    if args.memory_messages is None:
        args.memory_messages = 10_000 if args.quick else 100_000
    if args.memory_connections is None:
        args.memory_connections = 50 if args.quick else 500
    for name in ("max_in_flight", "memory_messages", "memory_connections", "repeat"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 5.0)
    warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
    return Options(
        seconds=seconds,
        warmup=warmup,
        only=only,
        kiltmq=not args.no_kiltmq,
        kiltmq_url=args.kiltmq_url,
        kiltmq_pid=args.kiltmq_pid,
        rabbitmq=not args.no_rabbitmq,
        rabbitmq_url=args.rabbitmq_url,
        rabbitmq_pid=args.rabbitmq_pid,
        rabbitmq_fresh=args.rabbitmq_fresh,
        max_in_flight=args.max_in_flight,
        repeat=args.repeat,
        uvloop=args.uvloop,
        management=args.management,
        memory_messages=args.memory_messages,
        memory_connections=args.memory_connections,
    )
