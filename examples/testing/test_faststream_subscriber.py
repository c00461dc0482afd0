"""A FastStream subscriber that turns orders into shipments, tested against a real
broker: the message goes over the wire, the reply is asserted as published, and the
subscriber keeps working after the broker closed its connection."""

import json

from faststream.rabbit import RabbitBroker

from kiltmq.testing import BrokerFixture


def make_app(url: str) -> RabbitBroker:
    broker = RabbitBroker(url)

    @broker.subscriber("orders")
    @broker.publisher("shipping")
    async def ship(order: dict[str, int]) -> dict[str, int]:
        return {"shipment": order["id"]}

    return broker


async def test_an_order_becomes_a_shipment(amqp_broker: BrokerFixture, amqp_url: str) -> None:
    async with make_app(amqp_url) as broker:
        await broker.start()
        await amqp_broker.wait_for_consumers_async("orders")
        amqp_broker.publish(
            "", "orders", json.dumps({"id": 7}), {"content_type": "application/json"}
        )
        await amqp_broker.assert_published_async(routing_key="shipping", body={"shipment": 7})


async def test_the_subscriber_survives_a_forced_close(
    amqp_broker: BrokerFixture, amqp_url: str
) -> None:
    async with make_app(amqp_url) as broker:
        await broker.start()
        await amqp_broker.wait_for_consumers_async("orders")
        amqp_broker.faults.close_connection(None)  # every connection: 320 CONNECTION_FORCED
        await amqp_broker.wait_connections_async(0)
        await amqp_broker.wait_for_consumers_async("orders", timeout=15)  # it reconnected (5 s)
        amqp_broker.publish(
            "", "orders", json.dumps({"id": 8}), {"content_type": "application/json"}
        )
        await amqp_broker.assert_published_async(routing_key="shipping", body={"shipment": 8})
