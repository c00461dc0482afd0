"""The web store's side of the kilt store: publish orders with kiltmq's asyncio client.

Usage::

    python examples/tutorial/asyncio_producer.py ["an order" ...]

The same producer as txamqp_producer.py, written with ``async``/``await`` where txAMQP
has ``inlineCallbacks``. The client knows AMQP 0-9-1 itself, so there is no spec file.
It connects (``kiltmq.connect`` logs in and opens the virtual host), opens a channel,
declares the durable exchange and queue and binds them, then publishes each message
given on the command line, or one default kilt order, as a persistent message. In
confirm mode each publish returns once the broker has taken the message.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import kiltmq

EXCHANGE = "kilts"
QUEUE = "kilt-orders"
ROUTING_KEY = "order"
DEFAULT_ORDER = "order 1001: one kilt, MacGrudder tartan, 34-inch waist"
#: delivery-mode 2: the broker keeps the message on disk in a durable queue.
PERSISTENT = 2


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Publish kilt orders with kiltmq.")
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


async def produce(args: argparse.Namespace) -> None:
    params = kiltmq.ConnectionParameters(
        host=args.host,
        port=args.port,
        username=args.user,
        password=args.password,
        virtual_host=args.vhost,
    )
    # Connect: TCP, log in, open the virtual host; closed again at the end of the block.
    async with kiltmq.connect(params, name="kilt-store producer") as connection:
        # A channel: the conversations of one connection each happen on a channel.
        channel = await connection.channel()

        # Declare the exchange and the queue and bind them. Declaring is idempotent: the
        # consumer declares the same, and whichever runs first creates them.
        await channel.exchange_declare(args.exchange, "direct", durable=True)
        await channel.queue_declare(args.queue, durable=True)
        await channel.queue_bind(args.queue, args.exchange, args.routing_key)

        # Publish: the exchange routes each message to the queues bound with its routing
        # key. Confirm mode: basic_publish returns once the broker has the message.
        await channel.confirm_select()
        properties = kiltmq.BasicProperties(content_type="text/plain", delivery_mode=PERSISTENT)
        for body in args.messages or [DEFAULT_ORDER]:
            await channel.basic_publish(
                body.encode(), args.exchange, args.routing_key, properties
            )
            print(f"sent {body!r}", file=sys.stderr)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(produce(args))
    except (kiltmq.ClientError, kiltmq.AMQPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
