# ClientCreator and Failure.trap, from Twisted, have no type hints (txAMQP has none at all).
# mypy: disable-error-code="no-untyped-call"
"""The workshop's side of the kilt store: consume orders with txAMQP on Twisted.

Usage::

    python examples/tutorial/txamqp_consumer.py amqp0-9-1.xml [--count N]

txAMQP learns the protocol from the spec XML given as the first argument (see
examples/tutorial/README.md for where to get it). The consumer connects and
authenticates, opens a channel, declares the durable exchange and queue and binds them,
then consumes: it prints the body of each message on standard output, one per line, and
acknowledges it, so the broker forgets it. It runs until Ctrl-C, or until it has
received ``--count`` messages. Orders published while it was not running waited in the
queue and arrive first.

Status lines go to standard error; "waiting for messages" there says the consumer is
ready.
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
from txamqp.protocol import AMQClient
from txamqp.queue import Closed as QueueClosed

EXCHANGE = "kilts"
QUEUE = "kilt-orders"
ROUTING_KEY = "order"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Consume kilt orders with txAMQP.")
    parser.add_argument("spec", help="the AMQP spec XML for txAMQP (e.g. amqp0-9-1.xml)")
    parser.add_argument(
        "--count", type=int, default=0, help="exit after N messages (default: until Ctrl-C)"
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
    return parser.parse_args(argv)


def text(body: bytes | str) -> str:
    """A message body as text (txAMQP gives an empty body as ``""``)."""
    return body.decode() if isinstance(body, bytes) else body


@defer.inlineCallbacks
def consume(reactor: Any, args: argparse.Namespace) -> Generator[defer.Deferred[Any], Any, None]:
    spec = txamqp.spec.load(args.spec)

    # Connect: a TCP connection speaking AMQP, then log in and open the virtual host.
    delegate = TwistedDelegate()
    client = yield ClientCreator(
        reactor, AMQClient, delegate=delegate, vhost=args.vhost, spec=spec
    ).connectTCP(args.host, args.port, timeout=10)
    yield client.authenticate(args.user, args.password)

    # On Ctrl-C the reactor stops; before it does, close the connection cleanly. That
    # also ends the wait for the next message below.
    interrupted = []

    def on_shutdown() -> defer.Deferred[None]:
        interrupted.append(True)
        return client.close(within=2)  # type: ignore[no-any-return]

    reactor.addSystemEventTrigger("before", "shutdown", on_shutdown)

    # A channel: the conversations of one connection each happen on a channel.
    channel = yield client.channel(1)
    yield channel.channel_open()

    # Declare the exchange and the queue and bind them, exactly as the producer does:
    # whichever runs first creates them.
    yield channel.exchange_declare(exchange=args.exchange, type="direct", durable=True)
    yield channel.queue_declare(queue=args.queue, durable=True)
    yield channel.queue_bind(queue=args.queue, exchange=args.exchange, routing_key=args.routing_key)

    # Consume: the broker pushes messages (basic.deliver) to the consumer tag it names;
    # txAMQP puts them in a queue of its own for that tag.
    reply = yield channel.basic_consume(queue=args.queue)
    messages = yield client.queue(reply.consumer_tag)
    print(
        f"waiting for messages on queue {args.queue!r} bound to exchange {args.exchange!r}; "
        "press Ctrl-C to exit",
        file=sys.stderr,
        flush=True,
    )
    received = 0
    while not args.count or received < args.count:
        try:
            message = yield messages.get()
        except QueueClosed:
            if interrupted:
                print("interrupted", file=sys.stderr)
                return
            raise Closed("the connection closed") from None
        print(text(message.content.body), flush=True)
        # Acknowledge: the broker may now forget the message.
        channel.basic_ack(delivery_tag=message.delivery_tag)
        received += 1

    yield channel.basic_cancel(consumer_tag=reply.consumer_tag)
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

    return consume(reactor, args).addErrback(failed)


if __name__ == "__main__":
    task.react(main, [sys.argv[1:]])
