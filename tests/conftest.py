"""Shared fixtures for the whole test suite."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from kiltmq.broker import Broker

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    default_port = 5671 if parts.scheme == "amqps" else 5672
    return parts.hostname or "127.0.0.1", parts.port or default_port


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """URL of a running RabbitMQ, from ``KILTMQ_RABBITMQ_URL``.

    The port must accept TCP connections. If it doesn't, the test is skipped, or
    fails when ``CI`` is set, since CI is expected to start RabbitMQ itself.
    """
    url = os.environ.get("KILTMQ_RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    host, port = _host_port(url)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        reason = (
            f"RabbitMQ is not reachable at {host}:{port} ({exc}); "
            "start one with `make rabbitmq` or set KILTMQ_RABBITMQ_URL"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI requires RabbitMQ: {reason}", pytrace=False)
        pytest.skip(reason)
    return url


# -- brokers for the client and CLI tests --------------------------------------------------

#: Every client and CLI test runs against each of these (``broker_kind`` fixture).
BROKER_KINDS = ("rabbitmq", "kiltmq")


@pytest.fixture(scope="session")
def embedded_broker() -> Iterator[Broker]:
    """An embedded kiltmq broker (``Broker(port=0)`` in a thread) for the session."""
    with Broker(port=0) as broker:
        yield broker


@pytest.fixture(scope="session")
def embedded_broker_url(embedded_broker: Broker) -> str:
    """URL of the session's embedded kiltmq broker."""
    return str(embedded_broker.url)


@pytest.fixture(scope="session")
def kiltmq_url(embedded_broker_url: str) -> str:
    """The session's embedded kiltmq broker, under the name the compatibility and interop
    suites compare against ``rabbitmq_url``."""
    return embedded_broker_url


@pytest.fixture(params=BROKER_KINDS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Which broker a test runs against: "rabbitmq" or "kiltmq" (the embedded one)."""
    return str(request.param)


@pytest.fixture
def amqp_url(request: pytest.FixtureRequest, broker_kind: str) -> str:
    """The URL of the broker chosen by ``broker_kind``."""
    if broker_kind == "rabbitmq":
        return str(request.getfixturevalue("rabbitmq_url"))
    return str(request.getfixturevalue("embedded_broker_url"))
