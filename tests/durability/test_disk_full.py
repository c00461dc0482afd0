"""A store that cannot write blocks publishers and nacks what it cannot make durable.

The data directory is on a small tmpfs (mounted for the test; skipped where mounting is
not permitted). Once the file system is full, a persistent message's confirm is a
basic.nack (not a confirm that never comes), publishers get connection.blocked, and
nothing is promised that is not on disk; with room again, the broker writes, unblocks
publishers (connection.unblocked) and confirms again. Every message acked before, during
or after is there after a restart.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest

from kiltmq.broker import Broker

pytestmark = pytest.mark.timeout(120)

QUEUE = "full"
PERSISTENT = pika.BasicProperties(delivery_mode=2)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of its own, unmounted at the end."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root'})")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as filler:
        with contextlib.suppress(OSError):
            while True:
                filler.write(chunk)
        with contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 512)
        with contextlib.suppress(OSError):
            os.fsync(filler.fileno())


class Watcher:
    """A pika connection that records connection.blocked / unblocked."""

    def __init__(self, url: str) -> None:
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.blocked: list[str] = []
        self.unblocked = 0
        self.conn.add_on_connection_blocked_callback(
            lambda _c, frame: self.blocked.append(frame.method.reason)
        )
        self.conn.add_on_connection_unblocked_callback(self._on_unblocked)
        self.channel = self.conn.channel()
        self.channel.confirm_delivery()

    def _on_unblocked(self, _conn: object, _frame: object) -> None:
        self.unblocked += 1

    def publish(self, body: bytes) -> bool:
        """True if acked, False if nacked."""
        try:
            self.channel.basic_publish("", QUEUE, body, PERSISTENT)
        except pika.exceptions.NackError:
            return False
        return True

    def wait(self, done: object, what: str) -> None:
        deadline = time.monotonic() + 30
        while not done():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"no {what}"
            self.conn.process_data_events(time_limit=0.1)


def test_a_full_disk_nacks_blocks_and_recovers(small_fs: Path) -> None:
    data_dir = small_fs / "data"
    # no free-space alarm: the small filesystem is below its limit from the start, and
    # this is about the store failing to write
    broker = Broker(port=0, data_dir=data_dir, disk_free_limit=None)
    broker.start_in_thread()
    acked: list[bytes] = []
    try:
        watcher = Watcher(broker.url)
        watcher.channel.queue_declare(QUEUE, durable=True)
        for i in range(5):
            body = b"before-%d-" % i + b"x" * 1000
            assert watcher.publish(body)
            acked.append(body)
        _fill(small_fs / "filler")
        # big enough that the write-ahead log must grow: it cannot
        big = b"during-" + uuid.uuid4().bytes * 8192
        assert not watcher.publish(big), "a message that cannot be written was confirmed"
        # as RabbitMQ, a connection is blocked when it next publishes during the alarm
        watcher.conn.channel().basic_publish("", "nowhere", b"while blocked")
        watcher.wait(lambda: watcher.blocked, "connection.blocked")
        assert watcher.blocked == ["low on disk"]
        assert broker.call_in_loop(lambda: broker.alarm)
        (small_fs / "filler").unlink()
        watcher.wait(lambda: watcher.unblocked, "connection.unblocked")
        for i in range(5):
            body = b"after-%d-" % i + b"y" * 1000
            assert watcher.publish(body)
            acked.append(body)
        watcher.conn.close()
    finally:
        broker.stop_thread()
    broker = Broker(port=0, data_dir=data_dir)
    broker.start_in_thread()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        channel = conn.channel()
        bodies = []
        while True:
            method, _props, body = channel.basic_get(QUEUE, auto_ack=True)
            if method is None:
                break
            bodies.append(body)
        conn.close()
    finally:
        broker.stop_thread()
    # every acked message is there; the nacked one may be too (written once there was
    # room again), as RabbitMQ may deliver a nacked message
    assert [b for b in bodies if b != big] == acked
