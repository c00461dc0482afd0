"""A store that lost confirmed messages is refused, never opened silently.

A broker process gets 3,000 confirmed persistent messages, then is killed with SIGKILL
(or stopped cleanly). Its data directory is then damaged the ways disks and people
damage it: 64 bytes of the write-ahead log overwritten, a page of the database
overwritten, the commit watermark truncated, the write-ahead log deleted. Each time
``kiltmq broker`` refuses to start with one line and a non-zero exit, the embedded
store raises :class:`StoreDamaged`, and every file in the directory is byte for byte as
it was (no ``-wal``/``-shm`` created, nothing checkpointed). Undamaged, the same store
starts after a clean stop, after a kill -9, and after a kill between SQLite's commit and
the watermark's write (the database one commit ahead of its watermark), with all 3,000
messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import subprocess
import sys
from pathlib import Path

import aiormq
import pytest

from kiltmq.broker.store import DB_NAME, SQLiteStore, StoreDamaged
from kiltmq.broker.store.watermark import WATERMARK_NAME, Watermark, read_mark

from .conftest import BrokerProcess, blocking

pytestmark = pytest.mark.timeout(120)

COUNT = 3000
QUEUE = "wm"
WAL = DB_NAME + "-wal"


async def _publish_confirmed(url: str, count: int = COUNT) -> None:
    conn = await aiormq.connect(url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        await channel.queue_declare(QUEUE, durable=True)
        props = aiormq.spec.Basic.Properties(delivery_mode=2)
        for start in range(0, count, 1500):
            confirms = await asyncio.gather(
                *(
                    channel.basic_publish(b"m%05d" % i + b"." * 90, routing_key=QUEUE,
                                          properties=props)
                    for i in range(start, min(count, start + 1500))
                )
            )
            assert all(isinstance(c, aiormq.spec.Basic.Ack) for c in confirms)
    finally:
        await conn.close()


def _confirmed_store(tmp_path: Path, how: str) -> BrokerProcess:
    """A data directory holding COUNT confirmed messages, its broker gone (``how``:
    "kill" or "stop")."""
    broker = BrokerProcess(tmp_path / "data")
    broker.start()
    try:
        asyncio.run(_publish_confirmed(broker.url))
    finally:
        if how == "kill":
            broker.kill()
        else:
            assert broker.stop() == 0
    return broker


def _files(data_dir: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() if p.is_file() else b"(not a file)"
        for p in sorted(data_dir.iterdir())
    }


def _assert_refused(data_dir: Path, message: str) -> None:
    """The CLI and the embedded store refuse ``data_dir``, leaving it as it was."""
    before = _files(data_dir)
    result = subprocess.run(
        [sys.executable, "-m", "kiltmq", "broker", "--port", "0", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("kiltmq broker: ")
    assert message in line, line
    assert _files(data_dir) == before
    with pytest.raises(StoreDamaged, match=message):
        SQLiteStore(data_dir).open()
    assert _files(data_dir) == before


def _count(broker: BrokerProcess) -> int:
    broker.start()
    try:
        with contextlib.closing(blocking(broker.url)) as conn:
            ok = conn.channel().queue_declare(QUEUE, durable=True, passive=True)
            return int(ok.method.message_count)
    finally:
        assert broker.stop() == 0


def _current_frames(wal: bytes) -> tuple[int, int, int]:
    """(offset of the first frame, frame size, number of frames) of the log's current
    generation: the frames carrying the salts of its header (SQLite restarts the log
    after a checkpoint, leaving older frames behind them)."""
    (page_size,) = struct.unpack_from(">I", wal, 8)
    salts = wal[16:24]
    frame = 24 + page_size
    count = 0
    while 32 + (count + 1) * frame <= len(wal):
        at = 32 + count * frame
        if wal[at + 8 : at + 16] != salts:
            break
        count += 1
    return 32, frame, count


def test_a_killed_store_with_64_bytes_of_its_wal_overwritten_is_refused(
    tmp_path: Path,
) -> None:
    broker = _confirmed_store(tmp_path, "kill")
    wal = broker.data_dir / WAL
    first, frame, count = _current_frames(wal.read_bytes())
    while count >= 1000:  # the last commit checkpointed them all: one more, not yet
        broker.start()
        asyncio.run(_publish_confirmed(broker.url, 1))
        broker.kill()
        first, frame, count = _current_frames(wal.read_bytes())
    assert count > 2  # confirmed commits not yet checkpointed into the database
    data = bytearray(wal.read_bytes())
    middle = first + (count // 2) * frame + 24 + 1000  # in the page of a middle frame
    data[middle : middle + 64] = b"\x5a" * 64
    wal.write_bytes(bytes(data))
    _assert_refused(broker.data_dir, "lost committed transactions")


def test_a_killed_store_whose_wal_was_deleted_is_refused(tmp_path: Path) -> None:
    broker = _confirmed_store(tmp_path, "kill")
    (broker.data_dir / WAL).unlink()
    _assert_refused(broker.data_dir, "lost committed transactions")


def test_a_store_with_a_page_of_its_database_overwritten_is_refused(tmp_path: Path) -> None:
    broker = _confirmed_store(tmp_path, "stop")
    assert not (broker.data_dir / WAL).exists()  # everything is in the database now
    path = broker.data_dir / DB_NAME
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 20 * page
    data[10 * page : 10 * page + 64] = b"\x5a" * 64  # a b-tree page's header
    path.write_bytes(bytes(data))
    _assert_refused(broker.data_dir, "cannot be read")


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_store_with_its_watermark_truncated_is_refused(tmp_path: Path, how: str) -> None:
    broker = _confirmed_store(tmp_path, how)
    path = broker.data_dir / WATERMARK_NAME
    path.write_bytes(path.read_bytes()[:100])
    _assert_refused(broker.data_dir, "commit watermark")


def test_a_store_whose_watermark_is_gone_is_refused(tmp_path: Path) -> None:
    broker = _confirmed_store(tmp_path, "kill")
    (broker.data_dir / WATERMARK_NAME).unlink()
    _assert_refused(broker.data_dir, "watermark")


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_an_undamaged_store_starts_with_every_confirmed_message(
    tmp_path: Path, how: str
) -> None:
    broker = _confirmed_store(tmp_path, how)
    assert (broker.data_dir / WATERMARK_NAME).stat().st_mode & 0o777 == 0o600
    assert _count(broker) == COUNT
    assert _count(broker) == COUNT  # and again, after that clean stop


def test_a_database_one_commit_ahead_of_its_watermark_starts(tmp_path: Path) -> None:
    """A kill between SQLite's commit and the watermark's write leaves the watermark one
    commit behind: not a loss."""
    broker = _confirmed_store(tmp_path, "kill")
    path = broker.data_dir / WATERMARK_NAME
    mark = read_mark(path)
    assert mark is not None and mark.seq > 1
    path.unlink()
    behind = Watermark(path, mark.store_id)
    behind.open(mark.seq - 1)
    behind.close()
    assert read_mark(path) == (mark.store_id, mark.seq - 1)
    assert _count(broker) == COUNT
