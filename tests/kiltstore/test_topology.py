"""The topology: declared alike on both brokers, routed as drawn, drawn as declared."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import kiltmq
from kiltmq import BasicProperties
from kiltstore.config import SERVICES
from kiltstore.topology import EXCHANGES, PUBLISHERS, QUEUES, Topology, mermaid

DOC = Path(__file__).resolve().parents[2] / "docs" / "kiltstore.md"


def test_docs_draw_the_declared_topology() -> None:
    text = DOC.read_text()
    match = re.search(r"```mermaid\n(.*?)```\n<!-- topology:end -->", text, re.DOTALL)
    assert match is not None, "docs/kiltstore.md lost its generated topology block"
    assert match.group(1) == mermaid(), "regenerate it with: python -m kiltstore.topology"


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
                "billing": 1,
                "workshop": 1,
                "shipping": 1,
                "mailer": 2,  # approved and finished
                "webstore-status": 1,  # the web order only
                "board": 5,  # every order event and the invalid message
                "invalid-messages": 1,
                "dead-letters": 0,
            }
        finally:
            for queue in QUEUES:
                await ch.queue_delete(topology.queue(queue.key), timeout=10)
            for exchange in EXCHANGES:
                await ch.exchange_delete(topology.exchange(exchange.key), timeout=10)
