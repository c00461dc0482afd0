"""``python -m kiltstore SERVICE`` (or ``kiltstore SERVICE``): run one service, or the demo.

Every option also reads an environment variable (see :mod:`kiltstore.config`), so a
service on another machine needs little more than ``AMQP_URL``::

    AMQP_URL=amqp://user:pw@rabbit.example/ python -m kiltstore billing \\
        --payment-url http://payments.example:8086
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from kiltstore.config import (
    DEFAULT_AMQP_PORT,
    DEFAULT_PORTS,
    DEFAULT_SMTP_PORT,
    SERVICES,
    Settings,
)
from kiltstore.topology import QUEUE_TYPES


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the demo (shared with ``kiltmq demo``)."""
    parser.add_argument(
        "--amqp-url",
        default=None,
        help="use this broker (e.g. RabbitMQ) instead of the embedded one; for the nodes "
        "of a cluster, URLs separated by commas or one URL with a host list",
    )
    add_queue_type_argument(parser)
    parser.add_argument(
        "--management-url",
        default=os.environ.get("KILTSTORE_MANAGEMENT_URL"),
        help="the management web UI of the --amqp-url broker, for the order board's links "
        "to its queues (KILTSTORE_MANAGEMENT_URL; default: RabbitMQ's, "
        "http://HOST:15672/#, if the broker is RabbitMQ; \"\" for none)",
    )
    parser.add_argument(
        "--amqp-port",
        type=int,
        default=DEFAULT_AMQP_PORT,
        help=f"port of the embedded broker (default {DEFAULT_AMQP_PORT}; "
        "any free port if taken)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data/kiltstore"),
        help="folder of the services' databases and the embedded broker's state",
    )
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="keep nothing of the embedded broker on disk (by default its queues and "
        "messages are kept in DATA_DIR/broker, so orders in flight survive a restart)",
    )
    parser.add_argument("--prefix", default="kiltstore", help="exchange and queue name prefix")
    parser.add_argument("--host", default="127.0.0.1", help="address the pages listen on")
    parser.add_argument(
        "--any-ports",
        action="store_true",
        help="use any free ports instead of 8080-8086 and 8025",
    )


def add_queue_type_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queue-type",
        choices=QUEUE_TYPES,
        default=None,
        help="type of the store's queues (KILTSTORE_QUEUE_TYPE; default: quorum when "
        "several broker URLs are given, else classic)",
    )


def demo_main(args: argparse.Namespace) -> int:
    """Run the demo from parsed :func:`add_demo_arguments` options."""
    from kiltstore.demo import run_demo
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(
        run_demo(
            data_dir=args.data_dir,
            amqp_url=args.amqp_url,
            prefix=args.prefix,
            host=args.host,
            fixed_ports=not args.any_ports,
            amqp_port=args.amqp_port,
            persistent_broker=not args.memory_only,
            queue_type=args.queue_type or "",
            management_url=args.management_url,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kiltstore", description="MacGrudder's kilt store: run a service, or the demo."
    )
    sub = parser.add_subparsers(dest="service", metavar="SERVICE", required=True)
    demo = sub.add_parser("demo", help="every service and an embedded broker in one process")
    add_demo_arguments(demo)
    for name in SERVICES:
        service = sub.add_parser(name, help=f"run the {name} service")
        service.add_argument(
            "--amqp-url",
            help="broker URL (env AMQP_URL); for the nodes of a cluster, URLs separated by "
            "commas or one URL with a host list",
        )
        service.add_argument("--prefix", help="exchange and queue name prefix (KILTSTORE_PREFIX)")
        service.add_argument("--data-dir", type=Path, help="database folder (KILTSTORE_DATA_DIR)")
        service.add_argument("--host", help="address to listen on (KILTSTORE_HOST)")
        service.add_argument(
            "--port",
            type=int,
            help=f"port to listen on (KILTSTORE_PORT; default {DEFAULT_PORTS.get(name, 0)})",
        )
        service.add_argument("--crm-url", help="CRM XML-RPC URL (KILTSTORE_CRM_URL)")
        service.add_argument("--payment-url", help="payment gateway URL (KILTSTORE_PAYMENT_URL)")
        service.add_argument("--smtp-host", help="SMTP host (KILTSTORE_SMTP_HOST)")
        service.add_argument(
            "--smtp-port", type=int, help=f"SMTP port (default {DEFAULT_SMTP_PORT})"
        )
        service.add_argument("--webstore-url", help="web store URL for e-mail links")
        service.add_argument(
            "--management-url",
            help="the broker's management web UI, for the board's links to the queues "
            "(KILTSTORE_MANAGEMENT_URL; RabbitMQ's is http://HOST:15672/#)",
        )
        add_queue_type_argument(service)
        service.add_argument("-v", "--verbose", action="store_true")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if settings.port == 0 and args.port is None:
        settings = replace(settings, port=DEFAULT_PORTS.get(args.service, 0))
    overrides = {
        "amqp_url": args.amqp_url,
        "prefix": args.prefix,
        "data_dir": args.data_dir,
        "host": args.host,
        "port": args.port,
        "crm_url": args.crm_url,
        "payment_url": args.payment_url,
        "smtp_host": args.smtp_host,
        "smtp_port": args.smtp_port,
        "webstore_url": args.webstore_url,
        "queue_type": args.queue_type,
        "management_url": args.management_url,
    }
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


async def run_service(name: str, settings: Settings) -> int:
    from kiltstore.services.base import service_class

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    service = service_class(name)(settings)
    try:
        await service.start()
        urls = "".join(f"\n  {label}: {url}" for label, url in service.urls.items())
        print(f"kiltstore {name} running on {settings.amqp_url}{urls}", flush=True)
        await stop.wait()
    finally:
        await service.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.service == "demo":
        return demo_main(args)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format=f"%(asctime)s {args.service} %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    return asyncio.run(run_service(args.service, settings_from(args)))


if __name__ == "__main__":
    raise SystemExit(main())
