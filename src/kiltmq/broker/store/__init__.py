"""Durable storage of the broker: what must survive a restart.

* :mod:`~kiltmq.broker.store.interface`: the :class:`Store` interface (what the broker
  reports, and when) and what a store hands back at start.
* :mod:`~kiltmq.broker.store.memory`: :class:`MemoryStore`, no storage at all.
* :mod:`~kiltmq.broker.store.sqlite`: :class:`SQLiteStore`, one SQLite database in a
  data directory, built from :mod:`~kiltmq.broker.store.schema` (tables, format
  versions), :mod:`~kiltmq.broker.store.check` (refusing a damaged store untouched),
  :mod:`~kiltmq.broker.store.watermark` (how far it committed, kept outside the
  database), :mod:`~kiltmq.broker.store.lock` (one broker per directory),
  :mod:`~kiltmq.broker.store.writer` (batches, group commit) and
  :mod:`~kiltmq.broker.store.recovery` (reading it back).
"""

from kiltmq.broker.message import PagedMessage
from kiltmq.broker.store.interface import (
    Definition,
    Recovered,
    Store,
    StoreDamaged,
    StoredMessage,
    StoreError,
)
from kiltmq.broker.store.lock import LOCK_NAME as LOCK_NAME
from kiltmq.broker.store.memory import MemoryStore
from kiltmq.broker.store.schema import DB_NAME as DB_NAME
from kiltmq.broker.store.schema import KEY_BASE as KEY_BASE
from kiltmq.broker.store.schema import SCHEMA_VERSION as SCHEMA_VERSION
from kiltmq.broker.store.sqlite import DEFAULT_PAGE_BYTES as DEFAULT_PAGE_BYTES
from kiltmq.broker.store.sqlite import DEFAULT_PAGE_MESSAGES as DEFAULT_PAGE_MESSAGES
from kiltmq.broker.store.sqlite import SQLiteStore, default_data_dir

__all__ = [
    "Definition",
    "MemoryStore",
    "PagedMessage",
    "Recovered",
    "SQLiteStore",
    "Store",
    "StoreDamaged",
    "StoreError",
    "StoredMessage",
    "default_data_dir",
]
