"""``kiltmq consume``: the tutorial's consumer.

Declares the exchange and the queue, binds them, and prints the body of each message as
it arrives, one per line (flushed at once). See ``kiltmq consume --help`` for the two
modes (work queue, --broadcast). When the queue is ready it says so on standard error
("waiting for messages on ..."), so scripts can wait for that line before publishing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from kiltmq.cli.main import SubParsers
from kiltmq.cli.publish import (
    TOPOLOGY_HELP,
    CLIError,
    Topology,
    add_common_arguments,
    open_connection,
    run_async,
)
from kiltmq.client.url import parse_addresses


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "consume",
        help="print messages as they arrive (the tutorial's consumer)",
        description=(
            "Declare the exchange and queue, bind them, and print each message body on "
            "its own line as it arrives.\n\n" + TOPOLOGY_HELP
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--routing-key",
        action="append",
        default=None,
        metavar="KEY",
        help="binding key for the queue (repeatable; default: the queue name, or \"\" with "
        "--broadcast)",
    )
    parser.add_argument(
        "--ack",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="acknowledge each message after printing it (default), or let the broker "
        "forget messages as soon as it sends them (--no-ack)",
    )
    parser.add_argument(
        "--prefetch",
        type=_positive,
        default=1,
        metavar="N",
        help="at most N unacknowledged messages at a time (default 1: fair dispatch; "
        "0: no limit)",
    )
    parser.add_argument(
        "--count",
        type=_positive,
        default=0,
        metavar="N",
        help="exit after N messages (default: run until interrupted)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after SECONDS without a message",
    )
    return parser


async def _consume(args: argparse.Namespace) -> int:
    topology = Topology(args)
    # With several brokers (a cluster's nodes), a lost connection moves to another one.
    addresses = parse_addresses(args.url)
    recovery = len(addresses) > 1
    async with open_connection(addresses, "kiltmq consume", recovery=recovery) as conn:
        ch = await conn.channel()
        await topology.declare_exchange(conn, ch)
        if topology.broadcast:
            queue = (await ch.queue_declare("", exclusive=True)).queue
            for key in args.routing_key or [""]:
                await ch.queue_bind(queue, topology.exchange, key)
        else:
            queue = topology.queue
            await topology.declare_queue(conn, ch, queue)
            if topology.exchange:
                for key in args.routing_key or [queue]:
                    await ch.queue_bind(queue, topology.exchange, key)
        if args.prefetch and args.ack:
            await ch.basic_qos(args.prefetch)
        out = sys.stdout.buffer
        received = 0
        async with ch.consume(queue, no_ack=not args.ack) as consumer:
            where = f"queue {queue!r}"
            if topology.exchange:
                where += f" bound to exchange {topology.exchange!r}"
            print(f"waiting for messages on {where}; press Ctrl+C to exit",
                  file=sys.stderr, flush=True)
            while not args.count or received < args.count:
                try:
                    async with asyncio.timeout(args.idle_timeout):
                        message = await anext(consumer)
                except StopAsyncIteration:
                    raise CLIError(f"the broker cancelled the consumer of {queue!r}") from None
                except TimeoutError:
                    print(f"no message for {args.idle_timeout:g} s; exiting", file=sys.stderr)
                    break
                out.write(message.body + b"\n")
                out.flush()
                if args.ack:
                    await message.ack()
                received += 1
    return 0


def run(args: argparse.Namespace) -> int:
    return run_async("consume", _consume(args))
