"""Assertions that read like the domain: assert_published, wait_for_consumers and the
topology compared with definitions as RabbitMQ exports them."""

from __future__ import annotations

import json

import aio_pika
import pika
import pytest
from kombu.connection import Connection as KombuConnection

import kiltmq
from kiltmq.testing import BrokerFixture, Topology

TIMEOUT = 5.0


def test_assert_published_by_pika(amqp_broker: BrokerFixture) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    try:
        channel = conn.channel()
        channel.exchange_declare("shop", "topic")
        channel.queue_declare("orders")
        channel.queue_bind("orders", "shop", "order.*")
        channel.basic_publish(
            "shop", "order.new", json.dumps({"kilts": 2}),
            pika.BasicProperties(headers={"source": "web", "attempt": 1}),
        )
        channel.basic_publish("shop", "audit.new", b"unrouted")
    finally:
        conn.close()
    (order,) = amqp_broker.assert_published(
        exchange="shop", routing_key="order.new", body={"kilts": 2}, headers={"source": "web"}
    )
    assert order.queues == ("orders",)
    (audit,) = amqp_broker.assert_published(routing_key="audit.new", body=b"unrouted")
    assert audit.queues == ()
    with pytest.raises(AssertionError) as missing:
        amqp_broker.assert_published(exchange="shop", body="never", timeout=0.2)
    assert "expected 1 published message(s) with exchange='shop', body='never'; " \
        "2 published:" in str(missing.value)
    assert "routing_key='order.new'" in str(missing.value)


async def test_assert_published_async_and_wait_for_consumers_aio_pika(
    amqp_broker: BrokerFixture,
) -> None:
    connection = await aio_pika.connect(amqp_broker.url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("events")

        async def ack(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()

        await queue.consume(ack)
        await queue.consume(ack)
        info = await amqp_broker.wait_for_consumers_async("events", 2)
        assert info.consumer_count == 2
        await channel.default_exchange.publish(aio_pika.Message(b"e1"), "events")
        await amqp_broker.assert_published_async(routing_key="events", body="e1")


def test_wait_for_consumers_kombu(amqp_broker: BrokerFixture) -> None:
    with KombuConnection(amqp_broker.url) as conn:  # type: ignore[no-untyped-call]
        queue = conn.SimpleQueue("tasks")
        queue.put({"task": "hem"})
        amqp_broker.assert_published(routing_key="tasks", body={"task": "hem"})
        queue.close()


RABBITMQ_EXPORT = {
    "rabbit_version": "3.10.25",
    "queues": [
        {"name": "orders", "vhost": "shop", "durable": True, "auto_delete": False,
         "arguments": {"x-queue-type": "classic", "x-dead-letter-exchange": "dlx"}},
        {"name": "dead", "vhost": "shop", "durable": True, "auto_delete": False,
         "arguments": {}},
    ],
    "exchanges": [
        {"name": "dlx", "vhost": "shop", "type": "fanout", "durable": True,
         "auto_delete": False, "internal": False, "arguments": {}},
    ],
    "bindings": [
        {"source": "dlx", "vhost": "shop", "destination": "dead",
         "destination_type": "queue", "routing_key": "", "arguments": {}},
    ],
    "policies": [],
}


async def test_topology_compares_with_a_rabbitmq_export_kiltmq(
    amqp_broker: BrokerFixture,
) -> None:
    expected = Topology.from_definitions(RABBITMQ_EXPORT)
    async with kiltmq.connect(amqp_broker.url) as conn:
        channel = await conn.channel()
        await channel.exchange_declare("dlx", "fanout", durable=True)
        await channel.queue_declare("dead", durable=True)
        await channel.queue_bind("dead", "dlx", "")
        await channel.queue_declare("orders", durable=True, arguments={
            "x-queue-type": "classic", "x-dead-letter-exchange": "dlx",
        })
        assert amqp_broker.topology() == expected
        await channel.queue_declare("extra", durable=False)
    assert amqp_broker.topology().diff(expected) == [
        "+ queue ('extra', (('arguments', ()), ('auto_delete', False), ('durable', False)))"
    ]


def test_topology_round_trips_through_load_definitions(amqp_broker: BrokerFixture) -> None:
    amqp_broker.load_definitions(RABBITMQ_EXPORT)
    assert amqp_broker.topology() == Topology.from_definitions(RABBITMQ_EXPORT, "shop")
