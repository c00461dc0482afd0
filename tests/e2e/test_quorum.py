"""The store on quorum queues (``--queue-type quorum``), on the embedded broker: every
queue it declares is a quorum queue, and orders from the three sources flow as on
classic queues, each handled once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

import kiltmq
from kiltmq import BasicProperties
from kiltmq.protocol.errors import PreconditionFailed
from kiltstore.bus import Bus
from kiltstore.cli import build_parser, settings_from
from kiltstore.config import Settings, broker_urls, queue_type_for
from kiltstore.demo import Store
from kiltstore.topology import QUEUES, Topology

from .conftest import delete_topology
from .three_sources import check_once, count_smtp_deliveries, place_one_of_each


def test_the_queue_type_follows_the_number_of_brokers() -> None:
    one = "amqp://guest:guest@127.0.0.1:5672/"
    urls = "amqp://u:p@10.0.0.1:5672/,amqp://u:p@10.0.0.2:5672/"
    host_list = "amqp://u:p@10.0.0.1:5672,10.0.0.2:5672,10.0.0.3/"
    assert broker_urls(urls) == ["amqp://u:p@10.0.0.1:5672/", "amqp://u:p@10.0.0.2:5672/"]
    assert broker_urls(host_list) == [host_list]
    assert queue_type_for(one) == "classic"
    assert queue_type_for(urls) == queue_type_for(host_list) == "quorum"
    assert queue_type_for(urls, "classic") == "classic"
    assert queue_type_for(one, "quorum") == "quorum"
    with pytest.raises(ValueError, match="unknown queue type"):
        queue_type_for(one, "stream")
    assert Settings(amqp_url=urls).queues == "quorum"
    args = build_parser().parse_args(["billing", "--amqp-url", one, "--queue-type", "quorum"])
    assert settings_from(args).queues == "quorum"
    demo = build_parser().parse_args(["demo", "--queue-type", "quorum"])
    assert demo.queue_type == "quorum"


def test_quorum_queues_are_declared_as_quorum_queues_must_be() -> None:
    topology = Topology("p", queue_type="quorum")
    for spec in QUEUES:
        arguments = topology.queue_arguments(spec)
        assert arguments["x-queue-type"] == "quorum"
        if "x-dead-letter-exchange" in arguments:
            # Dead letters (retries coming back, poison messages) are kept until the
            # target queue has them.
            assert arguments["x-dead-letter-strategy"] == "at-least-once"
            assert arguments["x-overflow"] == "reject-publish"
    assert "x-queue-type" not in Topology("p").queue_arguments(QUEUES[0])
    with pytest.raises(ValueError):
        Topology("p", queue_type="lazy")


@pytest.fixture
async def quorum_store(
    embedded_broker_url: str, prefix: str, tmp_path: Path
) -> AsyncIterator[Store]:
    try:
        async with Store(
            data_dir=tmp_path / "data",
            amqp_url=embedded_broker_url,
            prefix=prefix,
            poll_interval=0.2,
            queue_type="quorum",
        ) as running:
            yield running
    finally:
        await asyncio.wait_for(delete_topology(embedded_broker_url, Topology(prefix)), 30)


async def test_the_store_runs_on_quorum_queues(
    quorum_store: Store, http: aiohttp.ClientSession, embedded_broker_url: str, prefix: str
) -> None:
    store = quorum_store
    smtp = count_smtp_deliveries(store)
    # Every queue the store declared is a quorum queue: declaring it again as a classic
    # queue is refused.
    topology = Topology(prefix, queue_type="quorum")
    async with kiltmq.connect(embedded_broker_url) as conn:
        for spec in QUEUES:
            arguments = topology.queue_arguments(spec)
            del arguments["x-queue-type"]
            ch = await conn.channel()
            with pytest.raises(PreconditionFailed, match="x-queue-type"):
                await ch.queue_declare(topology.queue(spec.key), durable=True, arguments=arguments)
    crm: list[str] = []
    for _ in range(2):
        crm += await place_one_of_each(http, store)
    await check_once(http, store, web=2, phone=2, crm=crm, smtp=smtp, timeout=30)


async def test_a_nacked_publish_gives_the_bus_a_new_channel(
    embedded_broker_url: str, prefix: str
) -> None:
    """The publish is reported nacked, and the next one goes on a new channel (RabbitMQ
    3.10 may nack every later publish of that channel to the queue)."""
    bus = Bus(embedded_broker_url, Topology(prefix), app_id="test")
    await bus.start()
    try:
        full = f"{prefix}.full"
        ch = await bus._conn.channel()
        await ch.queue_declare(full, durable=True, arguments={
            "x-queue-type": "quorum", "x-max-length": 0, "x-overflow": "reject-publish"})
        # A quorum queue refuses publishes once it went over its limit: the first goes in.
        await bus.publish_properties("", full, b"taken", BasicProperties())
        first = bus._pub
        with pytest.raises(kiltmq.PublishNacked):
            await bus.publish_properties("", full, b"refused", BasicProperties())
        assert first.is_closed
        await ch.queue_purge(full)
        await ch.queue_delete(full)
        await bus.publish_properties("", topology_queue(prefix), b"taken", BasicProperties())
        assert bus._pub is not first and bus._pub.is_open
    finally:
        await bus.close()
        await asyncio.wait_for(delete_topology(embedded_broker_url, Topology(prefix)), 30)


def topology_queue(prefix: str) -> str:
    return Topology(prefix).queue("invalid-messages")
