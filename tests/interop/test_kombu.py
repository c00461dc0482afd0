# kombu and py-amqp have partial annotations; their untyped calls are fine here.
# mypy: disable-error-code="no-untyped-call"
"""kombu (py-amqp transport: Producer, Consumer, SimpleQueue) against kiltmq and RabbitMQ."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import amqp.exceptions
import pytest
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.message import Message
from kombu.messaging import Consumer, Producer

from .conftest import Names

TIMEOUT = 10.0
ROUND_ROBIN = {("task 0", "task 2", "task 4"), ("task 1", "task 3", "task 5")}

Connect = Callable[..., Connection]


@pytest.fixture
def connect(broker_url: str) -> Iterator[Connect]:
    parts = urlsplit(broker_url)
    made: list[Connection] = []

    def make(**options: Any) -> Connection:
        conn = Connection(
            hostname=parts.hostname,
            port=parts.port or 5672,
            userid=parts.username or "guest",
            password=parts.password or "guest",
            virtual_host="/",
            transport="pyamqp",
            connect_timeout=TIMEOUT,
            **options,
        )
        conn.connect()
        made.append(conn)
        return conn

    yield make
    for conn in made:
        conn.release()


def pump(conns: list[Connection], done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for deliveries"
        for conn in conns:
            with contextlib.suppress(TimeoutError, socket.timeout):
                conn.drain_events(timeout=0.02)


def collecting(into: list[Any]) -> Callable[[Any, Message], None]:
    def on_message(body: Any, message: Message) -> None:
        into.append(body)
        message.ack()

    return on_message


def test_consumer_declares_binds_and_consumes(connect: Connect, names: Names) -> None:
    exchange = Exchange(names.x("orders"), type="topic", durable=False)
    queue = Queue(names.q("eu"), exchange, routing_key="order.eu.*", exclusive=True)
    consumer_conn = connect()
    got: list[Any] = []
    with Consumer(consumer_conn, queues=[queue], callbacks=[collecting(got)], accept=["json"]):
        producer = Producer(connect().channel(), exchange=exchange, serializer="json")
        for key in ("order.eu.1", "order.us.2", "order.eu.3"):
            producer.publish({"key": key}, routing_key=key, declare=[exchange])
        pump([consumer_conn], lambda: len(got) >= 2)
    assert got == [{"key": "order.eu.1"}, {"key": "order.eu.3"}]


def test_message_waits_for_a_consumer(connect: Connect, names: Names) -> None:
    names.x("work")  # SimpleQueue's exchange is named like its queue
    with connect(transport_options={"confirm_publish": True}) as producer:
        queue = producer.SimpleQueue(names.q("work"), serializer="json")
        queue.put({"job": 1})
        queue.close()
    consumer = connect()
    queue = consumer.SimpleQueue(names.q("work"))
    assert queue.qsize() == 1
    message = queue.get(timeout=TIMEOUT)
    assert message.payload == {"job": 1}
    message.ack()
    with pytest.raises(queue.Empty):
        queue.get(timeout=0.2)
    queue.close()


def test_two_consumers_share_round_robin(connect: Connect, names: Names) -> None:
    queue = Queue(names.q("tasks"), Exchange("", type="direct"), routing_key=names.q("tasks"))
    c1, c2 = connect(), connect()
    got1: list[Any] = []
    got2: list[Any] = []
    with (
        Consumer(c1, queues=[queue], callbacks=[collecting(got1)], accept=["json"]),
        Consumer(c2, queues=[queue], callbacks=[collecting(got2)], accept=["json"]),
    ):
        producer = Producer(connect().channel(), serializer="json")
        for i in range(6):
            producer.publish(f"task {i}", routing_key=queue.name)
        pump([c1, c2], lambda: len(got1) + len(got2) >= 6)
    assert {tuple(got1), tuple(got2)} == ROUND_ROBIN


def test_fanout_every_consumer_gets_every_message(connect: Connect, names: Names) -> None:
    exchange = Exchange(names.x("news"), type="fanout", durable=False)
    conns = [connect() for _ in range(3)]
    inboxes: list[list[Any]] = [[] for _ in conns]
    consumers = []
    for conn, inbox in zip(conns, inboxes, strict=True):
        # An anonymous, exclusive queue: the server names it.
        queue = Queue("", exchange, exclusive=True, auto_delete=True)
        consumer = Consumer(conn, queues=[queue], callbacks=[collecting(inbox)], accept=["json"])
        consumer.consume()
        bound = consumer.queues
        assert bound is not None and str(bound[0].name).startswith("amq.gen-")
        consumers.append(consumer)
    producer = Producer(connect().channel(), exchange=exchange, serializer="json")
    for i in range(3):
        producer.publish({"n": i})
    pump(conns, lambda: all(len(inbox) >= 3 for inbox in inboxes))
    for consumer in consumers:
        consumer.cancel()
    assert inboxes == [[{"n": 0}, {"n": 1}, {"n": 2}]] * 3


def test_publisher_confirms(connect: Connect, names: Names) -> None:
    conn = connect(transport_options={"confirm_publish": True})
    queue = Queue(names.q("confirmed"), exclusive=True)
    channel = conn.channel()
    bound = queue(channel)
    bound.declare()
    producer = Producer(channel, serializer="json")
    for i in range(5):
        producer.publish({"i": i}, routing_key=queue.name)  # waits for each basic.ack
    assert bound.queue_declare(passive=True).message_count == 5


def test_basic_get(connect: Connect, names: Names) -> None:
    conn = connect(transport_options={"confirm_publish": True})
    channel = conn.channel()
    queue = Queue(names.q("get"), exclusive=True)(channel)
    queue.declare()
    assert queue.get() is None
    producer = Producer(channel, serializer="json")
    producer.publish({"first": True}, routing_key=queue.name, headers={"h": "v"})
    producer.publish({"first": False}, routing_key=queue.name)
    message = queue.get()
    assert message is not None
    assert message.decode() == {"first": True}
    assert message.headers == {"h": "v"}
    message.ack()
    message = queue.get(no_ack=True)
    assert message is not None and message.decode() == {"first": False}


def test_requeue_redelivers(connect: Connect, names: Names) -> None:
    conn = connect(transport_options={"confirm_publish": True})
    channel = conn.channel()
    queue = Queue(names.q("retry"), exclusive=True)(channel)
    queue.declare()
    Producer(channel, serializer="json").publish("flaky", routing_key=queue.name)
    message = queue.get()
    assert message is not None and not message.delivery_info["redelivered"]
    message.requeue()
    message = queue.get()
    assert message is not None and message.delivery_info["redelivered"]
    message.reject()
    assert queue.get() is None


def test_channel_error_leaves_connection_usable(connect: Connect, names: Names) -> None:
    conn = connect()
    channel = conn.channel()
    with pytest.raises(amqp.exceptions.NotFound):
        Queue(names.q("missing"))(channel).queue_declare(passive=True)
    assert conn.connected
    names.x("after")  # SimpleQueue's exchange is named like its queue
    with conn.SimpleQueue(names.q("after")) as queue:
        queue.put("still fine")
        message = queue.get(timeout=TIMEOUT)
        assert message.payload == "still fine"
        message.ack()
