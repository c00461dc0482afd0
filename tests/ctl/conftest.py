"""Helpers for the ``kiltmq ctl`` tests: a broker process with a data directory, and
``kiltmq ctl`` run as a process against its control socket."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from tests.durability.conftest import BrokerProcess


class Ctl:
    """``python -m kiltmq ctl --socket <the broker's socket> ...`` as a process."""

    def __init__(self, broker: BrokerProcess) -> None:
        self.broker = broker

    @property
    def socket(self) -> Path:
        return self.broker.data_dir / "ctl.sock"

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kiltmq", "ctl", "--socket", str(self.socket), *args],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=30,
            check=False,
        )

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        """Run a command that must succeed; its standard output."""
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self("--json", *args))

    def error(self, *args: str, status: int = 1) -> str:
        """Run a command that must fail with ``status``; its one error line."""
        result = self.run(*args)
        assert result.returncode == status, (result.stdout, result.stderr)
        assert result.stdout == ""
        (line,) = result.stderr.splitlines()
        return line


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker process for a test module (tests use names of their own)."""
    process = BrokerProcess(tmp_path_factory.mktemp("ctl") / "data")
    process.start()
    try:
        yield process
    finally:
        process.close()


@pytest.fixture(scope="module")
def ctl(broker: BrokerProcess) -> Ctl:
    return Ctl(broker)


def connect(
    port: int, user: str = "guest", password: str = "guest", vhost: str = "/",
    name: str | None = None,
) -> pika.BlockingConnection:
    params = pika.ConnectionParameters(
        "127.0.0.1",
        port,
        vhost,
        pika.PlainCredentials(user, password),
        socket_timeout=10,
        blocked_connection_timeout=10,
        connection_attempts=1,
        client_properties={"connection_name": name} if name else None,
    )
    return pika.BlockingConnection(params)


def wait_closed_by_broker(
    conn: pika.BlockingConnection, timeout: float = 10
) -> pika.exceptions.ConnectionClosedByBroker:
    """Process events until the broker closes ``conn``; the close it sent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn.process_data_events(time_limit=0.05)
        except pika.exceptions.ConnectionClosedByBroker as closed:
            return closed
    with contextlib.suppress(Exception):
        conn.close()
    raise AssertionError(f"the broker did not close the connection within {timeout} s")
