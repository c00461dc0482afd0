"""Fixtures for the broker tests: a fresh embedded broker per test, in its own thread."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

import pika
import pytest

from kiltmq.broker import Broker

Connect = Callable[..., pika.BlockingConnection]


@pytest.fixture
def broker() -> Iterator[Broker]:
    """A broker on a free port, running in a daemon thread for the test."""
    with Broker(port=0) as running:
        yield running


@pytest.fixture
async def abroker() -> AsyncIterator[Broker]:
    """A broker on a free port, running on the test's own event loop."""
    async with Broker(port=0) as running:
        yield running


@pytest.fixture
def url(broker: Broker) -> str:
    return broker.url


@pytest.fixture
def connect(url: str) -> Iterator[Connect]:
    """A factory of pika blocking connections to the test's broker, closed afterwards."""
    opened: list[pika.BlockingConnection] = []

    def factory(**params: object) -> pika.BlockingConnection:
        parameters = pika.URLParameters(url)
        parameters.socket_timeout = 10
        parameters.blocked_connection_timeout = 10
        for key, value in params.items():
            setattr(parameters, key, value)
        conn = pika.BlockingConnection(parameters)
        opened.append(conn)
        return conn

    yield factory
    for conn in opened:
        if conn.is_open:
            with contextlib.suppress(Exception):
                conn.close()
