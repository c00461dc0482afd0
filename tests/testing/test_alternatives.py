"""What docs/testing.md's comparison table says of kombu's memory transport and of
FastStream's TestRabbitBroker, checked on the installed versions, each next to what the
broker (as RabbitMQ) does with the same code."""

# mypy: allow-untyped-calls, allow-untyped-decorators
from __future__ import annotations

import pytest
from faststream.exceptions import SubscriberNotFound
from faststream.rabbit import (
    ExchangeType,
    RabbitBroker,
    RabbitExchange,
    RabbitMessage,
    RabbitQueue,
    TestRabbitBroker,
)
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Consumer, Producer

from kiltmq.testing import BrokerFixture

# -- kombu memory:// ----------------------------------------------------------------------


def expire_at_once(url: str, name: str) -> int:
    """Publish to a queue with x-message-ttl 0 and a dead-letter exchange; how many
    messages its dead-letter queue holds then."""
    with Connection(url) as conn:
        channel = conn.channel()
        dead = Queue(f"{name}-dead", Exchange(f"{name}-dlx", "fanout"))
        dead(channel).declare()
        queue = Queue(name, Exchange(name, "direct"), "k",
                      queue_arguments={"x-message-ttl": 0, "x-dead-letter-exchange": f"{name}-dlx"})
        Producer(channel).publish("late", exchange=queue.exchange, routing_key="k",
                                  declare=[queue])
        return int(dead(channel).queue_declare(passive=True).message_count)


def test_kombu_memory_ignores_message_ttl_and_dead_lettering(amqp_broker: BrokerFixture) -> None:
    assert expire_at_once("memory://", "ttl-memory") == 0
    assert expire_at_once(amqp_broker.url, "ttl-wire") == 1  # as RabbitMQ: expired, dead-lettered


def test_kombu_memory_shares_its_queues_between_connections() -> None:
    queue = Queue("shared-memory", Exchange("shared-memory", "direct"), "k")
    with Connection("memory://") as one:
        Producer(one.channel()).publish("hi", exchange=queue.exchange, routing_key="k",
                                        declare=[queue])
    with Connection("memory://") as other:
        message = queue(other.channel()).get(no_ack=True)
        assert message is not None and message.payload == "hi"


def test_kombu_memory_has_no_headers_exchange() -> None:
    with Connection("memory://") as conn:
        queue = Queue("by-header", Exchange("by-header", "headers"),
                      binding_arguments={"x-match": "all", "v": 2})
        with pytest.raises(KeyError):
            queue(conn.channel()).declare()


def test_kombu_memory_loses_the_unacked_messages_of_a_closed_channel() -> None:
    queue = Queue("unacked-memory", Exchange("unacked-memory", "direct"), "k")
    with Connection("memory://") as conn:
        channel = conn.channel()
        for n in range(3):
            Producer(channel).publish(n, exchange=queue.exchange, routing_key="k",
                                      declare=[queue])
        got: list[int] = []
        consuming = conn.channel()
        consumer = Consumer(consuming, [queue], callbacks=[lambda body, _: got.append(body)])
        consumer.qos(prefetch_count=1)
        consumer.consume()
        conn.drain_events(timeout=1)
        assert got == [0]  # the prefetch holds the rest back
        consuming.close()  # RabbitMQ: message 0 back in the queue, redelivered
        assert queue(channel).queue_declare(passive=True).message_count == 2


# -- FastStream's TestRabbitBroker --------------------------------------------------------


def make_app() -> tuple[RabbitBroker, list[str]]:
    broker = RabbitBroker("amqp://guest:guest@127.0.0.1:1/")  # never connected to
    seen: list[str] = []
    shop = RabbitExchange("shop", type=ExchangeType.TOPIC)

    @broker.subscriber(RabbitQueue("orders", routing_key="order.#"), shop)
    async def orders(body: str) -> None:
        seen.append(body)

    @broker.subscriber("flaky")
    async def flaky(body: str, message: RabbitMessage) -> None:
        seen.append(body)
        await message.nack(requeue=True)  # RabbitMQ delivers it again

    return broker, seen


async def test_faststream_test_broker_routes_in_process_and_differs_from_rabbitmq(
    amqp_broker: BrokerFixture,
) -> None:
    with Connection(amqp_broker.url) as conn:  # the same binding on the wire
        Queue("orders", Exchange("shop", "topic"), "order.#")(conn.channel()).declare()
    assert amqp_broker.publish("shop", "order", "c") == ["orders"]
    broker, seen = make_app()
    async with TestRabbitBroker(broker) as test_broker:
        await test_broker.publish("a", exchange="shop", routing_key="order.placed")
        await test_broker.publish("b", queue="flaky")
        assert seen == ["a", "b"]  # nacked with requeue, and not delivered again
        with pytest.raises(SubscriberNotFound):  # RabbitMQ: "#" matches no word too
            await test_broker.publish("c", exchange="shop", routing_key="order")
        with pytest.raises(SubscriberNotFound):  # RabbitMQ: dropped, or kept in a queue
            await test_broker.publish("d", queue="nobody-consumes")
