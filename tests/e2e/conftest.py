"""Fixtures for the kilt store's end-to-end tests.

``store`` runs every service of the store in the test's event loop, on the broker
chosen by the parametrized ``amqp_url`` fixture (RabbitMQ and kiltmq's embedded
broker, tests/conftest.py), under a name prefix no other run uses, and deletes the
run's exchanges and queues afterwards so runs on a shared RabbitMQ don't pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

import kiltmq
from kiltstore.demo import Store
from kiltstore.topology import Topology

T = TypeVar("T")

#: Upper bound for anything a test waits for (the store takes milliseconds).
WAIT = 20.0


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = WAIT
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def delete_topology(amqp_url: str | list[str], topology: Topology) -> None:
    async with kiltmq.connect(amqp_url) as conn:
        ch = await conn.channel()
        for queue in topology.queues:
            await ch.queue_delete(topology.queue(queue.key), timeout=10)
        for exchange in topology.exchanges:
            await ch.exchange_delete(topology.exchange(exchange.key), timeout=10)


@pytest.fixture
def prefix() -> str:
    return f"kiltstore-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def cleanup(amqp_url: str, prefix: str) -> AsyncIterator[None]:
    yield
    await asyncio.wait_for(delete_topology(amqp_url, Topology(prefix)), 30)


@pytest.fixture
async def store(
    amqp_url: str, prefix: str, tmp_path: Path, cleanup: None
) -> AsyncIterator[Store]:
    async with Store(
        data_dir=tmp_path / "data", amqp_url=amqp_url, prefix=prefix, poll_interval=0.2
    ) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session:
        yield session


class Observer:
    """A queue of the test's own, bound to the store's ``orders`` exchange: sees the
    canonical events as every subscriber does."""

    def __init__(self, conn: Any, queue: str) -> None:
        self.conn = conn
        self.queue = queue
        self.seen: list[Any] = []

    async def take(self, count: int, timeout: float = WAIT) -> list[Any]:
        """The first ``count`` messages (acked), waiting for them at most ``timeout``."""
        ch = await self.conn.channel()

        async def collect() -> None:
            async for message in ch.consume(self.queue):
                self.seen.append(message)
                await message.ack()
                if len(self.seen) >= count:
                    return

        await asyncio.wait_for(collect(), timeout)
        with contextlib.suppress(Exception):
            await ch.close()
        return self.seen[:count]


@pytest.fixture
async def observe(
    amqp_url: str, store: Store
) -> AsyncIterator[Callable[[str, str], Awaitable[Observer]]]:
    """``await observe("orders", "order.received.*")``: a bound queue of the test's."""
    conn = await kiltmq.connect(amqp_url)

    async def make(exchange_key: str, routing_key: str) -> Observer:
        ch = await conn.channel()
        ok = await ch.queue_declare("", exclusive=True)
        await ch.queue_bind(ok.queue, store.service("board").topology.exchange(exchange_key),
                            routing_key)
        return Observer(conn, ok.queue)

    try:
        yield make
    finally:
        await asyncio.wait_for(conn.close(), 10)


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def post_form(http: aiohttp.ClientSession, url: str, form: dict[str, str]) -> str:
    """POST a form like a browser; return where it redirected."""
    async with http.post(url, data=form, allow_redirects=False) as response:
        assert response.status == 303, await response.text()
        return str(response.headers["Location"])


def status_path(store: Store, number: int) -> str:
    """The secret address of web order ``number``'s status page (as the customer got it)."""
    row = store.service("webstore").db.query_one(
        "SELECT token FROM orders WHERE number = ?", (number,)
    )
    assert row is not None, f"no web order {number}"
    return f"/orders/{row['token']}"


def run_in_thread(function: Callable[..., T], *args: Any) -> Awaitable[T]:
    return asyncio.wait_for(asyncio.to_thread(function, *args), WAIT)
