"""``kiltmq spec``: the AMQP spec XML written from kiltmq's protocol tables, for clients
that load the protocol from a spec file at run time (txAMQP)."""

from __future__ import annotations

import argparse
import sys

from kiltmq.cli.main import SubParsers


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "spec",
        help="write the AMQP spec XML that txAMQP loads",
        description="Write the AMQP spec as XML, from kiltmq's own protocol tables: "
        "AMQP 0-9-1 (with RabbitMQ's extensions), or AMQP 0-8 as RabbitMQ serves it. "
        "txAMQP loads such a file at run time, e.g. "
        "`kiltmq spec --amqp 0-8 -o amqp0-8.xml`.",
    )
    parser.add_argument(
        "--amqp",
        choices=("0-9-1", "0-8"),
        default="0-9-1",
        help="protocol version (default 0-9-1)",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="file to write (default: standard output)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from kiltmq.protocol.spec_xml import spec08_xml, spec_xml

    text = spec08_xml() if args.amqp == "0-8" else spec_xml()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        print(f"kiltmq spec: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0
