"""The kilt store on the 3-node RabbitMQ cluster, on quorum queues (the default with
several broker URLs): orders from the web store, the phone and the CRM flow while one
node is killed (kill -9) and started again; none is lost, none charged twice, no e-mail
sent twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

import kiltmq
from kiltstore.demo import Store
from kiltstore.topology import Topology

from ..e2e.conftest import delete_topology
from ..e2e.three_sources import check_once, count_smtp_deliveries, place_one_of_each
from .conftest import RabbitMQCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

TIMEOUT = 180
ROUNDS = 3  # rounds of one order per source: before the kill, while down, after restart


@pytest.fixture
async def cluster_store(
    rabbitmq_cluster: RabbitMQCluster, tmp_path: Path
) -> AsyncIterator[Store]:
    prefix = f"kiltstore-test-{uuid.uuid4().hex[:10]}"
    urls = ",".join(rabbitmq_cluster.urls)
    try:
        async with Store(
            data_dir=tmp_path / "data", amqp_url=urls, prefix=prefix, poll_interval=0.2
        ) as running:
            yield running
    finally:
        await asyncio.wait_for(
            delete_topology(rabbitmq_cluster.urls, Topology(prefix)), TIMEOUT
        )


async def test_orders_flow_while_a_node_is_killed_and_restarted(
    rabbitmq_cluster: RabbitMQCluster, cluster_store: Store
) -> None:
    cluster, store = rabbitmq_cluster, cluster_store
    assert store.service("billing").topology.queue_type == "quorum"
    # Every service has its own connection, to a node picked at random; kill the node
    # that holds the most of them.
    ports = [
        service.bus._conn.parameters.port
        for service in store.services.values()
        if service.bus is not None
    ]
    victim = cluster.node_of(max(set(ports), key=ports.count))
    smtp = count_smtp_deliveries(store)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    crm: list[str] = []
    async with aiohttp.ClientSession(timeout=timeout) as http:
        crm += await place_one_of_each(http, store)
        await cluster.kill(victim)
        # Orders keep coming while the node is down; the store's services move to the
        # other nodes and its quorum queues elect new leaders.
        crm += await place_one_of_each(http, store)
        await cluster.restart(victim)
        crm += await place_one_of_each(http, store)
        await check_once(
            http, store, web=ROUNDS, phone=ROUNDS, crm=crm, smtp=smtp, timeout=TIMEOUT
        )
    moved = [
        service.name
        for service in store.services.values()
        if service.bus is not None and service.bus._conn.recoveries
    ]
    assert moved, "no service was connected to the killed node"
    await cluster.wait_clustered(TIMEOUT)
    # The restarted node serves the store's queues again.
    async with kiltmq.connect(cluster.urls[victim - 1]) as conn:
        ch = await conn.channel()
        ok = await ch.queue_declare(store.service("billing").topology.queue("billing"),
                                    passive=True)
        assert ok.message_count == 0
