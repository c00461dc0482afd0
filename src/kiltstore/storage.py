"""Each service's own SQLite database: its data, its processed-message ids, its outbox.

Two patterns make the store's messaging safe under at-least-once delivery and crashes:

Idempotent Receiver
    A consumer stores the id of each message it has handled *in the same transaction*
    as the message's effect (:meth:`Transaction.mark_processed`). A redelivered
    message finds its id already there and its effect is not repeated.

Transactional outbox
    A service never publishes in the middle of a transaction. It writes the
    messages it wants to send into the ``outbox`` table in the same transaction as
    the change that caused them (:meth:`Transaction.publish`); after the commit the
    :class:`~kiltstore.bus.Bus` publishes them with publisher confirms and marks them
    sent. If the service dies in between, it sends them when it starts again; if it
    dies after publishing but before marking, it sends them twice, with the same
    message id, and the receiver drops the second copy.

A consumer therefore: opens a transaction, returns early if the message was
processed, otherwise stores the effect, the outgoing messages and the message id,
commits, flushes the outbox, and only then acks.

SQLite calls are made directly from the event loop: the databases are small, local
and in WAL mode, so a transaction takes well under a millisecond.

Card numbers pass through some tables (an outbox's unsent bodies, the CRM's orders, a
dead letter) and are blanked once they are no longer needed. So that no copy lingers in
any file, every database runs with ``PRAGMA secure_delete`` (deleted and overwritten
content is zeroed, not left in free space), and whoever blanks one calls
:meth:`Database.scrub`, a ``TRUNCATE`` checkpoint: the blanked pages go into the
database file and the write-ahead log, which still held the old page images, is cut to
nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed (
    message_id   TEXT PRIMARY KEY,
    queue        TEXT NOT NULL,
    processed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    TEXT NOT NULL,
    exchange      TEXT NOT NULL,
    routing_key   TEXT NOT NULL,
    body          BLOB NOT NULL,
    content_type  TEXT NOT NULL,
    type          TEXT NOT NULL,
    headers       TEXT NOT NULL,
    created_at    REAL NOT NULL,
    sent_at       REAL,
    reply_to       TEXT NOT NULL DEFAULT '',
    correlation_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
"""


@dataclass(frozen=True)
class OutgoingMessage:
    """A row of the outbox: a message to publish once its transaction has committed."""

    id: int
    message_id: str
    exchange: str  # exchange key, without the topology prefix
    routing_key: str
    body: bytes
    content_type: str
    type: str
    headers: dict[str, Any]
    reply_to: str = ""
    correlation_id: str = ""


class Transaction:
    """One SQLite transaction of a :class:`Database`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def is_processed(self, message_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM processed WHERE message_id = ?", (message_id,)
        ).fetchone()
        return row is not None

    def mark_processed(self, message_id: str, queue: str) -> None:
        self.conn.execute(
            "INSERT INTO processed (message_id, queue, processed_at) VALUES (?, ?, ?)",
            (message_id, queue, time.time()),
        )

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        content_type: str,
        type: str,
        headers: dict[str, Any] | None = None,
        reply_to: str = "",
        correlation_id: str = "",
    ) -> None:
        """Queue a message in the outbox; it is published after the commit.
        ``exchange`` ``""`` is the default exchange (``routing_key``: a queue name)."""
        self.conn.execute(
            "INSERT INTO outbox (message_id, exchange, routing_key, body, content_type, type,"
            " headers, created_at, reply_to, correlation_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message_id,
                exchange,
                routing_key,
                body,
                content_type,
                type,
                json.dumps(headers or {}),
                time.time(),
                reply_to,
                correlation_id,
            ),
        )


class Database:
    """A service's SQLite database file (created with its tables on first use)."""

    def __init__(self, path: Path | str, schema: str = "") -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        self.conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=10
        )
        self.conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA secure_delete=ON")
        self.conn.executescript(_SCHEMA)
        self._migrate()
        self.conn.executescript(schema)
        self.scrub()

    def _migrate(self) -> None:
        """Bring a database written by an older version up to this schema (and forget
        the bodies of messages it sent, as :meth:`mark_sent` now does)."""
        with self._lock:
            self.conn.execute("UPDATE outbox SET body = X'' WHERE sent_at IS NOT NULL"
                              " AND length(body) > 0")
        self.add_columns(
            "outbox",
            {
                "reply_to": "TEXT NOT NULL DEFAULT ''",
                "correlation_id": "TEXT NOT NULL DEFAULT ''",
            },
        )

    def add_columns(self, table: str, columns: dict[str, str]) -> None:
        """Add the columns ``table`` lacks (name -> SQL type and default)."""
        with self._lock:
            have = {row["name"] for row in self.conn.execute(f"PRAGMA table_info({table})")}
            for name, declaration in columns.items():
                if name not in have:
                    self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` if the block raises."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self.conn)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def query_one(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
    ) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
            return row

    def unsent(self, limit: int = 100) -> list[OutgoingMessage]:
        rows = self.query(
            "SELECT * FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?", (limit,)
        )
        return [
            OutgoingMessage(
                id=row["id"],
                message_id=row["message_id"],
                exchange=row["exchange"],
                routing_key=row["routing_key"],
                body=bytes(row["body"]),
                content_type=row["content_type"],
                type=row["type"],
                headers=json.loads(row["headers"]),
                reply_to=row["reply_to"],
                correlation_id=row["correlation_id"],
            )
            for row in rows
        ]

    def mark_sent(self, outbox_id: int) -> None:
        """Mark a message sent, and forget its body (it may hold a card number; call
        :meth:`scrub` after a batch)."""
        with self._lock:
            self.conn.execute(
                "UPDATE outbox SET sent_at = ?, body = X'' WHERE id = ?", (time.time(), outbox_id)
            )

    def scrub(self) -> None:
        """Leave no old copy of blanked data in the files: checkpoint the write-ahead
        log into the database file and truncate it (``wal_checkpoint(TRUNCATE)``). Call
        it after blanking card numbers, outside a transaction."""
        with self._lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def close(self) -> None:
        with self._lock:
            self.conn.close()
