"""An aio-pika robust consumer survives a broker restart: the broker stops (clients get
connection.close 320) and starts again with its durable queue and persistent messages;
aio-pika reconnects, declares again and consumes what was left."""

import asyncio

import aio_pika
import aio_pika.abc
import pytest

from kiltmq.testing import BrokerFixture


@pytest.mark.kiltmq_broker(durable=True)  # a broker of the test's own, with a data directory
async def test_the_consumer_gets_the_message_left_before_the_restart(
    amqp_broker: BrokerFixture, amqp_url: str
) -> None:
    connection = await aio_pika.connect_robust(amqp_url, reconnect_interval=0.1)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("invoices", durable=True)
        await channel.default_exchange.publish(
            aio_pika.Message(b"invoice 1", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            "invoices",
        )
        await amqp_broker.wait_messages_async("invoices")

        reconnected = asyncio.Event()
        connection.reconnect_callbacks.add(lambda *_: reconnected.set())
        await asyncio.to_thread(amqp_broker.restart)
        await asyncio.wait_for(reconnected.wait(), 15)

        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_invoice(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                await received.put(message.body)

        await queue.consume(on_invoice)
        assert await asyncio.wait_for(received.get(), 5) == b"invoice 1"
        await amqp_broker.wait_acked_async("invoices")
