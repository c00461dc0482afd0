"""The topology: declared alike on both brokers, routed as drawn, drawn as declared."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import kiltmq
from kiltmq import BasicProperties
from kiltstore.config import SERVICES
from kiltstore.topology import (
    EXCHANGES,
    PUBLISHERS,
    QUEUES,
    RETRY,
    RETRY_COUNT,
    RETRY_DELAYS,
    RETRY_LEVEL,
    Topology,
    channel_table,
    mermaid,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "kiltstore.md"


def test_docs_draw_the_declared_topology() -> None:
    text = DOC.read_text()
    match = re.search(r"```mermaid\n(.*?)```\n<!-- topology:end -->", text, re.DOTALL)
    assert match is not None, "docs/kiltstore.md lost its generated topology block"
    assert match.group(1) == mermaid(), "regenerate it with: python -m kiltstore.topology"


def test_docs_list_the_declared_channels() -> None:
    """The channel table (bindings included) is generated from the topology."""
    text = DOC.read_text()
    match = re.search(r"<!-- channels:start[^\n]*-->\n(.*?)<!-- channels:end -->", text,
                      re.DOTALL)
    assert match is not None, "docs/kiltstore.md lost its generated channel table"
    assert match.group(1) == channel_table(), (
        "regenerate it with: python -m kiltstore.topology table")
    table = match.group(1)
    assert "`orders`:`order.cancelled.*`" in table.split("`billing` queue", 1)[1].split("\n")[0]
    mailer = table.split("`mailer` queue", 1)[1].split("\n")[0]
    assert "`orders`:`order.cancelled.*`" in mailer and "`orders`:`order.refunded.*`" in mailer


def test_every_name_refers_to_something_declared() -> None:
    exchanges = {e.key for e in EXCHANGES}
    for queue in QUEUES:
        assert {exchange for exchange, _ in queue.bindings} <= exchanges
        assert queue.consumer == "" or queue.consumer in SERVICES
    for publisher in PUBLISHERS:
        assert publisher.exchange in exchanges
        assert publisher.service in SERVICES
    topology = Topology("p")
    assert topology.queue("billing") == "p.billing"
    assert topology.queue_arguments(QUEUES[0]) == {"x-dead-letter-exchange": "p.dead-letters"}


async def test_routing_on_a_real_broker(amqp_url: str) -> None:
    """Declared twice (every service declares at start), then one message per routing
    key lands in exactly the queues the diagram says."""
    topology = Topology(f"kiltstore-test-{uuid.uuid4().hex[:10]}")
    async with kiltmq.connect(amqp_url) as conn:
        ch = await conn.channel()
        try:
            await asyncio.wait_for(topology.declare(ch), 30)
            await asyncio.wait_for(topology.declare(ch), 30)
            await ch.confirm_select()
            for exchange_key, key in [
                ("intake", "crm"),
                ("orders", "order.received.phone"),
                ("orders", "order.valid.crm"),
                ("orders", "order.approved.web"),
                ("orders", "order.finished.crm"),
                ("orders", "order.cancelled.web"),
                ("commands", "cancel"),
                ("history", ""),
                ("invalid-messages", ""),
            ]:
                await ch.basic_publish(
                    b"x", exchange=topology.exchange(exchange_key), routing_key=key,
                    properties=BasicProperties(delivery_mode=2),
                )
            counts = {}
            for queue in QUEUES:
                ok = await ch.queue_declare(topology.queue(queue.key), passive=True)
                counts[queue.key] = ok.message_count
            assert counts == {
                "normalizer": 1,
                "validator": 1,
                "billing": 2,  # valid, and cancelled (to refund)
                "workshop": 1,
                "shipping": 1,
                "mailer": 3,  # approved, finished and cancelled
                "webstore-status": 2,  # the web orders only
                "board": 6,  # every order event and the invalid message
                "invalid-messages": 1,
                "dead-letters": 0,
                **{f"retry-{level}": 0 for level in range(1, len(RETRY_DELAYS) + 1)},
                "phone-replies": 0,
                "crm-replies": 0,
                "cancellations": 1,  # the cancel command
                "history": 1,  # the Message History record
            }
        finally:
            for queue in QUEUES:
                await ch.queue_delete(topology.queue(queue.key), timeout=10)
            for exchange in EXCHANGES:
                await ch.exchange_delete(topology.exchange(exchange.key), timeout=10)


async def test_a_retried_message_waits_in_its_delay_queue_then_returns(amqp_url: str) -> None:
    """The back-off path on a real broker: a message published to ``retry`` with a
    retry level and a per-message TTL waits in that level's delay queue, which
    dead-letters it back to the work queue named by its routing key."""
    topology = Topology(f"kiltstore-test-{uuid.uuid4().hex[:10]}")
    async with kiltmq.connect(amqp_url) as conn:
        ch = await conn.channel()
        try:
            await asyncio.wait_for(topology.declare(ch), 30)
            await ch.confirm_select()
            for level in (1, 2):
                await ch.basic_publish(
                    f"level {level}".encode(), exchange=topology.exchange(RETRY),
                    routing_key=topology.queue("billing"),
                    properties=BasicProperties(
                        delivery_mode=2, expiration="1" if level == 1 else "3600000",
                        headers={RETRY_LEVEL: str(level), RETRY_COUNT: level},
                    ),
                )

            async def back_in_billing() -> Any:
                return await ch.basic_get(topology.queue("billing"))

            message = None
            for _ in range(400):
                message = await back_in_billing()
                if message is not None:
                    break
                await asyncio.sleep(0.05)
            assert message is not None, "the level-1 message never came back"
            assert message.body == b"level 1"
            assert message.headers[RETRY_COUNT] == 1
            assert message.headers["x-death"][0]["reason"] == "expired"
            await message.ack()
            waiting = await ch.queue_declare(topology.queue("retry-2"), passive=True)
            assert waiting.message_count == 1  # still waiting out its longer delay
            assert await ch.basic_get(topology.queue("retry-1")) is None
        finally:
            for queue in QUEUES:
                await ch.queue_delete(topology.queue(queue.key), timeout=10)
            for exchange in EXCHANGES:
                await ch.exchange_delete(topology.exchange(exchange.key), timeout=10)
