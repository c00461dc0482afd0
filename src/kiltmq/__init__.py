"""kiltmq: an AMQP 0-9-1 broker, asyncio client and CLI.

The client's public API is exported here::

    import kiltmq

    async with kiltmq.connect("amqp://guest:guest@localhost/") as conn:
        ch = await conn.channel()

and :mod:`kiltmq.blocking` is its synchronous facade.
"""

__version__ = "0.1.0"

from kiltmq.client import (
    AuthenticationError,
    BlockedTimeout,
    Channel,
    ChannelClosed,
    ClientError,
    ConnectError,
    Connection,
    ConnectionClosed,
    ConnectionLost,
    ConnectionParameters,
    ConnectTimeout,
    Consumer,
    InvalidURL,
    Message,
    PublishError,
    PublishNacked,
    QueueDeclareOk,
    Unroutable,
    connect,
    parse_url,
)
from kiltmq.protocol.errors import (
    AccessRefused,
    AMQPError,
    ChannelError,
    CommandInvalid,
    ConnectionForced,
    HardError,
    NotAllowed,
    NotFound,
    PreconditionFailed,
    ResourceLocked,
    SoftError,
)
from kiltmq.protocol.spec import BasicProperties

__all__ = [
    "AMQPError",
    "AccessRefused",
    "AuthenticationError",
    "BasicProperties",
    "BlockedTimeout",
    "Channel",
    "ChannelClosed",
    "ChannelError",
    "ClientError",
    "CommandInvalid",
    "ConnectError",
    "ConnectTimeout",
    "Connection",
    "ConnectionClosed",
    "ConnectionForced",
    "ConnectionLost",
    "ConnectionParameters",
    "Consumer",
    "HardError",
    "InvalidURL",
    "Message",
    "NotAllowed",
    "NotFound",
    "PreconditionFailed",
    "PublishError",
    "PublishNacked",
    "QueueDeclareOk",
    "ResourceLocked",
    "SoftError",
    "Unroutable",
    "__version__",
    "connect",
    "parse_url",
]
