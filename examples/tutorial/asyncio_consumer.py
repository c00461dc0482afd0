"""The workshop's side of the kilt store: consume orders with kiltmq's asyncio client.

Usage::

    python examples/tutorial/asyncio_consumer.py [--count N]

The same consumer as txamqp_consumer.py, written with ``async``/``await`` where txAMQP
has ``inlineCallbacks``. The client knows AMQP 0-9-1 itself, so there is no spec file.
It connects, opens a channel, declares the durable exchange and queue and binds them,
then consumes: it prints the body of each message on standard output, one per line, and
acknowledges it, so the broker forgets it. It runs until Ctrl-C, or until it has
received ``--count`` messages. Orders published while it was not running waited in the
queue and arrive first.

Status lines go to standard error; "waiting for messages" there says the consumer is
ready.
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


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Consume kilt orders with kiltmq.")
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


async def consume(args: argparse.Namespace) -> None:
    params = kiltmq.ConnectionParameters(
        host=args.host,
        port=args.port,
        username=args.user,
        password=args.password,
        virtual_host=args.vhost,
    )
    # Connect: TCP, log in, open the virtual host; closed again at the end of the block,
    # also when Ctrl-C cancels this coroutine.
    async with kiltmq.connect(params, name="kilt-store consumer") as connection:
        # A channel: the conversations of one connection each happen on a channel.
        channel = await connection.channel()

        # Declare the exchange and the queue and bind them, exactly as the producer does:
        # whichever runs first creates them.
        await channel.exchange_declare(args.exchange, "direct", durable=True)
        await channel.queue_declare(args.queue, durable=True)
        await channel.queue_bind(args.queue, args.exchange, args.routing_key)

        # Consume: the broker pushes messages (basic.deliver) as they arrive; leaving the
        # block cancels the consumer (basic.cancel).
        async with channel.consume(args.queue) as messages:
            print(
                f"waiting for messages on queue {args.queue!r} bound to exchange "
                f"{args.exchange!r}; press Ctrl-C to exit",
                file=sys.stderr,
                flush=True,
            )
            received = 0
            async for message in messages:
                print(message.body.decode(), flush=True)
                # Acknowledge: the broker may now forget the message.
                await message.ack()
                received += 1
                if received == args.count:
                    break


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(consume(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    except (kiltmq.ClientError, kiltmq.AMQPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
