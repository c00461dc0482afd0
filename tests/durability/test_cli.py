"""``kiltmq broker --data-dir``: the store from the command line."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from kiltmq.broker.store import DB_NAME, SQLiteStore

from .conftest import BrokerProcess, blocking

pytestmark = pytest.mark.timeout(60)


def _run_broker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiltmq", "broker", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_second_broker_on_a_data_dir_fails_with_one_line(
    broker_process: BrokerProcess,
) -> None:
    broker_process.start()
    result = _run_broker("--data-dir", str(broker_process.data_dir))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"kiltmq broker: data directory {broker_process.data_dir} is in use by another "
        f"broker (pid {broker_process.proc.pid if broker_process.proc else '?'})"
    ]


def test_a_store_from_a_newer_version_is_refused_with_one_line(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    store.open()
    store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / DB_NAME)) as db, db:
        db.execute("PRAGMA user_version = 7")
    before = (tmp_path / DB_NAME).read_bytes()
    result = _run_broker("--data-dir", str(tmp_path))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("kiltmq broker: the store ")
    assert "format 7, written by a newer kiltmq" in line
    assert (tmp_path / DB_NAME).read_bytes() == before


def test_sigterm_is_a_clean_stop_and_data_survives(broker_process: BrokerProcess) -> None:
    broker_process.start()
    with contextlib.closing(blocking(broker_process.url)) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.queue_declare("kept", durable=True)
        channel.basic_publish("", "kept", b"one", pika.BasicProperties(delivery_mode=2))
    assert broker_process.stop() == 0
    broker_process.start()
    with contextlib.closing(blocking(broker_process.url)) as conn:
        method, _props, body = conn.channel().basic_get("kept", auto_ack=True)
    assert body == b"one"
    assert method is not None and not method.redelivered  # a clean stop: never delivered


def test_memory_only_excludes_a_data_dir(tmp_path: Path) -> None:
    result = _run_broker("--memory-only", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "exclude each other" in result.stderr


def test_store_uses_wal_and_full_synchronous_commits(tmp_path: Path) -> None:
    """The durability of a confirm rests on these two settings (a kill -9 test cannot see
    a missing fsync: the kernel keeps the written pages)."""
    store = SQLiteStore(tmp_path)
    store.open()
    try:
        assert store._db is not None
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()
