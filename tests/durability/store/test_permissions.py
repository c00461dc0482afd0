"""The data directory and the store's files are their owner's only: the store holds
password hashes and message bodies."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kiltmq.broker.auth import User, hash_password
from kiltmq.broker.store import DB_NAME, LOCK_NAME, SQLiteStore

from .conftest import QUEUE, committed, persistent

FILES = (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", LOCK_NAME)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def fill(store: SQLiteStore) -> None:
    store.user_added(User("sales", hash_password("secret"), frozenset()))
    store.definition_added("/", "queue", QUEUE)
    store.message_enqueued("/", "q", persistent(b"one kilt"))
    await committed(store)


async def test_a_new_store_is_private(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # what most systems run with: 0755 and 0644 otherwise
    try:
        data_dir = tmp_path / "a" / "data"
        store = SQLiteStore(data_dir)
        store.open()
        try:
            await fill(store)
            assert mode(data_dir) == 0o700
            assert {name: mode(data_dir / name) for name in FILES} == dict.fromkeys(
                FILES, 0o600
            )
        finally:
            store.close()
    finally:
        os.umask(old_umask)


async def test_an_existing_store_with_wider_modes_is_made_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = SQLiteStore(data_dir)
    store.open()
    await fill(store)
    store.close()
    data_dir.chmod(0o755)
    for name in FILES:
        path = data_dir / name
        if not path.exists():  # a clean close may remove the WAL files
            path.touch()
        path.chmod(0o644)

    store = SQLiteStore(data_dir)
    store.open()
    try:
        assert mode(data_dir) == 0o700
        assert {name: mode(data_dir / name) for name in FILES} == dict.fromkeys(FILES, 0o600)
        assert [m.message.size for m in store.recover().messages] == [len(b"one kilt")]
    finally:
        store.close()
