"""Fixtures of the management API tests: an embedded kiltmq broker serving the API, and
RabbitMQ's management API (``rabbitmq`` marker) to compare with. Timings a test records
with ``record_property("timing", text)`` are listed in the terminal summary, passed or
not."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from _pytest.terminal import TerminalReporter
from tests.e2e.test_browser import browser  # noqa: F401  (chromium, shared with the store's pages)

from kiltmq.broker import Broker
from kiltmq.management.context import CONTEXT
from kiltmq.management.stats import Sampler

from .api import Api, q

RABBITMQ_MANAGEMENT_PORT = 15672


@pytest.fixture
def sampler(kilt_broker: Broker) -> Iterator[Sampler]:
    """The management API's sampler with its periodic samples stopped for the test: the
    test samples when it says (``kilt_broker.call_in_loop(sampler.sample)``), so that its
    own samples are the last two a rate is made of; started again afterwards."""
    from kiltmq.management.app import ManagementServer

    server = kilt_broker._services["management"]
    assert isinstance(server, ManagementServer)
    found = server.app[CONTEXT].sampler
    kilt_broker.call_in_loop(found.stop)
    try:
        yield found
    finally:
        kilt_broker.call_in_loop(lambda: found.start(asyncio.get_running_loop()))


@pytest.fixture(scope="module")
def kilt_broker() -> Iterator[Broker]:
    with Broker(port=0, management_port=0) as broker:
        yield broker


@pytest.fixture
def kilt(kilt_broker: Broker) -> Api:
    assert kilt_broker.management_url is not None
    return Api(kilt_broker.management_url)


@pytest.fixture(scope="session")
def rabbit_base(rabbitmq_url: str) -> str:
    """RabbitMQ's management API (on the host of ``KILTMQ_RABBITMQ_URL``, port 15672)."""
    host = urlsplit(rabbitmq_url).hostname or "127.0.0.1"
    try:
        socket.create_connection((host, RABBITMQ_MANAGEMENT_PORT), timeout=5).close()
    except OSError as exc:
        reason = f"RabbitMQ's management API is not reachable ({exc}); run scripts/rabbitmq.sh"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return f"http://{host}:{RABBITMQ_MANAGEMENT_PORT}"


@pytest.fixture
def rabbit(rabbit_base: str) -> Api:
    return Api(rabbit_base)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def vhost(kilt: Api) -> Iterator[str]:
    """A vhost of the test's own on the embedded broker (deleted after)."""
    name = unique("mgmt")
    assert kilt.put(f"/api/vhosts/{q(name)}").status == 201
    yield name
    kilt.delete(f"/api/vhosts/{q(name)}")


#: The ``record_property`` name whose values the terminal summary lists.
TIMING = "timing"


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    lines = [
        f"{report.nodeid}: {value}"
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == TIMING
    ]
    if lines:
        terminalreporter.write_sep("-", "management UI timings")
        for line in lines:
            terminalreporter.write_line(line)
