"""Fixtures for the client tests: a connection and a channel to the broker chosen by the
parametrized ``amqp_url`` (tests/conftest.py), and unique names for test entities."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

import kiltmq
from kiltmq.client import Channel, Connection


@pytest.fixture
def unique() -> Callable[[str], str]:
    """``unique("q")`` -> a name no other test uses ("test.q.1a2b3c4d")."""
    run = uuid.uuid4().hex[:8]
    return lambda what: f"test.{what}.{run}"


@pytest.fixture
async def conn(amqp_url: str) -> AsyncIterator[Connection]:
    connection = await kiltmq.connect(amqp_url, rpc_timeout=10, connection_timeout=10)
    try:
        yield connection
    finally:
        await connection.close(timeout=5)


@pytest.fixture
async def ch(conn: Connection) -> Channel:
    return await conn.channel()
