"""Resource alarms: the disk alarm (RabbitMQ's ``disk_free_limit``) blocks publishers
while the data directory's filesystem has less free space than the limit; alarms of
several resources at once; a blocked connection and heartbeats; the limits on the
command line and in configuration files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.broker.alarm import blocked_reason
from kiltmq.broker.config import ConfigError, parse_config
from kiltmq.broker.disk import DEFAULT_DISK_FREE_LIMIT, disk_free
from kiltmq.protocol import spec

pytestmark = pytest.mark.timeout(60)

CAPABILITIES = {"connection.blocked": True}


async def _blocked_publisher(broker: Broker) -> RawClient:
    """A connection that publishes once, and the connection.blocked it gets for that."""
    client = await RawClient.connect(broker.port, capabilities=CAPABILITIES)
    await client.open_channel(1)
    client.publish(1, "", "nowhere", b"blocks the connection")
    return client


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


async def test_less_free_space_than_the_limit_blocks_publishers(tmp_path: Path) -> None:
    free = disk_free(tmp_path)
    broker = Broker(
        port=0, data_dir=tmp_path / "data", disk_free_limit=free * 2, memory_check_interval=0.02
    )
    async with broker:
        assert broker.alarms == {"disk"}  # checked at start
        reader = await RawClient.connect(broker.port, capabilities=CAPABILITIES)
        publisher = await _blocked_publisher(broker)
        assert await publisher.method(0) == spec.ConnectionBlocked("low on disk")
        await reader.open_channel(1)  # a connection that does not publish goes on
        ok = await reader.request(1, spec.QueueDeclare("q"), spec.QueueDeclareOk)
        assert ok.queue == "q"
        broker.disk_free_limit = 1
        assert await publisher.method(0) == spec.ConnectionUnblocked()
        assert broker.alarms == frozenset()
        assert not reader.events
        await reader.close()
        await publisher.close()


@contextlib.contextmanager
def _tmpfs(path: Path, size: int) -> Iterator[Path]:
    path.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


async def test_the_alarm_follows_the_free_space(tmp_path: Path) -> None:
    """On a small filesystem of its own: filling it raises the alarm, freeing the space
    clears it."""
    with _tmpfs(tmp_path / "fs", 8 * 1024 * 1024) as fs:
        broker = Broker(
            port=0, data_dir=fs / "data", disk_free_limit="3MiB", memory_check_interval=0.02
        )
        async with broker:
            assert broker.alarms == frozenset()
            publisher = await _blocked_publisher(broker)  # no alarm: not blocked
            filler = fs / "filler"
            filler.write_bytes(b"\0" * (6 * 1024 * 1024))
            await _until(lambda: broker.alarms == {"disk"})
            publisher.publish(1, "", "nowhere", b"now blocked")
            assert await publisher.method(0) == spec.ConnectionBlocked("low on disk")
            filler.unlink()
            assert await publisher.method(0) == spec.ConnectionUnblocked()
            await publisher.close()


async def test_alarms_of_two_resources(tmp_path: Path) -> None:
    broker = Broker(port=0, data_dir=tmp_path / "data", disk_free_limit=None)
    async with broker:
        broker.set_alarm("memory", True)
        broker.set_alarm("disk", True)
        assert broker.alarms == {"memory", "disk"} and broker.alarm
        publisher = await _blocked_publisher(broker)
        assert await publisher.method(0) == spec.ConnectionBlocked("low on memory & disk")
        broker.set_alarm("memory", False)
        await asyncio.sleep(0.1)  # one alarm is left: still blocked
        assert not publisher.events
        broker.set_alarm(False)  # the memory alarm, in the older form: already clear
        broker.set_alarm("disk", False)
        assert await publisher.method(0) == spec.ConnectionUnblocked()
        # the store raises its own alarm when it cannot write: clients see a disk alarm
        broker.set_alarm("store", True)
        assert broker.alarms == {"store"}
        publisher.publish(1, "", "nowhere", b"blocked again")
        assert await publisher.method(0) == spec.ConnectionBlocked("low on disk")
        broker.set_alarm("store", False)
        assert await publisher.method(0) == spec.ConnectionUnblocked()
        await publisher.close()


def test_reason_texts() -> None:
    assert blocked_reason(()) == ""
    assert blocked_reason({"memory"}) == "low on memory"
    assert blocked_reason({"disk"}) == "low on disk"
    assert blocked_reason({"disk", "memory"}) == "low on memory & disk"


async def test_a_memory_only_broker_has_no_disk_alarm() -> None:
    async with Broker(port=0, disk_free_limit=10**18, memory_check_interval=0.02) as broker:
        await asyncio.sleep(0.1)
        assert broker.alarms == frozenset()
        assert broker.disk_free_limit == 10**18 and broker.disk_path() is None


def test_defaults_and_configuration() -> None:
    assert Broker().disk_free_limit == DEFAULT_DISK_FREE_LIMIT == 50_000_000
    assert Broker(disk_free_limit="1GB").disk_free_limit == 10**9
    assert Broker(disk_free_limit=0).disk_free_limit is None
    kwargs = parse_config({"disk_free_limit": "2GiB", "memory_limit": "0.25"})
    assert kwargs["disk_free_limit"] == 2 * 2**30
    assert 0 < kwargs["memory_limit"] == Broker(memory_limit=0.25).memory_limit
    for bad in ({"disk_free_limit": "much"}, {"memory_limit": [1]}, {"memory_limit": 2.0}):
        with pytest.raises(ConfigError):
            parse_config(bad)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--disk-free-limit", "plenty", "kiltmq broker: --disk-free-limit: invalid size"),
        ("--memory-limit", "1.5", "kiltmq broker: --memory-limit: invalid memory limit"),
    ],
)
def test_bad_limits_on_the_command_line(option: str, value: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kiltmq", "broker", "--memory-only", "--port", "0", option, value],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr


async def test_a_blocked_connection_is_not_dropped_for_missed_heartbeats() -> None:
    """As RabbitMQ, which pauses its heartbeat monitor while a connection is blocked:
    the broker does not read it then, heartbeats included."""
    async with Broker(port=0, heartbeat=1) as broker:
        broker.set_alarm("memory", True)
        client = await RawClient.connect(
            broker.port, capabilities=CAPABILITIES, heartbeat=None  # the broker's 1 s
        )
        await client.open_channel(1)
        client.publish(1, "", "nowhere", b"blocks the connection")
        assert await client.method(0) == spec.ConnectionBlocked("low on memory")
        await asyncio.sleep(3.5)  # past two heartbeat intervals, and nothing sent
        assert broker.connections and not client.closed
        broker.set_alarm("memory", False)
        assert await client.method(0) == spec.ConnectionUnblocked()
        await client.close()
