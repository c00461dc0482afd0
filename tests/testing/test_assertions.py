"""Assertions that read like the domain: assert_published, wait_for_consumers and the
topology compared with definitions as RabbitMQ exports them."""

from __future__ import annotations

import json
import os

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


def _declare_shop(channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
    """The same topology, declared on either broker."""
    channel.exchange_declare("dlx", "fanout", durable=True)
    channel.exchange_declare("orders.topic", "topic", durable=True, arguments={
        "alternate-exchange": "dlx",
    })
    channel.queue_declare("dead", durable=True)
    channel.queue_bind("dead", "dlx", "")
    channel.queue_declare("orders", durable=True, arguments={
        "x-dead-letter-exchange": "dlx", "x-message-ttl": 60000,
    })
    channel.queue_bind("orders", "orders.topic", "order.#", arguments={"x-match": "any"})
    channel.queue_declare("work", durable=True, arguments={"x-queue-type": "quorum"})


@pytest.mark.rabbitmq
def test_topology_equals_what_rabbitmq_exports_for_the_same_declarations(
    amqp_broker: BrokerFixture, rabbitmq_url: str
) -> None:
    """The definitions a real RabbitMQ exports after some declarations describe the
    topology kiltmq's fixture reports after the same declarations."""
    import base64
    import urllib.parse
    import urllib.request
    import uuid

    api = os.environ.get("KILTMQ_RABBITMQ_API", "http://127.0.0.1:15672/api")
    auth = "Basic " + base64.b64encode(b"guest:guest").decode()

    def call(method: str, path: str, body: object = None) -> object:
        request = urllib.request.Request(
            api + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json", "authorization": auth},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            data = response.read()
            return json.loads(data) if data else None

    vhost = f"topology-{uuid.uuid4().hex[:8]}"
    path = urllib.parse.quote(vhost, safe="")
    call("PUT", f"/vhosts/{path}")
    try:
        call("PUT", f"/permissions/{path}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
        parts = urllib.parse.urlsplit(rabbitmq_url)
        on_rabbitmq = pika.BlockingConnection(pika.URLParameters(
            urllib.parse.urlunsplit(parts._replace(path="/" + path))
        ))
        try:
            _declare_shop(on_rabbitmq.channel())
        finally:
            on_rabbitmq.close()
        export = call("GET", f"/definitions/{path}")
        assert isinstance(export, dict)
    finally:
        call("DELETE", f"/vhosts/{path}")
    on_kiltmq = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    try:
        _declare_shop(on_kiltmq.channel())
    finally:
        on_kiltmq.close()
    expected = Topology.from_definitions(export)
    assert len(expected.queues) == 3 and len(expected.exchanges) == 2
    assert len(expected.bindings) == 2
    assert amqp_broker.topology().diff(expected) == []
    assert amqp_broker.topology() == expected
