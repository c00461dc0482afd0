"""Helpers for the durability tests: brokers that can be restarted, and broker processes
that can be killed."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pika
import pytest

from kiltmq.broker import Broker


class Restartable(Protocol):
    """A broker a test can restart: ``url`` changes with each start for kiltmq."""

    name: str

    @property
    def url(self) -> str: ...

    def restart(self) -> None: ...


class EmbeddedTarget:
    """kiltmq: ``Broker(data_dir=...)`` in a thread; a restart is a new Broker object on
    the same directory (nothing carried over in memory)."""

    name = "kiltmq"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.broker = Broker(port=0, data_dir=data_dir)
        self.broker.start_in_thread()

    @property
    def url(self) -> str:
        return self.broker.url

    def restart(self) -> None:
        self.broker.stop_thread()
        self.broker = Broker(port=0, data_dir=self.data_dir)
        self.broker.start_in_thread()

    def close(self) -> None:
        self.broker.stop_thread()


class RabbitTarget:
    """The local RabbitMQ, restarted with ``rabbitmqctl stop_app && start_app``."""

    name = "rabbitmq"

    def __init__(self, url: str) -> None:
        self.url = url

    def restart(self) -> None:
        for action in ("stop_app", "start_app"):
            subprocess.run(
                ["rabbitmqctl", action], check=True, capture_output=True, timeout=120
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                pika.BlockingConnection(pika.URLParameters(self.url)).close()
                return
            except pika.exceptions.AMQPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


RESTART_RABBITMQ = "KILTMQ_RABBITMQ_RESTART"


@pytest.fixture(params=["kiltmq", "rabbitmq"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Restartable]:
    """Each durability check runs against kiltmq and, when ``KILTMQ_RABBITMQ_RESTART=1``,
    against the local RabbitMQ (restarting it disturbs everything else using it, so it is
    opt-in; under CI, which owns its RabbitMQ, leaving it out is an error)."""
    if request.param == "rabbitmq":
        if os.environ.get(RESTART_RABBITMQ) != "1":
            reason = f"restarts the shared RabbitMQ: set {RESTART_RABBITMQ}=1 to run"
            if os.environ.get("CI"):
                pytest.fail(f"CI requires the RabbitMQ restart checks: {reason}", pytrace=False)
            pytest.skip(reason)
        url = request.getfixturevalue("rabbitmq_url")
        yield RabbitTarget(url)
        return
    embedded = EmbeddedTarget(tmp_path / "data")
    try:
        yield embedded
    finally:
        embedded.close()


def blocking(url: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.socket_timeout = 10
    params.blocked_connection_timeout = 10
    return pika.BlockingConnection(params)


# -- broker processes -----------------------------------------------------------------------


class BrokerProcess:
    """``python -m kiltmq broker --port 0 --data-dir DIR`` as a child process."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.log = data_dir.parent / "broker.log"
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self, timeout: float = 30) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kiltmq", "broker", "--port", "0",
             "--data-dir", str(self.data_dir), *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.proc = proc
        assert proc.stderr is not None
        deadline = time.monotonic() + timeout
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"ready on \S+:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                # keep draining stderr so the broker never blocks on a full pipe
                self._drain(proc)
                return
        proc.kill()
        proc.wait()
        raise AssertionError(f"the broker did not start: {''.join(lines)}")

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        import threading

        def copy() -> None:
            assert proc.stderr is not None
            with open(self.log, "a", encoding="utf-8") as log:
                for line in proc.stderr:
                    log.write(line)

        threading.Thread(target=copy, daemon=True).start()

    def kill(self) -> None:
        """SIGKILL: no chance to flush or close anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit; returns the exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.kill()


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "data")
    try:
        yield process
    finally:
        process.close()
