"""SQLiteStore on its own: a store per test, on the test's event loop as in the broker
(with its writer thread, or writing on the loop), and helpers to read back what reached
the disk with a second store or plain sqlite3."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kiltmq.broker.message import Message
from kiltmq.broker.store import DB_NAME, Recovered, SQLiteStore
from kiltmq.protocol.spec import BasicProperties

QUEUE = {"name": "q", "durable": True, "auto_delete": False, "arguments": {}}


def persistent(body: bytes, routing_key: str = "q", **props: Any) -> Message:
    return Message.build("", routing_key, body, BasicProperties(delivery_mode=2, **props))


async def committed(store: SQLiteStore) -> None:
    """Wait until everything reported so far is on disk."""
    done = asyncio.Event()
    store.after_commit(done.set)
    await asyncio.wait_for(done.wait(), 10)


def reopen(path: Path) -> tuple[SQLiteStore, Recovered]:
    store = SQLiteStore(path)
    store.open()
    return store, store.recover()


def rows(path: Path) -> list[tuple[int, bytes]]:
    with contextlib.closing(sqlite3.connect(path / DB_NAME)) as db, db:
        return list(db.execute("SELECT queue_id, body FROM messages ORDER BY pos"))


@pytest.fixture(params=[True, False], ids=["writer-thread", "on-loop"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path, threaded=request.param)
    opened.open()
    yield opened
    opened.close()

