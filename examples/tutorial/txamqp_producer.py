# ClientCreator and Failure.trap, from Twisted, have no type hints (txAMQP has none at all).
# mypy: disable-error-code="no-untyped-call"
"""The web store's side of the kilt store: publish orders with txAMQP on Twisted.

Usage::

    python examples/tutorial/txamqp_producer.py amqp0-9-1.xml ["an order" ...]

txAMQP learns the protocol from the spec XML given as the first argument (see
examples/tutorial/README.md for where to get it). The producer connects and
authenticates, opens a channel, declares the durable exchange and queue and binds them
(so an order waits in the queue even if no consumer has run yet), then publishes each
message given on the command line, or one default kilt order, as a persistent message.

Each step is a call that returns a Deferred; ``inlineCallbacks`` lets the code ``yield``
it and go on with its result, so it reads top to bottom like blocking code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Generator, Sequence
from typing import Any

import txamqp.spec
from twisted.internet import defer, task
from twisted.internet.error import ConnectError
from twisted.internet.protocol import ClientCreator
from twisted.python.failure import Failure
from txamqp.client import Closed, TwistedDelegate
from txamqp.content import Content
from txamqp.protocol import AMQClient

EXCHANGE = "kilts"
QUEUE = "kilt-orders"
ROUTING_KEY = "order"
DEFAULT_ORDER = "order 1001: one kilt, MacGrudder tartan, 34-inch waist"
#: delivery-mode 2: the broker keeps the message on disk in a durable queue.
PERSISTENT = 2


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Publish kilt orders with txAMQP.")
    parser.add_argument("spec", help="the AMQP spec XML for txAMQP (e.g. amqp0-9-1.xml)")
    parser.add_argument(
        "messages", nargs="*", metavar="MESSAGE", help=f"what to publish (default: {DEFAULT_ORDER})"
    )
    parser.add_argument("--host", default="localhost", help="broker host (default localhost)")
    parser.add_argument("--port", type=int, default=5672, help="broker port (default 5672)")
    parser.add_argument("--vhost", default="/", help="virtual host (default /)")
    parser.add_argument("--user", default="guest", help="user name (default guest)")
    parser.add_argument("--password", default="guest", help="password (default guest)")
    parser.add_argument("--exchange", default=EXCHANGE, help=f"exchange (default {EXCHANGE})")
    parser.add_argument("--queue", default=QUEUE, help=f"queue (default {QUEUE})")
    parser.add_argument(
        "--routing-key", default=ROUTING_KEY, help=f"routing key (default {ROUTING_KEY})"
    )
    return parser.parse_intermixed_args(argv)


def property_name(spec: Any, name: str) -> str:
    """The spec's name of basic property ``name``: the 0-8 XML writes "delivery mode",
    the 0-9-1 XML "delivery-mode"; txAMQP takes them as written."""
    return str(spec.classes.byname["basic"].fields.bypyname[name].name)


@defer.inlineCallbacks
def produce(reactor: Any, args: argparse.Namespace) -> Generator[defer.Deferred[Any], Any, None]:
    spec = txamqp.spec.load(args.spec)

    # Connect: a TCP connection speaking AMQP, then log in and open the virtual host.
    delegate = TwistedDelegate()
    client = yield ClientCreator(
        reactor, AMQClient, delegate=delegate, vhost=args.vhost, spec=spec
    ).connectTCP(args.host, args.port, timeout=10)
    yield client.authenticate(args.user, args.password)

    # A channel: the conversations of one connection each happen on a channel.
    channel = yield client.channel(1)
    yield channel.channel_open()

    # Declare the exchange and the queue and bind them. Declaring is idempotent: the
    # consumer declares the same, and whichever runs first creates them.
    yield channel.exchange_declare(exchange=args.exchange, type="direct", durable=True)
    yield channel.queue_declare(queue=args.queue, durable=True)
    yield channel.queue_bind(queue=args.queue, exchange=args.exchange, routing_key=args.routing_key)

    # Publish: the exchange routes each message to the queues bound with its routing key.
    for body in args.messages or [DEFAULT_ORDER]:
        content = Content(body.encode())
        content[property_name(spec, "content_type")] = "text/plain"
        content[property_name(spec, "delivery_mode")] = PERSISTENT
        channel.basic_publish(exchange=args.exchange, routing_key=args.routing_key, content=content)
        print(f"sent {body!r}", file=sys.stderr)

    # Closing the connection cleanly (connection.close, then close-ok) also tells us the
    # broker has read every message sent before it.
    yield channel.channel_close()
    yield client.close(within=5)


def main(reactor: Any, argv: Sequence[str]) -> defer.Deferred[None]:
    args = parse_args(argv)

    def failed(failure: Failure) -> None:
        failure.trap(ConnectError, Closed)
        # Closed carries the broker's connection.close or channel.close, or how the
        # socket closed (a wrong password closes it at once).
        error: Any = failure.value
        reason = error.args[0] if error.args else error
        if isinstance(reason, Failure):
            reason = f"connection closed: {reason.getErrorMessage()}"
        elif hasattr(reason, "reply_code"):
            reason = f"{reason.reply_code} {reason.reply_text}"
        raise SystemExit(f"error: {reason}")

    return produce(reactor, args).addErrback(failed)


if __name__ == "__main__":
    task.react(main, [sys.argv[1:]])
