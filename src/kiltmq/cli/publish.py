"""``kiltmq publish``: the tutorial's producer.

Publishes MESSAGE (or, without one, each line read from standard input) and exits once
the broker has confirmed every message. Shares its topology options with ``kiltmq
consume`` (see that module): by default both use the named queue ``hello`` through the
default exchange, so messages published while no consumer runs wait in the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from typing import Any

from kiltmq import event_loop
from kiltmq.cli.main import SubParsers
from kiltmq.client import Channel, Connection, connect
from kiltmq.client.errors import (
    AuthenticationError,
    ClientError,
    ConnectError,
    PublishError,
)
from kiltmq.client.url import ConnectionParameters, InvalidURL, default_url
from kiltmq.protocol.errors import AMQPError, NotFound
from kiltmq.protocol.spec import BasicProperties

DEFAULT_QUEUE = "hello"
DEFAULT_BROADCAST_EXCHANGE = "logs"

TOPOLOGY_HELP = """\
Two ways to share messages:

  work queue (default)  producers and consumers share one named queue (--queue, default
                        "hello"); each message goes to exactly one consumer and the
                        consumers take turns (round robin; with --prefetch 1 a busy
                        consumer gets no more until it acks). Messages published while
                        no consumer runs wait in the queue.
  --broadcast           publish-subscribe: messages go to a fanout exchange (--exchange,
                        default "logs"); every consumer binds its own exclusive,
                        server-named queue to it, so every running consumer gets every
                        message, and messages published while no consumer runs are lost.

With --exchange NAME (and --exchange-type direct, topic, headers or fanout) consumers bind
their queue to that exchange with --routing-key (several allowed), and producers publish
to it with --routing-key, as in the tutorial's routing and topics steps; producers then
declare only the exchange, so a message that no bound queue takes is dropped.
"""


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``publish`` and ``consume``."""
    parser.add_argument(
        "--url",
        action="append",
        default=None,
        help="broker URL (default: $AMQP_URL, else amqp://guest:guest@localhost:5672/); "
        "repeat it, or list the hosts (amqp://user:password@host1:5672,host2:5672/), "
        "for the nodes of a cluster: the first that accepts the connection is used",
    )
    parser.add_argument(
        "--exchange",
        default=None,
        help='exchange to use (default: the default exchange "", or "logs" with --broadcast)',
    )
    parser.add_argument(
        "--exchange-type",
        default=None,
        choices=["direct", "fanout", "topic", "headers"],
        help="type to declare the exchange with (default: direct, fanout with --broadcast)",
    )
    parser.add_argument(
        "--queue",
        default=DEFAULT_QUEUE,
        help=f"queue name for the work-queue mode (default: {DEFAULT_QUEUE})",
    )
    parser.add_argument(
        "--broadcast",
        action="store_true",
        help="publish-subscribe through a fanout exchange: every consumer gets every message",
    )
    parser.add_argument(
        "--persistent",
        action="store_true",
        help="durable queue and exchange, persistent (delivery mode 2) messages",
    )
    parser.add_argument(
        "--passive",
        action="store_true",
        help="do not declare the exchange: fail if it does not exist",
    )


class Topology:
    """The names and kinds resolved from the common options."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.broadcast: bool = args.broadcast
        exchange = args.exchange
        if exchange is None:
            exchange = DEFAULT_BROADCAST_EXCHANGE if self.broadcast else ""
        self.exchange: str = exchange
        self.exchange_type: str = args.exchange_type or ("fanout" if self.broadcast else "direct")
        self.queue: str = args.queue
        self.durable: bool = args.persistent
        self.passive: bool = args.passive

    async def declare_exchange(self, conn: Connection, ch: Channel) -> None:
        """Declare the exchange, or check it exists (--passive). An exchange that exists
        already is used as it is."""
        if not self.exchange:
            return
        if await exists(conn, "exchange", self.exchange):
            return
        if self.passive:
            raise CLIError(f"exchange {self.exchange!r} does not exist")
        await ch.exchange_declare(self.exchange, self.exchange_type, durable=self.durable)

    async def declare_queue(self, conn: Connection, ch: Channel, queue: str) -> None:
        """Declare the work queue unless it exists already (then it is used as it is,
        whatever its durability)."""
        if not await exists(conn, "queue", queue):
            await ch.queue_declare(queue, durable=self.durable)


async def exists(conn: Connection, kind: str, name: str) -> bool:
    """Passive declare on a throwaway channel (a 404 closes the channel it happens on)."""
    probe = await conn.channel()
    try:
        if kind == "exchange":
            await probe.exchange_declare(name, passive=True)
        else:
            await probe.queue_declare(name, passive=True)
    except NotFound:
        return False
    await probe.close()
    return True


class CLIError(Exception):
    """A failure to report in one line."""


def describe(error: BaseException) -> str:
    """One line saying what went wrong (with the failures at other addresses)."""
    notes = getattr(error, "__notes__", None)
    line = _describe(error)
    return "; ".join([line, *notes]) if notes else line


def _describe(error: BaseException) -> str:
    if isinstance(error, InvalidURL):
        return f"invalid URL: {error}"
    if isinstance(error, AuthenticationError):
        return f"authentication failed: {error.reply_text or 'access refused'}"
    if isinstance(error, ConnectError):
        return str(error)
    if isinstance(error, AMQPError):
        return f"the broker refused: {error}"
    if isinstance(error, (ClientError, TimeoutError, CLIError, OSError)):
        return str(error) or type(error).__name__
    return f"{type(error).__name__}: {error}"


def run_async(command: str, main: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine (on uvloop when it is installed, unless KILTMQ_UVLOOP=0);
    report errors in one line on stderr."""
    try:
        factory = event_loop.loop_factory()
    except (ValueError, RuntimeError) as error:
        main.close()
        print(f"kiltmq {command}: {error}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    except KeyboardInterrupt:
        return 130
    except InvalidURL as error:
        print(f"kiltmq {command}: {describe(error)}", file=sys.stderr)
        return 2
    except (AMQPError, ClientError, CLIError, TimeoutError, OSError) as error:
        print(f"kiltmq {command}: {describe(error)}", file=sys.stderr)
        return 1


def open_connection(
    urls: Sequence[str | ConnectionParameters] | None, name: str, *, recovery: bool = False
) -> connect:
    """Connect to the first of the given brokers (default: $AMQP_URL) that accepts."""
    return connect(urls or default_url(), name=name, recovery=recovery)


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "publish",
        help="publish messages (the tutorial's producer)",
        description=(
            "Publish MESSAGE, or each line of standard input when no MESSAGE is given, "
            "and wait for the broker to confirm them.\n\n" + TOPOLOGY_HELP
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "message",
        nargs="*",
        metavar="MESSAGE",
        help="message body (words are joined with spaces); default: one message per line "
        "of standard input",
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--routing-key",
        default=None,
        help="routing key (default: the queue name; ignored by fanout exchanges)",
    )
    parser.add_argument(
        "--mandatory",
        action="store_true",
        help="fail if a message cannot be routed to any queue",
    )
    parser.add_argument(
        "--confirm-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up when the broker has not confirmed a batch within SECONDS (default 30)",
    )
    return parser


def _messages(args: argparse.Namespace) -> Iterable[bytes]:
    if args.message:
        yield " ".join(args.message).encode()
        return
    if sys.stdin.isatty():
        print("reading messages from standard input, one per line (end with Ctrl+D)",
              file=sys.stderr)
    for line in sys.stdin.buffer:
        yield line.rstrip(b"\r\n")


async def _batches(messages: Iterable[bytes], size: int) -> AsyncIterator[list[bytes]]:
    batch: list[bytes] = []
    for message in messages:
        batch.append(message)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _publish(args: argparse.Namespace) -> int:
    topology = Topology(args)
    async with open_connection(args.url, "kiltmq publish") as conn:
        ch = await conn.channel()
        await topology.declare_exchange(conn, ch)
        routing_key = args.routing_key
        if not topology.broadcast:
            if routing_key is None:
                routing_key = topology.queue
            if not topology.exchange:
                # work queue: the queue exists even before any consumer ran
                await topology.declare_queue(conn, ch, topology.queue)
        await ch.confirm_select()
        properties = BasicProperties(delivery_mode=2) if args.persistent else None
        count = 0
        async for batch in _batches(_messages(args), 1000):
            futures = [
                ch.publish_nowait(
                    body,
                    topology.exchange,
                    routing_key or "",
                    properties,
                    mandatory=args.mandatory,
                )
                for body in batch
            ]
            try:
                results = await asyncio.wait_for(
                    asyncio.gather(*futures, return_exceptions=True), args.confirm_timeout
                )
            except TimeoutError:
                raise CLIError(
                    f"the broker did not confirm {len(batch)} message(s) within "
                    f"{args.confirm_timeout:g} s ({count} confirmed before)"
                ) from None
            for result in results:
                if isinstance(result, PublishError):
                    raise CLIError(f"message not accepted: {result}")
                if isinstance(result, BaseException):
                    raise result
            count += len(batch)
        print(f"published {count} message(s)", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    return run_async("publish", _publish(args))

