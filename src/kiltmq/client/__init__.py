"""The asyncio AMQP 0-9-1 client.

::

    import kiltmq

    async with kiltmq.connect("amqp://guest:guest@localhost/") as conn:
        ch = await conn.channel()
        await ch.queue_declare("hello")
        await ch.basic_publish(b"hi", routing_key="hello")
        async for message in ch.consume("hello"):
            print(message.body)
            await message.ack()
            break

Modules, bottom to top: ``errors``, ``url``, ``state``, ``flow``, ``message``,
``consumer``, ``topology``, ``rpc``, ``confirms``, ``publisher``, ``dispatch``,
``channel``, ``registry``, ``transport``, ``heartbeat``, ``handshake``, ``closing``,
``addresses``, ``recovery``, ``connection``, ``connect``, ``blocking``.
See :mod:`kiltmq.client.connection` (connecting), :mod:`kiltmq.client.recovery`,
:mod:`kiltmq.client.channel` (the methods), :mod:`kiltmq.client.consumer` and
:mod:`kiltmq.client.message`, :mod:`kiltmq.client.blocking` (the synchronous facade)
and docs/client.md.
"""

from kiltmq.client.channel import Channel, ChannelState, QueueDeclareOk
from kiltmq.client.connect import connect
from kiltmq.client.connection import Connection, ConnectionState
from kiltmq.client.consumer import Consumer
from kiltmq.client.errors import (
    AuthenticationError,
    BlockedTimeout,
    ChannelClosed,
    ClientError,
    ConnectError,
    ConnectionClosed,
    ConnectionLost,
    ConnectTimeout,
    PublishError,
    PublishNacked,
    Unroutable,
)
from kiltmq.client.message import Message
from kiltmq.client.url import ConnectionParameters, InvalidURL, parse_addresses, parse_url

__all__ = [
    "AuthenticationError",
    "BlockedTimeout",
    "Channel",
    "ChannelClosed",
    "ChannelState",
    "ClientError",
    "ConnectError",
    "ConnectTimeout",
    "Connection",
    "ConnectionClosed",
    "ConnectionLost",
    "ConnectionParameters",
    "ConnectionState",
    "Consumer",
    "InvalidURL",
    "Message",
    "PublishError",
    "PublishNacked",
    "QueueDeclareOk",
    "Unroutable",
    "connect",
    "parse_addresses",
    "parse_url",
]
