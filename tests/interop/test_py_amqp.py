"""py-amqp (the ``amqp`` package, kombu's transport) used directly, against kiltmq and
RabbitMQ: the tutorial scenarios and more."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import amqp
import amqp.exceptions
import pytest

from .conftest import Names

TIMEOUT = 10.0
ROUND_ROBIN = {(b"task 0", b"task 2", b"task 4"), (b"task 1", b"task 3", b"task 5")}

Connect = Callable[..., amqp.Connection]


@pytest.fixture
def connect(broker_url: str) -> Iterator[Connect]:
    parts = urlsplit(broker_url)
    made: list[amqp.Connection] = []

    def make(**options: object) -> amqp.Connection:
        conn = amqp.Connection(
            host=f"{parts.hostname}:{parts.port or 5672}",
            userid=parts.username or "guest",
            password=parts.password or "guest",
            virtual_host="/",
            connect_timeout=TIMEOUT,
            read_timeout=TIMEOUT,
            write_timeout=TIMEOUT,
            **options,
        )
        conn.connect()
        made.append(conn)
        return conn

    yield make
    for conn in made:
        try:
            conn.close()
        except Exception:
            conn.collect()


def pump(conns: list[amqp.Connection], done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for deliveries"
        for conn in conns:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.02)


def consume(ch: amqp.Channel, queue: str, into: list[bytes]) -> str:
    def on_message(message: amqp.Message) -> None:
        into.append(message.body)
        ch.basic_ack(message.delivery_tag)

    return str(ch.basic_consume(queue, callback=on_message))


def test_consumer_declares_binds_and_consumes(connect: Connect, names: Names) -> None:
    x, q = names.x("logs"), names.q("inbox")
    consumer = connect()
    cch = consumer.channel()
    cch.exchange_declare(x, "direct", durable=False, auto_delete=False)
    cch.queue_declare(q, exclusive=True)
    cch.queue_bind(q, x, routing_key="info")
    got: list[bytes] = []
    consume(cch, q, got)
    pch = connect().channel()
    for body in (b"a", b"b", b"c"):
        pch.basic_publish(amqp.Message(body), exchange=x, routing_key="info")
    pch.basic_publish(amqp.Message(b"dropped"), exchange=x, routing_key="warning")
    pump([consumer], lambda: len(got) >= 3)
    assert got == [b"a", b"b", b"c"]


def test_message_waits_for_a_consumer(connect: Connect, names: Names) -> None:
    q = names.q("work")
    producer = connect(confirm_publish=True)
    pch = producer.channel()
    pch.queue_declare(q, auto_delete=False)
    pch.basic_publish(amqp.Message(b"queued", delivery_mode=2), exchange="", routing_key=q)
    producer.close()
    consumer = connect()
    cch = consumer.channel()
    ok = cch.queue_declare(q, passive=True)
    assert ok.message_count == 1
    got: list[bytes] = []
    consume(cch, q, got)
    pump([consumer], lambda: bool(got))
    assert got == [b"queued"]


def test_two_consumers_share_round_robin(connect: Connect, names: Names) -> None:
    q = names.q("tasks")
    c1, c2 = connect(), connect()
    got1: list[bytes] = []
    got2: list[bytes] = []
    for conn, got in ((c1, got1), (c2, got2)):
        ch = conn.channel()
        ch.queue_declare(q, auto_delete=False)
        consume(ch, q, got)
    pch = connect().channel()
    for i in range(6):
        pch.basic_publish(amqp.Message(f"task {i}".encode()), exchange="", routing_key=q)
    pump([c1, c2], lambda: len(got1) + len(got2) >= 6)
    assert {tuple(got1), tuple(got2)} == ROUND_ROBIN


def test_fanout_every_consumer_gets_every_message(connect: Connect, names: Names) -> None:
    x = names.x("broadcast")
    conns = [connect() for _ in range(3)]
    inboxes: list[list[bytes]] = []
    for conn in conns:
        ch = conn.channel()
        ch.exchange_declare(x, "fanout", durable=False, auto_delete=False)
        queue = ch.queue_declare("", exclusive=True).queue
        ch.queue_bind(queue, x)
        inbox: list[bytes] = []
        consume(ch, queue, inbox)
        inboxes.append(inbox)
    pch = connect().channel()
    for i in range(3):
        pch.basic_publish(amqp.Message(f"news {i}".encode()), exchange=x, routing_key="")
    pump(conns, lambda: all(len(inbox) >= 3 for inbox in inboxes))
    assert inboxes == [[b"news 0", b"news 1", b"news 2"]] * 3


def test_publisher_confirms(connect: Connect, names: Names) -> None:
    q = names.q("confirmed")
    ch = connect(confirm_publish=True).channel()
    ch.queue_declare(q, exclusive=True)
    # With confirm_publish, basic_publish waits for each basic.ack.
    for i in range(5):
        ch.basic_publish(amqp.Message(f"m{i}".encode()), exchange="", routing_key=q)
    assert ch.queue_declare(q, passive=True).message_count == 5


def test_basic_get(connect: Connect, names: Names) -> None:
    q = names.q("get")
    ch = connect(confirm_publish=True).channel()
    ch.queue_declare(q, exclusive=True)
    assert ch.basic_get(q) is None
    ch.basic_publish(
        amqp.Message(b"one", content_type="text/plain", application_headers={"n": 7}),
        exchange="",
        routing_key=q,
    )
    ch.basic_publish(amqp.Message(b"two"), exchange="", routing_key=q)
    message = ch.basic_get(q)
    assert message is not None
    assert (message.body, message.content_type, message.headers) == (b"one", "text/plain", {"n": 7})
    assert message.delivery_info["message_count"] == 1
    ch.basic_ack(message.delivery_tag)
    message = ch.basic_get(q, no_ack=True)
    assert message is not None and message.body == b"two"


def test_reject_requeue_redelivers(connect: Connect, names: Names) -> None:
    q = names.q("retry")
    ch = connect(confirm_publish=True).channel()
    ch.queue_declare(q, exclusive=True)
    ch.basic_publish(amqp.Message(b"flaky"), exchange="", routing_key=q)
    message = ch.basic_get(q)
    assert message is not None and not message.delivery_info["redelivered"]
    ch.basic_reject(message.delivery_tag, requeue=True)
    message = ch.basic_get(q)
    assert message is not None and message.delivery_info["redelivered"]
    ch.basic_reject(message.delivery_tag, requeue=False)
    assert ch.basic_get(q) is None


def test_channel_error_leaves_connection_usable(connect: Connect, names: Names) -> None:
    conn = connect()
    ch = conn.channel()
    with pytest.raises(amqp.exceptions.NotFound) as info:
        ch.queue_declare(names.q("missing"), passive=True)
    assert info.value.reply_code == 404
    assert conn.connected
    ch2 = conn.channel()
    queue = ch2.queue_declare("", exclusive=True).queue
    with pytest.raises(amqp.exceptions.AccessRefused):
        ch2.exchange_declare("amq.kilt", "direct")
    ch3 = conn.channel()
    ch3.basic_publish(amqp.Message(b"fine"), exchange="", routing_key=queue)
    message = ch3.basic_get(queue, no_ack=True)
    assert message is not None and message.body == b"fine"


def test_integers_beyond_32_bits_in_arguments(connect: Connect, names: Names) -> None:
    # py-amqp writes them with the type code L, which RabbitMQ reads as a signed 64-bit
    # integer (Celery's delay queues have an x-message-ttl of 2**27 s in milliseconds).
    ch = connect().channel()
    q = names.q("long-ttl")
    ch.queue_declare(q, arguments={"x-message-ttl": 2**27 * 1000}, exclusive=True)
    ch.basic_publish(amqp.Message(b"later", application_headers={"n": -(2**40)}), "", q)
    message = ch.basic_get(q, no_ack=True)
    assert message is not None and message.headers == {"n": -(2**40)}
    with pytest.raises(amqp.exceptions.PreconditionFailed) as refused:
        ch.queue_declare(names.q("negative"), arguments={"x-max-length": -(2**40)})
    assert refused.value.reply_text.endswith("{value_negative,-1099511627776}")
