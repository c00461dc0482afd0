"""The RabbitMQ tutorial scenarios, driven with pika against the embedded broker."""

from __future__ import annotations

import threading

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from .conftest import Connect


def _get_all(channel: BlockingChannel, queue: str, count: int, timeout: float = 10) -> list[bytes]:
    bodies: list[bytes] = []
    for method, _props, body in channel.consume(queue, inactivity_timeout=timeout):
        assert method is not None, f"timed out after {bodies!r}"
        channel.basic_ack(method.delivery_tag)
        bodies.append(body)
        if len(bodies) == count:
            break
    channel.cancel()
    return bodies


def test_hello_world(connect: Connect) -> None:
    producer = connect().channel()
    consumer = connect().channel()
    consumer.queue_declare("hello")
    producer.basic_publish("", "hello", b"Hello World!")
    assert _get_all(consumer, "hello", 1) == [b"Hello World!"]


def test_consumer_declares_exchange_and_queue_then_producer_publishes(connect: Connect) -> None:
    consumer = connect().channel()
    consumer.exchange_declare("tut.direct", "direct")
    queue = consumer.queue_declare("", exclusive=True).method.queue
    assert queue.startswith("amq.gen-")
    consumer.queue_bind(queue, "tut.direct", routing_key="info")
    producer = connect().channel()
    producer.basic_publish("tut.direct", "info", b"routed")
    producer.basic_publish("tut.direct", "debug", b"dropped")
    producer.basic_publish("tut.direct", "info", b"routed again")
    assert _get_all(consumer, queue, 2) == [b"routed", b"routed again"]


def test_message_waits_in_queue_until_a_consumer_comes(connect: Connect) -> None:
    producer = connect().channel()
    producer.queue_declare("task_queue", durable=True)
    producer.basic_publish(
        "", "task_queue", b"while nobody listens", BasicProperties(delivery_mode=2)
    )
    ok = producer.queue_declare("task_queue", durable=True, passive=True)
    assert ok.method.message_count == 1
    consumer = connect().channel()
    assert _get_all(consumer, "task_queue", 1) == [b"while nobody listens"]


@pytest.mark.parametrize("prefetch", [0, 1])
def test_two_consumers_share_a_queue_round_robin(connect: Connect, prefetch: int) -> None:
    """Without a prefetch limit deliveries alternate strictly; with prefetch 1 ("fair
    dispatch") each message goes to whichever consumer is free."""
    setup = connect().channel()
    setup.queue_declare("work")
    channels = []
    received: list[list[bytes]] = [[], []]
    for i in range(2):
        ch = connect().channel()
        if prefetch:
            ch.basic_qos(prefetch_count=prefetch)

        def on_message(
            ch_: BlockingChannel,
            method: Basic.Deliver,
            _props: BasicProperties,
            body: bytes,
            i: int = i,
        ) -> None:
            received[i].append(body)
            ch_.basic_ack(method.delivery_tag)

        ch.basic_consume("work", on_message)
        channels.append(ch)
    for n in range(10):
        setup.basic_publish("", "work", f"task {n}".encode())
    # process events on both connections until all ten arrived
    deadline = 200
    while sum(map(len, received)) < 10 and deadline:
        for ch in channels:
            ch.connection.process_data_events(time_limit=0.05)
        deadline -= 1
    assert sorted(received[0] + received[1]) == sorted(f"task {n}".encode() for n in range(10))
    if prefetch:
        assert received[0] and received[1]
    else:
        assert received[0] == [f"task {n}".encode() for n in range(0, 10, 2)]
        assert received[1] == [f"task {n}".encode() for n in range(1, 10, 2)]


def test_fanout_gives_every_consumer_every_message(connect: Connect) -> None:
    consumers = []
    for _ in range(3):
        ch = connect().channel()
        ch.exchange_declare("logs", "fanout")
        queue = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(queue, "logs")
        consumers.append((ch, queue))
    producer = connect().channel()
    for n in range(5):
        producer.basic_publish("logs", "", f"log {n}".encode())
    for ch, queue in consumers:
        assert _get_all(ch, queue, 5) == [f"log {n}".encode() for n in range(5)]


def test_topic_routing(connect: Connect) -> None:
    ch = connect().channel()
    ch.exchange_declare("topic_logs", "topic")
    bindings = {
        "q.all": ["#"],
        "q.kern": ["kern.*"],
        "q.critical": ["*.critical"],
        "q.lazy": ["lazy.#", "*.*.rabbit"],
    }
    for queue, keys in bindings.items():
        ch.queue_declare(queue)
        for key in keys:
            ch.queue_bind(queue, "topic_logs", key)
    for key in ["kern.critical", "kern.info", "a.critical", "lazy", "quick.orange.rabbit", ""]:
        ch.basic_publish("topic_logs", key, key.encode())
    assert _get_all(ch, "q.all", 6) == [
        b"kern.critical", b"kern.info", b"a.critical", b"lazy", b"quick.orange.rabbit", b""
    ]
    assert _get_all(ch, "q.kern", 2) == [b"kern.critical", b"kern.info"]
    assert _get_all(ch, "q.critical", 2) == [b"kern.critical", b"a.critical"]
    assert _get_all(ch, "q.lazy", 2) == [b"lazy", b"quick.orange.rabbit"]
    for queue in bindings:
        assert ch.queue_declare(queue, passive=True).method.message_count == 0


def test_rpc_with_reply_queue(connect: Connect) -> None:
    server = connect().channel()
    server.queue_declare("rpc_queue")

    def on_request(
        ch: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        ch.basic_publish(
            "",
            props.reply_to,
            body.upper(),
            BasicProperties(correlation_id=props.correlation_id),
        )
        ch.basic_ack(method.delivery_tag)

    server.basic_consume("rpc_queue", on_request)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            server.connection.process_data_events(time_limit=0.05)

    client = connect().channel()
    reply_to = client.queue_declare("", exclusive=True).method.queue
    client.basic_publish(
        "", "rpc_queue", b"ping", BasicProperties(reply_to=reply_to, correlation_id="42")
    )
    thread = threading.Thread(target=serve)
    thread.start()
    try:
        for method, props, body in client.consume(reply_to, inactivity_timeout=10):
            assert method is not None
            assert props.correlation_id == "42"
            assert body == b"PING"
            break
    finally:
        stop.set()
        thread.join(10)


def test_url_and_port(url: str) -> None:
    params = pika.URLParameters(url)
    assert params.host == "127.0.0.1"
    assert params.port > 0
    assert url == f"amqp://guest:guest@127.0.0.1:{params.port}/"
