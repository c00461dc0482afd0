"""``kiltmq demo``: run the kilt store, the reference application, on the embedded broker.

The store lives in the ``kiltstore`` package and needs the ``store`` extra (aiohttp,
Jinja2, aiosmtpd); it is imported only when the demo runs, so the rest of the
``kiltmq`` command works without it.
"""

from __future__ import annotations

import argparse

from kiltmq.cli.main import SubParsers
from kiltstore.cli import add_demo_arguments, demo_main  # standard library only

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
    add_demo_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        import kiltstore.demo  # noqa: F401  (needs the store extra)
    except ImportError as exc:
        print(
            f"kiltmq demo needs the kilt store's dependencies ({exc.name} is missing): "
            "pip install 'kiltmq[store]'"
        )
        return 1
    return demo_main(args)
