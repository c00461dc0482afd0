"""A FastStream subscriber that turns orders into shipments, tested against a real
broker: the message goes over the wire, the reply is asserted as published, and the
subscriber keeps working after the broker closed its connection.

FastStream connects with aio-pika's robust connection, which waits ``reconnect_interval``
(5 s by default) before it tries again. That wait is the client's own timer, on real
time: the broker's clock cannot move it. So the app takes the interval as a setting and
the test gives it a short one (0.1 s), as an application's test configuration would;
production keeps its own."""

import json

from faststream.rabbit import RabbitBroker

from kiltmq.testing import BrokerFixture


def make_app(url: str, *, reconnect_interval: float = 5.0) -> RabbitBroker:
    broker = RabbitBroker(url, reconnect_interval=reconnect_interval)

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
    async with make_app(amqp_url, reconnect_interval=0.1) as broker:
        await broker.start()
        await amqp_broker.wait_for_consumers_async("orders")
        amqp_broker.faults.close_connection(None)  # every connection: 320 CONNECTION_FORCED
        await amqp_broker.wait_connections_async(0)
        await amqp_broker.wait_for_consumers_async("orders")  # reconnected after 0.1 s
        amqp_broker.publish(
            "", "orders", json.dumps({"id": 8}), {"content_type": "application/json"}
        )
        await amqp_broker.assert_published_async(routing_key="shipping", body={"shipment": 8})
