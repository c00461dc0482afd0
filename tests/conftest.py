"""Shared fixtures for the whole test suite."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

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
