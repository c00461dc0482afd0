"""Fixtures for the interop suite: third-party clients against kiltmq and RabbitMQ.

Every test runs against both brokers (``broker_url`` is parametrized); RabbitMQ is the
control that shows the test itself is right.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest


@pytest.fixture(
    params=[pytest.param("rabbitmq", marks=pytest.mark.rabbitmq), pytest.param("kiltmq")]
)
def broker_url(request: pytest.FixtureRequest) -> str:
    """The URL of the broker under test: RabbitMQ (the control) or kiltmq."""
    return str(request.getfixturevalue(f"{request.param}_url"))


class Names:
    """Unique queue and exchange names for one test, deleted afterwards."""

    def __init__(self) -> None:
        self.prefix = f"interop-{uuid.uuid4().hex[:10]}."
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def q(self, name: str) -> str:
        full = self.prefix + name
        self.queues.append(full)
        return full

    def x(self, name: str) -> str:
        full = self.prefix + name
        self.exchanges.append(full)
        return full


@pytest.fixture
def names(broker_url: str) -> Iterator[Names]:
    n = Names()
    yield n
    if not (n.queues or n.exchanges):
        return
    params = pika.URLParameters(broker_url)
    params.socket_timeout = 5
    params.blocked_connection_timeout = 5
    params.stack_timeout = 10
    with contextlib.suppress(pika.exceptions.AMQPError):
        conn = pika.BlockingConnection(params)
        try:
            # One channel each: a queue still held exclusively by a test connection (closed
            # after this fixture) refuses deletion with 405 and goes when its owner does.
            for q in n.queues:
                with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):
                    conn.channel().queue_delete(q)
            for x in n.exchanges:
                with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):
                    conn.channel().exchange_delete(x)
        finally:
            conn.close()
