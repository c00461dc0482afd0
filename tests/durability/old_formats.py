"""Stores as earlier kiltmq releases wrote them, for the tests that a store of an older
format is upgraded in place: each format's tables are kept here as written then, not
derived from the code, which only knows the current format."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kiltmq.broker.store import DB_NAME, KEY_BASE
from kiltmq.protocol.codec import encode_table
from kiltmq.protocol.spec import BasicProperties

_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value);
CREATE TABLE vhosts (name TEXT PRIMARY KEY);
CREATE TABLE users ({users});
CREATE TABLE permissions (
    user TEXT NOT NULL, vhost TEXT NOT NULL,
    configure TEXT NOT NULL, write TEXT NOT NULL, read TEXT NOT NULL,
    PRIMARY KEY (user, vhost));
CREATE TABLE definitions (
    vhost TEXT NOT NULL, kind TEXT NOT NULL, key BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (vhost, kind, key));
CREATE TABLE queues (id INTEGER PRIMARY KEY, vhost TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE messages (
    pos INTEGER PRIMARY KEY, queue_id INTEGER NOT NULL, key INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0, exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL, properties BLOB NOT NULL, body BLOB NOT NULL{messages});
INSERT INTO meta VALUES ('clean_shutdown', 1);
"""

#: Format 1, the first.
FORMAT_1 = _TABLES.format(
    users="name TEXT PRIMARY KEY, password_hash TEXT, tags TEXT NOT NULL", messages=""
)
#: Format 3: messages' expiry, delivery count and death, users' limits; the last
#: without topic permissions and streams' arrival times.
FORMAT_3 = _TABLES.format(
    users="\n    name TEXT PRIMARY KEY, password_hash TEXT, tags TEXT NOT NULL, limits TEXT",
    messages=",\n    expires INTEGER, delivery_count INTEGER, dead TEXT",
)
VERSIONS = {1: FORMAT_1, 3: FORMAT_3}


def write_store(
    path: Path,
    version: int,
    *,
    queue: Mapping[str, Any] | None = None,
    messages: Sequence[tuple[bytes, BasicProperties]] = (),
    rows: str = "",
) -> None:
    """Write a store of format ``version`` in the directory ``path`` (made here): vhost
    ``/`` and the SQL ``rows``, then ``queue`` (its definition) with ``messages`` in it,
    if given."""
    path.mkdir(parents=True, exist_ok=True)
    script = (
        f"BEGIN; {VERSIONS[version]} INSERT INTO vhosts VALUES ('/'); {rows}"
        f" PRAGMA user_version = {version}; COMMIT;"
    )
    with contextlib.closing(sqlite3.connect(path / DB_NAME, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(script)
        if queue is None:
            return
        name = str(queue["name"])
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO definitions VALUES ('/', 'queue', ?, ?)",
            (name.encode(), encode_table(dict(queue))),
        )
        db.execute("INSERT INTO queues VALUES (1, '/', ?)", (name,))
        for i, (body, props) in enumerate(messages):
            pos = KEY_BASE + i
            db.execute(
                "INSERT INTO messages (pos, queue_id, key, exchange, routing_key,"
                " properties, body) VALUES (?, 1, ?, '', ?, ?, ?)",
                (pos, pos, name, props.encode(), body),
            )
        db.execute("COMMIT")


def format_version(path: Path) -> int:
    """The format version of the store in ``path``."""
    with contextlib.closing(sqlite3.connect(path / DB_NAME)) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
