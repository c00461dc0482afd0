"""SQLiteStore refusals: a directory in use, a newer format, a damaged file or a foreign
database is refused, and left untouched."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from kiltmq.broker.store import DB_NAME, SQLiteStore, StoreError

from .conftest import QUEUE, persistent

pytestmark = pytest.mark.timeout(60)


# -- refusals ---------------------------------------------------------------------------


async def test_a_second_store_on_the_same_directory_is_refused(
    store: SQLiteStore, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match=r"in use by another broker \(pid \d+\)"):
        SQLiteStore(tmp_path).open()


def test_a_store_written_by_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    store.open()
    store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / DB_NAME)) as db, db:
        db.execute("PRAGMA user_version = 99")
    before = (tmp_path / DB_NAME).read_bytes()
    with pytest.raises(StoreError, match="format 99, written by a newer kiltmq"):
        SQLiteStore(tmp_path).open()
    assert (tmp_path / DB_NAME).read_bytes() == before


def test_a_damaged_store_is_refused_untouched(tmp_path: Path) -> None:
    garbage = b"this is not a database, it is a kilt pattern" * 100
    (tmp_path / DB_NAME).write_bytes(garbage)
    with pytest.raises(StoreError, match=r"cannot be read .* has not changed it"):
        SQLiteStore(tmp_path).open()
    assert (tmp_path / DB_NAME).read_bytes() == garbage


def test_a_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / DB_NAME)) as db, db:
        db.execute("CREATE TABLE orders (id INTEGER)")
    with pytest.raises(StoreError, match="not a kiltmq store"):
        SQLiteStore(tmp_path).open()


def test_refusal_releases_the_directory(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"garbage" * 1000)
    with pytest.raises(StoreError):
        SQLiteStore(tmp_path).open()
    (tmp_path / DB_NAME).unlink()
    store = SQLiteStore(tmp_path)
    store.open()  # not "in use": the failed open let go of the lock
    store.close()


async def test_a_store_with_a_damaged_page_is_refused_untouched(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    store.open()
    store.definition_added("/", "queue", QUEUE)
    for i in range(2000):
        store.message_enqueued("/", "q", persistent(b"%d" % i * 20))
    store.close()
    path = tmp_path / DB_NAME
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 10 * page
    data[5 * page : 5 * page + 16] = b"\xff" * 16  # a b-tree page header overwritten
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="cannot be read"):
        SQLiteStore(tmp_path).open()
    assert path.read_bytes() == bytes(data)
