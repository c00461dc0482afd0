"""pika's BlockingConnection against kiltmq and RabbitMQ: the tutorial scenarios and more."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from .conftest import Names

TIMEOUT = 10.0
# Six messages handed to two consumers in turn.
ROUND_ROBIN = {(b"task 0", b"task 2", b"task 4"), (b"task 1", b"task 3", b"task 5")}


def connect(url: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.socket_timeout = 5
    params.stack_timeout = 10
    params.blocked_connection_timeout = 10
    return pika.BlockingConnection(params)


@pytest.fixture
def connections(broker_url: str) -> Iterator[Callable[[], pika.BlockingConnection]]:
    """A factory of connections, all closed after the test."""
    made: list[pika.BlockingConnection] = []

    def make() -> pika.BlockingConnection:
        conn = connect(broker_url)
        made.append(conn)
        return conn

    yield make
    for conn in made:
        if conn.is_open:
            conn.close()


def pump(conns: list[pika.BlockingConnection], done: Callable[[], bool]) -> None:
    """Process events of ``conns`` until ``done()`` or the deadline (then fail)."""
    deadline = time.monotonic() + TIMEOUT
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for deliveries"
        for conn in conns:
            conn.process_data_events(time_limit=0.01)


def collector(ch: BlockingChannel, queue: str, into: list[bytes], ack: bool = True) -> str:
    def on_message(
        channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        _props: pika.BasicProperties,
        body: bytes,
    ) -> None:
        into.append(body)
        if ack:
            channel.basic_ack(method.delivery_tag)

    return str(ch.basic_consume(queue, on_message))


def test_consumer_declares_binds_and_consumes(
    connections: Callable[[], pika.BlockingConnection], names: Names
) -> None:
    x, q = names.x("logs"), names.q("inbox")
    consumer = connections()
    cch = consumer.channel()
    cch.exchange_declare(x, exchange_type="direct")
    cch.queue_declare(q, exclusive=True)
    cch.queue_bind(q, x, routing_key="info")
    got: list[bytes] = []
    collector(cch, q, got)

    producer = connections()
    pch = producer.channel()
    for i in range(3):
        pch.basic_publish(x, "info", f"hello {i}".encode())
    pch.basic_publish(x, "debug", b"not routed")
    pump([consumer], lambda: len(got) >= 3)
    assert got == [b"hello 0", b"hello 1", b"hello 2"]


def test_message_waits_for_a_consumer(
    connections: Callable[[], pika.BlockingConnection], names: Names
) -> None:
    q = names.q("work")
    producer = connections()
    pch = producer.channel()
    pch.queue_declare(q)
    pch.confirm_delivery()
    pch.basic_publish("", q, b"queued", pika.BasicProperties(delivery_mode=2))
    producer.close()

    consumer = connections()
    cch = consumer.channel()
    assert cch.queue_declare(q, passive=True).method.message_count == 1
    for method, _props, body in cch.consume(q, inactivity_timeout=TIMEOUT):
        assert method is not None, "no delivery"
        assert body == b"queued"
        cch.basic_ack(method.delivery_tag)
        break
    cch.cancel()


def test_two_consumers_share_round_robin(
    connections: Callable[[], pika.BlockingConnection], names: Names
) -> None:
    q = names.q("tasks")
    c1, c2 = connections(), connections()
    ch1, ch2 = c1.channel(), c2.channel()
    ch1.queue_declare(q, auto_delete=False)
    got1: list[bytes] = []
    got2: list[bytes] = []
    # No prefetch limit: the queue hands messages to its consumers strictly in turn
    # (with prefetch 1 a consumer that acks faster may legitimately get more).
    for ch, got in ((ch1, got1), (ch2, got2)):
        collector(ch, q, got)
    producer = connections()
    pch = producer.channel()
    for i in range(6):
        pch.basic_publish("", q, f"task {i}".encode())
    pump([c1, c2], lambda: len(got1) + len(got2) >= 6)
    assert {tuple(got1), tuple(got2)} == ROUND_ROBIN


def test_fanout_every_consumer_gets_every_message(
    connections: Callable[[], pika.BlockingConnection], names: Names
) -> None:
    x = names.x("broadcast")
    conns = [connections() for _ in range(3)]
    inboxes: list[list[bytes]] = []
    for conn in conns:
        ch = conn.channel()
        ch.exchange_declare(x, exchange_type="fanout")
        queue = ch.queue_declare("", exclusive=True).method.queue
        assert queue.startswith("amq.gen-")
        ch.queue_bind(queue, x)
        inbox: list[bytes] = []
        collector(ch, queue, inbox)
        inboxes.append(inbox)
    pch = connections().channel()
    for i in range(4):
        pch.basic_publish(x, "", f"news {i}".encode())
    pump(conns, lambda: all(len(inbox) >= 4 for inbox in inboxes))
    for inbox in inboxes:
        assert inbox == [f"news {i}".encode() for i in range(4)]


def test_publisher_confirms(
    connections: Callable[[], pika.BlockingConnection], names: Names
) -> None:
    q = names.q("confirmed")
    ch = connections().channel()
    ch.queue_declare(q, exclusive=True)
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", q, f"m{i}".encode(), mandatory=True)
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("amq.direct", "nowhere", b"lost", mandatory=True)
    assert ch.queue_declare(q, passive=True).method.message_count == 5


def test_basic_get(connections: Callable[[], pika.BlockingConnection], names: Names) -> None:
    q = names.q("get")
    ch = connections().channel()
    ch.queue_declare(q, exclusive=True)
    assert ch.basic_get(q) == (None, None, None)
    ch.confirm_delivery()
    props = pika.BasicProperties(content_type="text/plain", headers={"n": 1}, message_id="id1")
    ch.basic_publish("", q, b"first", props)
    ch.basic_publish("", q, b"second")
    method, got_props, body = ch.basic_get(q)
    assert method is not None and got_props is not None
    assert (body, method.message_count, method.redelivered) == (b"first", 1, False)
    assert (got_props.content_type, got_props.headers, got_props.message_id) == (
        "text/plain",
        {"n": 1},
        "id1",
    )
    ch.basic_ack(method.delivery_tag)
    method, _props, body = ch.basic_get(q, auto_ack=True)
    assert method is not None and body == b"second" and method.message_count == 0


def test_nack_requeue_redelivers(
    connections: Callable[[], pika.BlockingConnection], names: Names
) -> None:
    q = names.q("retry")
    ch = connections().channel()
    ch.queue_declare(q, exclusive=True)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"again")
    ch.basic_publish("", q, b"later")
    method, _props, body = ch.basic_get(q)
    assert method is not None and body == b"again" and not method.redelivered
    ch.basic_nack(method.delivery_tag, requeue=True)
    method, _props, body = ch.basic_get(q)
    assert method is not None and body == b"again" and method.redelivered
    ch.basic_reject(method.delivery_tag, requeue=False)
    method, _props, body = ch.basic_get(q)
    assert method is not None and body == b"later"
    ch.basic_ack(method.delivery_tag)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_channel_error_leaves_connection_usable(
    connections: Callable[[], pika.BlockingConnection], names: Names
) -> None:
    conn = connections()
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare(names.q("missing"), passive=True)
    assert info.value.reply_code == 404
    assert "NOT_FOUND" in info.value.reply_text
    assert ch.is_closed and conn.is_open
    ch2 = conn.channel()
    q = ch2.queue_declare("", exclusive=True).method.queue
    ch2.basic_publish("", q, b"still works")
    _method, _props, body = ch2.basic_get(q, auto_ack=True)
    assert body == b"still works"
