"""The SQLite store's database: its tables, its format versions, and opening it.

One database file, ``kiltmq.db``, in the data directory, in WAL mode with
``synchronous=FULL``: every commit appends to the write-ahead log and fsyncs it, so a
committed transaction survives a power cut or a kill -9, and a torn write can only lose
an uncommitted one.

Messages: one row per (queue, message) in ``messages``; ``pos`` (the rowid) is a counter
starting at :data:`KEY_BASE`, so a queue's rows in pos order are the queue's order, and
``pos`` is the store's key for the row. Column ``key`` is the pos of the first row of the
same message, so that the rows of a message routed to several durable queues (one row
per queue, as RabbitMQ embeds small messages in each queue's index) share it.

Expiry: a message with a TTL in a queue (expiration property or x-message-ttl) has its
absolute deadline in its row (``expires``, milliseconds since the epoch), so that it
expires at the same moment after a restart, as in RabbitMQ.

The ``meta`` table also holds ``store_id`` (random, hex; also in the commit watermark)
and ``commit_seq``, the number of the last commit, which every transaction of the writer
sets (see :mod:`~kiltmq.broker.store.watermark`); a store of an older kiltmq gets both at
its first open, without a change of format.

Streams: each message's arrival time is in its row (``arrived``, milliseconds since the
epoch), so that time-based offsets and ``x-max-age`` count from it after a restart.

Quorum queues: a message that came back to its queue has its delivery count in its
row (``delivery_count``, NULL: never returned), and a message dead-lettered at least
once (``x-dead-letter-strategy: at-least-once``) keeps its row, with the reason in
``dead``, until the queues it is dead-lettered to hold it. Both are written only when
they change (a return, a death), never on the way of a publish or a delivery.

Format versions (``PRAGMA user_version``): 1, the first; 2 adds ``messages.expires``; 3
adds ``messages.delivery_count``, ``messages.dead`` and ``users.limits`` (a user's limits
as JSON, NULL for none); 4 adds the ``topic_permissions`` table (per user, vhost and
exchange, the write and read regexes); 5 adds ``messages.arrived`` (NULL: not a stream's,
or written before format 5).
An older store is upgraded in place at open, one step per version, each in one
transaction (``_MIGRATIONS``); nothing is dropped. A newer store is refused, and so are a
damaged file and an SQLite database that is not a kiltmq store, leaving the file as it is
(:mod:`~kiltmq.broker.store.check`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import uuid
from pathlib import Path
from typing import NamedTuple

from kiltmq.broker.store.check import check, damaged
from kiltmq.broker.store.interface import Definition, StoreError
from kiltmq.protocol.codec import encode_table

__all__ = [
    "DB_NAME",
    "DELETE",
    "DELETE_RANGE",
    "INSERT",
    "KEY_BASE",
    "MARK_DELIVERED",
    "SCHEMA_VERSION",
    "SET_DEAD",
    "SET_DELIVERY_COUNT",
    "SET_META",
    "Opened",
    "connect",
    "damaged",
    "definition_key",
    "insert_rows",
]

log = logging.getLogger("kiltmq.broker.store")

SCHEMA_VERSION = 5
DB_NAME = "kiltmq.db"
#: Positions of message rows start here, above any id ``Message`` hands out in a process,
#: so a message the store creates (a stand-in, a body read back) can carry the position
#: of its row as its id.
KEY_BASE = 1 << 48

_SCHEMA = """
BEGIN;
CREATE TABLE meta (key TEXT PRIMARY KEY, value);
CREATE TABLE vhosts (name TEXT PRIMARY KEY);
CREATE TABLE users (
    name TEXT PRIMARY KEY, password_hash TEXT, tags TEXT NOT NULL, limits TEXT);
CREATE TABLE permissions (
    user TEXT NOT NULL, vhost TEXT NOT NULL,
    configure TEXT NOT NULL, write TEXT NOT NULL, read TEXT NOT NULL,
    PRIMARY KEY (user, vhost));
CREATE TABLE topic_permissions (
    user TEXT NOT NULL, vhost TEXT NOT NULL, exchange TEXT NOT NULL,
    write TEXT NOT NULL, read TEXT NOT NULL,
    PRIMARY KEY (user, vhost, exchange));
CREATE TABLE definitions (
    vhost TEXT NOT NULL, kind TEXT NOT NULL, key BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (vhost, kind, key));
CREATE TABLE queues (id INTEGER PRIMARY KEY, vhost TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE messages (
    pos INTEGER PRIMARY KEY, queue_id INTEGER NOT NULL, key INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0, exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL, properties BLOB NOT NULL, body BLOB NOT NULL,
    expires INTEGER, delivery_count INTEGER, dead TEXT, arrived INTEGER);
INSERT INTO meta VALUES ('clean_shutdown', 1);
PRAGMA user_version = 5;
COMMIT;
"""
#: Format version -> the statements that turn it into the next one (run in one
#: transaction with the new user_version).
_MIGRATIONS: dict[int, str] = {
    1: "ALTER TABLE messages ADD COLUMN expires INTEGER;",
    2: "ALTER TABLE messages ADD COLUMN delivery_count INTEGER;"
    " ALTER TABLE messages ADD COLUMN dead TEXT;"
    " ALTER TABLE users ADD COLUMN limits TEXT;",
    3: "CREATE TABLE topic_permissions ("
    " user TEXT NOT NULL, vhost TEXT NOT NULL, exchange TEXT NOT NULL,"
    " write TEXT NOT NULL, read TEXT NOT NULL, PRIMARY KEY (user, vhost, exchange));",
    4: "ALTER TABLE messages ADD COLUMN arrived INTEGER;",
}
INSERT = (
    "INSERT INTO messages"
    " (pos, queue_id, key, exchange, routing_key, properties, body, expires, arrived)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
DELETE = "DELETE FROM messages WHERE pos = ?"
#: The rows of a run of consecutive positions, first and last.
DELETE_RANGE = "DELETE FROM messages WHERE pos BETWEEN ? AND ?"
MARK_DELIVERED = "UPDATE messages SET delivered = 1 WHERE pos = ?"
SET_DELIVERY_COUNT = "UPDATE messages SET delivery_count = ? WHERE pos = ?"
SET_DEAD = "UPDATE messages SET dead = ? WHERE pos = ?"
SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"


def insert_rows(count: int) -> str:
    """:data:`INSERT` of ``count`` rows in one statement (their parameters in a row)."""
    return INSERT + ", (?, ?, ?, ?, ?, ?, ?, ?, ?)" * (count - 1)


def _binding_key(definition: Definition) -> bytes:
    arguments = definition.get("arguments") or {}
    return encode_table(
        {
            "s": definition["source"],
            "t": definition.get("destination_type", "queue"),
            "d": definition["destination"],
            "k": definition["routing_key"],
            "a": dict(sorted(arguments.items())),
        }
    )


def definition_key(kind: str, definition: Definition) -> bytes:
    """The key of a definition in the ``definitions`` table (a binding's includes its
    arguments, in sorted order)."""
    if kind == "binding":
        return _binding_key(definition)
    return str(definition["name"]).encode()


def _migrate(db: sqlite3.Connection, path: Path, version: int) -> None:
    """Upgrade a store of an older format in place, one version at a time, each step
    in one transaction (a failed step leaves the store as it was)."""
    for old in range(version, SCHEMA_VERSION):
        try:
            db.executescript(
                f"BEGIN; {_MIGRATIONS[old]} PRAGMA user_version = {old + 1}; COMMIT;"
            )
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        log.info("store %s: format %d upgraded to %d", path, old, old + 1)


def private_file(path: Path) -> None:
    """Create ``path`` if it does not exist, and make it readable and writable by its
    owner only (0600), also when it existed with a wider mode: the store holds password
    hashes and message bodies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class Opened(NamedTuple):
    """The read-write connection to a store and what was read when opening it."""

    db: sqlite3.Connection
    #: Whether the broker that used it last stopped cleanly.
    was_clean: bool
    #: The store's id (also in its commit watermark).
    store_id: bytes
    #: The number of its last commit (see :mod:`~kiltmq.broker.store.watermark`).
    seq: int


def connect(path: Path, watermark: Path) -> Opened:
    """Open the store at ``path`` read-write (created, or upgraded to the current
    format, as needed) once it passed its checks (:func:`check`, against the commit
    watermark at ``watermark``). From then on the store says "not stopped cleanly"
    until a commit of ``SET_META`` says otherwise."""
    checked = check(path, watermark, SCHEMA_VERSION)
    version = checked.version
    try:
        private_file(path)
        for suffix in ("-wal", "-shm"):  # SQLite gives new ones the database file's mode
            sidecar = path.with_name(path.name + suffix)
            if sidecar.exists():
                private_file(sidecar)
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise damaged(path, exc) from None
    try:
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot put {path} in WAL mode (got {mode})")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA journal_size_limit = 67108864")
        if version == 0:
            db.executescript(_SCHEMA)
        elif version < SCHEMA_VERSION:
            _migrate(db, path, version)
        row = db.execute("SELECT value FROM meta WHERE key = 'clean_shutdown'").fetchone()
        was_clean = bool(row and row[0])
        store_id = checked.store_id
        db.execute("BEGIN")
        if store_id is None:  # a new store, or one written before it had an id
            store_id = uuid.uuid4().bytes
            db.execute(SET_META, ("store_id", store_id.hex()))
            db.execute(SET_META, ("commit_seq", checked.seq))
        # From now on an unclean stop is detectable: the marker is set again at close.
        db.execute(SET_META, ("clean_shutdown", 0))
        db.execute("COMMIT")
    except StoreError:
        db.close()
        raise
    except sqlite3.Error as exc:
        db.close()
        raise damaged(path, exc) from None
    return Opened(db, was_clean, store_id, checked.seq)
