"""kiltmq: an AMQP 0-9-1 broker, asyncio client and CLI.

The client's public API is exported here::

    import kiltmq

    async with kiltmq.connect("amqp://guest:guest@localhost/") as conn:
        ch = await conn.channel()

and :mod:`kiltmq.blocking` is its synchronous facade.

Importing :mod:`kiltmq` itself imports nothing else: each of these names is imported from
its module (:mod:`kiltmq.client`, :mod:`kiltmq.protocol.errors`,
:mod:`kiltmq.protocol.spec`) the first time it is used, so that the broker, which
imports ``kiltmq.broker``, does not load the client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kiltmq.version import __version__

if TYPE_CHECKING:
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
        parse_addresses,
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

#: Where the names of the public API that are not the client's are defined.
_NOT_CLIENT: dict[str, str] = {
    **dict.fromkeys(
        (
            "AMQPError",
            "AccessRefused",
            "ChannelError",
            "CommandInvalid",
            "ConnectionForced",
            "HardError",
            "NotAllowed",
            "NotFound",
            "PreconditionFailed",
            "ResourceLocked",
            "SoftError",
        ),
        "kiltmq.protocol.errors",
    ),
    "BasicProperties": "kiltmq.protocol.spec",
}


def __getattr__(name: str) -> Any:
    home = _NOT_CLIENT.get(name, "kiltmq.client" if name in __all__ else None)
    if home is None:
        raise AttributeError(f"module 'kiltmq' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
    "parse_addresses",
    "parse_url",
]
