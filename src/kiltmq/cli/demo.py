"""``kiltmq demo``: run the kilt store, the reference application, on the embedded broker.

The store lives in the ``kiltstore`` package and needs the ``store`` extra (aiohttp,
Jinja2, aiosmtpd); it is imported only when the demo runs, so the rest of the
``kiltmq`` command works without it.
"""

from __future__ import annotations

import argparse

from kiltmq.cli.main import SubParsers

DESCRIPTION = """\
Run MacGrudder's kilt store: every service of the reference application, an SMTP
mailbox and an embedded kiltmq broker, in one process. It prints the addresses of the
web store, the workshop, the CRM, the mailbox and the order board. Stop it with Ctrl-C.
"""


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="run the kilt store reference application on the embedded broker",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--amqp-url",
        default=None,
        help="use this broker (e.g. RabbitMQ) instead of the embedded one",
    )
    parser.add_argument(
        "--amqp-port",
        type=int,
        default=5673,
        help="port of the embedded broker (default 5673; any free port if taken)",
    )
    parser.add_argument(
        "--data-dir", default="data/kiltstore", help="folder of the services' databases"
    )
    parser.add_argument("--prefix", default="kiltstore", help="exchange and queue name prefix")
    parser.add_argument("--host", default="127.0.0.1", help="address the pages listen on")
    parser.add_argument(
        "--any-ports",
        action="store_true",
        help="use any free ports instead of 8080-8086 and 8025",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        from kiltstore.cli import demo_main
    except ImportError as exc:
        print(
            f"kiltmq demo needs the kilt store's dependencies ({exc.name} is missing): "
            "pip install 'kiltmq[store]'"
        )
        return 1
    from pathlib import Path

    args.data_dir = Path(args.data_dir)
    return demo_main(args)
