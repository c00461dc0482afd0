"""The kiltmq broker: an AMQP 0-9-1 server with RabbitMQ's semantics, embeddable in a
Python process (``Broker``) or run standalone (``kiltmq broker``)."""

from kiltmq.broker.auth import AuthDB, Permission, User, check_password, hash_password
from kiltmq.broker.broker import Broker
from kiltmq.broker.store import (
    MemoryStore,
    Recovered,
    SQLiteStore,
    Store,
    StoreDamaged,
    StoredMessage,
    StoreError,
)

__all__ = [
    "AuthDB",
    "Broker",
    "MemoryStore",
    "Permission",
    "Recovered",
    "SQLiteStore",
    "Store",
    "StoreDamaged",
    "StoreError",
    "StoredMessage",
    "User",
    "check_password",
    "hash_password",
]
