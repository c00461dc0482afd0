"""The synchronous client facade (:mod:`kiltmq.client.blocking`), as ``kiltmq.blocking``."""

from kiltmq.client.blocking import (
    BlockingChannel,
    BlockingConnection,
    BlockingConsumer,
    connect,
)

__all__ = ["BlockingChannel", "BlockingConnection", "BlockingConsumer", "connect"]
