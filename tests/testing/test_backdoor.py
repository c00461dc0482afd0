"""The test backdoor of the ``amqp_broker`` fixture, through real clients over real sockets:
inspection, waits, injection, closing and dropping connections, vhost isolation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import aio_pika
import pika
import pika.exceptions
import pytest

import kiltmq
from kiltmq.broker import Broker
from kiltmq.testing import BrokerFixture

TIMEOUT = 5.0


def pika_connection(url: str, name: str | None = None) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.socket_timeout = TIMEOUT
    params.blocked_connection_timeout = TIMEOUT
    params.connection_attempts = 1
    if name is not None:
        params.client_properties = {"connection_name": name}
    return pika.BlockingConnection(params)


@pytest.fixture
def pika_conn(amqp_broker: BrokerFixture) -> Iterator[pika.BlockingConnection]:
    conn = pika_connection(amqp_broker.url, "tester")
    yield conn
    if conn.is_open:
        conn.close()


# -- inspection ----------------------------------------------------------------------------


def test_queue_shows_published_messages_with_decoded_properties(
    amqp_broker: BrokerFixture, pika_conn: pika.BlockingConnection
) -> None:
    ch = pika_conn.channel()
    ch.exchange_declare("orders", "topic")
    ch.queue_declare("kilts")
    ch.queue_bind("kilts", "orders", "order.*")
    props = pika.BasicProperties(
        content_type="application/json",
        headers={"source": "web", "attempt": 1},
        delivery_mode=2,
        correlation_id="c-1",
    )
    ch.basic_publish("orders", "order.new", b'{"kilts": 2}', props)
    ch.basic_publish("", "kilts", b"plain")

    info = amqp_broker.wait_messages("kilts", 2)
    assert info.message_count == 2
    assert info.bodies == [b'{"kilts": 2}', b"plain"]
    first, second = info.messages
    assert first.exchange == "orders"
    assert first.routing_key == "order.new"
    assert first.properties.content_type == "application/json"
    assert first.properties.correlation_id == "c-1"
    assert first.properties.delivery_mode == 2
    assert first.headers == {"source": "web", "attempt": 1}
    assert first.json() == {"kilts": 2}
    assert first.redelivered is False
    assert (second.exchange, second.routing_key, second.text) == ("", "kilts", "plain")
    assert info.consumers == ()
    assert amqp_broker.queue_names() == ["kilts"]
    exchange = amqp_broker.exchange("orders")
    assert exchange.type == "topic"
    assert [(b.destination, b.routing_key) for b in exchange.bindings] == [("kilts", "order.*")]


def test_queue_shows_consumers_and_unacked_messages(
    amqp_broker: BrokerFixture, pika_conn: pika.BlockingConnection
) -> None:
    ch = pika_conn.channel()
    ch.queue_declare("jobs")
    ch.basic_qos(prefetch_count=1)
    received: list[bytes] = []
    ch.basic_consume("jobs", lambda c, m, p, body: received.append(body), consumer_tag="worker-1")
    for body in (b"a", b"b", b"c"):
        ch.basic_publish("", "jobs", body)
    pika_conn.process_data_events(0)

    info = amqp_broker.wait_messages("jobs", 2)
    (consumer,) = info.consumers
    assert consumer.tag == "worker-1"
    assert consumer.prefetch == 1
    assert consumer.no_ack is False
    assert consumer.channel == ch.channel_number
    assert consumer.connection.name == "tester"
    assert consumer.connection.product == "Pika Python Client Library"
    assert consumer.unacked == 1
    assert info.unacked_count == 1
    assert info.unacked[0].body == b"a"
    assert info.bodies == [b"b", b"c"]

    # a requeued message is ready again, marked redelivered, in its place
    ch.close()
    info = amqp_broker.wait_messages("jobs", 3)
    assert info.bodies == [b"a", b"b", b"c"]
    assert [m.redelivered for m in info.messages] == [True, False, False]
    assert info.unacked_count == 0
    assert info.consumers == ()


def test_queue_snapshot_shows_the_queue_type(
    amqp_broker: BrokerFixture, pika_conn: pika.BlockingConnection
) -> None:
    channel = pika_conn.channel()
    channel.queue_declare("typed.quorum", durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_declare("typed.classic")
    assert amqp_broker.queue("typed.quorum").type == "quorum"
    assert amqp_broker.queue("typed.classic").type == "classic"


def test_missing_queue_and_exchange(amqp_broker: BrokerFixture) -> None:
    with pytest.raises(LookupError, match="no queue 'nope'"):
        amqp_broker.queue("nope")
    assert not amqp_broker.has_queue("nope")
    with pytest.raises(LookupError, match="no exchange 'nope'"):
        amqp_broker.exchange("nope")
    with pytest.raises(LookupError, match="no exchange 'nope'"):
        amqp_broker.publish("nope", "key", b"body")


def test_connections_are_listed_and_filtered(
    amqp_broker: BrokerFixture, pika_conn: pika.BlockingConnection
) -> None:
    other = pika_connection(amqp_broker.url, "other")
    try:
        other.channel()
        other.channel()
        listed = amqp_broker.connections()
        assert sorted(c.name or "" for c in listed) == ["other", "tester"]
        (conn,) = amqp_broker.connections("other")
        assert conn.user == "guest"
        assert conn.vhost == amqp_broker.vhost
        assert conn.channels == 2
        host, _, port = conn.peer.rpartition(":")
        assert host == "127.0.0.1"
        assert int(port) > 0
        assert amqp_broker.connections(user="nobody") == []
        assert amqp_broker.connections(vhost="/") == []
        assert len(amqp_broker.connections(vhost=None)) >= 2
    finally:
        other.close()
    amqp_broker.wait_connections(0, "other")
    assert [c.name for c in amqp_broker.connections()] == ["tester"]


# -- waits ---------------------------------------------------------------------------------


def test_wait_acked_returns_once_a_pika_consumer_acked(amqp_broker: BrokerFixture) -> None:
    consumer_conn = pika_connection(amqp_broker.url, "consumer")
    ch = consumer_conn.channel()
    ch.queue_declare("work")
    done = threading.Event()

    def on_message(
        channel: pika.adapters.blocking_connection.BlockingChannel,
        method: pika.spec.Basic.Deliver,
        props: pika.BasicProperties,
        body: bytes,
    ) -> None:
        channel.basic_ack(method.delivery_tag)

    ch.basic_consume("work", on_message)

    def consume() -> None:
        while not done.is_set():
            consumer_conn.process_data_events(0.05)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    try:
        amqp_broker.publish("", "work", b"job 1")
        info = amqp_broker.wait_acked("work")
        assert info.acked == 1
        assert info.message_count == 0
        assert info.unacked_count == 0
        amqp_broker.publish("", "work", b"job 2")
        amqp_broker.publish("", "work", b"job 3")
        assert amqp_broker.wait_acked("work", count=3).acked == 3
    finally:
        done.set()
        thread.join(TIMEOUT)
        consumer_conn.close()


def test_wait_acked_times_out_saying_what_the_queue_holds(
    amqp_broker: BrokerFixture, pika_conn: pika.BlockingConnection
) -> None:
    ch = pika_conn.channel()
    ch.queue_declare("stuck")
    ch.basic_consume("stuck", lambda c, m, p, body: None)  # never acks
    ch.basic_publish("", "stuck", b"x")
    ch.basic_publish("", "stuck", b"y")
    pika_conn.process_data_events(0)
    amqp_broker.wait_messages("stuck", 0)
    with pytest.raises(TimeoutError, match=r"queue 'stuck' .* 0 acknowledged"):
        amqp_broker.wait_acked("stuck", timeout=0.2)
    with pytest.raises(TimeoutError, match="no queue 'missing'"):
        amqp_broker.wait_messages("missing", timeout=0.05)


def test_no_ack_deliveries_count_as_acknowledged(
    amqp_broker: BrokerFixture, pika_conn: pika.BlockingConnection
) -> None:
    ch = pika_conn.channel()
    ch.queue_declare("auto")
    ch.basic_publish("", "auto", b"x")
    amqp_broker.wait_messages("auto")
    _method, _props, body = ch.basic_get("auto", auto_ack=True)
    assert body == b"x"
    assert amqp_broker.wait_acked("auto").acked == 1


async def test_wait_acked_async_with_an_aio_pika_consumer(amqp_broker: BrokerFixture) -> None:
    connection = await asyncio.wait_for(aio_pika.connect(amqp_broker.url), TIMEOUT)
    async with connection:
        channel = await asyncio.wait_for(connection.channel(), TIMEOUT)
        queue = await asyncio.wait_for(channel.declare_queue("tasks"), TIMEOUT)

        async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()

        await asyncio.wait_for(queue.consume(handle), TIMEOUT)
        await amqp_broker.wait_consumers_async("tasks")
        await asyncio.wait_for(
            channel.default_exchange.publish(aio_pika.Message(b"t"), routing_key="tasks"),
            TIMEOUT,
        )
        info = await amqp_broker.wait_acked_async("tasks")
        assert info.acked == 1
        assert info.consumers[0].connection.vhost == amqp_broker.vhost


# -- injection -----------------------------------------------------------------------------


async def test_injected_message_reaches_a_kiltmq_consumer(amqp_broker: BrokerFixture) -> None:
    async with kiltmq.connect(amqp_broker.url, name="app") as conn:
        ch = await conn.channel()
        await ch.exchange_declare("events", "fanout")
        declared = await ch.queue_declare("", exclusive=True)
        await ch.queue_bind(declared.queue, "events")
        async with ch.consume(declared.queue) as consumer:
            queues = amqp_broker.publish(
                "events",
                "ignored",
                "kilt finished",
                {"headers": {"order": 7}, "content_type": "text/plain", "message_id": "m1"},
            )
            assert queues == [declared.queue]
            message = await asyncio.wait_for(consumer.__anext__(), TIMEOUT)
            assert message.body == b"kilt finished"
            assert message.exchange == "events"
            assert message.routing_key == "ignored"
            assert message.headers == {"order": 7}
            assert message.properties.message_id == "m1"
            await message.ack()
        assert (await amqp_broker.wait_acked_async(declared.queue)).acked == 1


def test_publish_routes_like_a_client_publish(
    amqp_broker: BrokerFixture, pika_conn: pika.BlockingConnection
) -> None:
    ch = pika_conn.channel()
    ch.exchange_declare("logs", "topic")
    for name, key in (("errors", "*.error"), ("all", "#")):
        ch.queue_declare(name)
        ch.queue_bind(name, "logs", key)
    assert sorted(amqp_broker.publish("logs", "disk.error", b"full")) == ["all", "errors"]
    assert amqp_broker.publish("logs", "disk.info", b"ok") == ["all"]
    assert amqp_broker.publish("", "no-such-queue", b"lost") == []
    # pika's properties object works too
    props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, priority=3)
    assert amqp_broker.publish("", "errors", b"p", props) == ["errors"]
    _method, got, body = ch.basic_get("errors", auto_ack=True)
    assert body == b"full"
    _method, got, body = ch.basic_get("errors", auto_ack=True)
    assert (body, got.delivery_mode, got.priority) == (b"p", 2, 3)
    with pytest.raises(ValueError, match="expiration"):
        amqp_broker.publish("", "errors", b"x", {"expiration": "soon"})


def test_publish_answers_a_direct_reply_to_request(
    amqp_broker: BrokerFixture, pika_conn: pika.BlockingConnection
) -> None:
    ch = pika_conn.channel()
    ch.queue_declare("rpc")
    replies: list[bytes] = []
    ch.basic_consume(
        "amq.rabbitmq.reply-to", lambda c, m, p, body: replies.append(body), auto_ack=True
    )
    ch.basic_publish("", "rpc", b"ping", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
    (request,) = amqp_broker.wait_messages("rpc").messages
    reply_to = request.properties.reply_to
    assert reply_to is not None and reply_to.startswith("amq.rabbitmq.reply-to.")
    assert amqp_broker.publish("", reply_to, b"pong") == [reply_to]
    for _ in range(100):  # at most about TIMEOUT seconds
        if replies:
            break
        pika_conn.process_data_events(TIMEOUT / 100)
    assert replies == [b"pong"]


# -- closing connections -------------------------------------------------------------------


def test_close_connections_makes_pika_raise_connection_closed_320(
    amqp_broker: BrokerFixture, pika_conn: pika.BlockingConnection
) -> None:
    bystander = pika_connection(amqp_broker.url, "bystander")
    try:
        pika_conn.channel()
        closed = amqp_broker.close_connections("tester")
        assert [c.name for c in closed] == ["tester"]
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as caught:
            pika_conn.process_data_events(TIMEOUT)
        assert caught.value.reply_code == 320
        assert caught.value.reply_text == "CONNECTION_FORCED - closed by test"
        assert [c.name for c in amqp_broker.wait_connections(0, "tester") or []] == []
        assert [c.name for c in amqp_broker.connections()] == ["bystander"]
        bystander.channel().queue_declare("still-works")
    finally:
        bystander.close()


def test_close_connections_with_another_code_and_text(amqp_broker: BrokerFixture) -> None:
    conn = pika_connection(amqp_broker.url)
    try:
        closed = amqp_broker.close_connections(reply_code=541, reply_text="broker exploded")
        assert len(closed) == 1
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as caught:
            conn.process_data_events(TIMEOUT)
        assert (caught.value.reply_code, caught.value.reply_text) == (
            541,
            "INTERNAL_ERROR - broker exploded",
        )
    finally:
        if conn.is_open:
            conn.close()


def test_drop_connections_resets_the_socket(
    amqp_broker: BrokerFixture, pika_conn: pika.BlockingConnection
) -> None:
    pika_conn.channel()
    assert [c.name for c in amqp_broker.drop_connections(user="guest")] == ["tester"]
    with pytest.raises(pika.exceptions.AMQPConnectionError) as caught:
        pika_conn.process_data_events(TIMEOUT)
    assert not isinstance(caught.value, pika.exceptions.ConnectionClosedByBroker)
    amqp_broker.wait_connections(0)


@pytest.mark.parametrize("how", ["close", "drop"])
async def test_kiltmq_client_recovers_and_consumption_resumes(
    amqp_broker: BrokerFixture, how: str
) -> None:
    async with kiltmq.connect(
        amqp_broker.url, name="worker", recovery_initial_delay=0.05
    ) as conn:
        ch = await conn.channel()
        await ch.queue_declare("resume")
        async with ch.consume("resume") as consumer:
            await amqp_broker.wait_consumers_async("resume")
            amqp_broker.publish("", "resume", b"before")
            message = await asyncio.wait_for(consumer.__anext__(), TIMEOUT)
            assert message.body == b"before"
            await message.ack()
            await amqp_broker.wait_acked_async("resume")

            if how == "close":
                closed = amqp_broker.close_connections("worker")
            else:
                closed = amqp_broker.drop_connections("worker")
            assert [c.name for c in closed] == ["worker"]
            (again,) = await amqp_broker.wait_connections_async(1, "worker")
            assert again.peer != closed[0].peer
            await amqp_broker.wait_consumers_async("resume")

            amqp_broker.publish("", "resume", b"after")
            message = await asyncio.wait_for(consumer.__anext__(), TIMEOUT)
            assert message.body == b"after"
            await message.ack()
            assert (await amqp_broker.wait_acked_async("resume", 2)).acked == 2
        assert conn.recoveries == 1


# -- virtual hosts -------------------------------------------------------------------------


def test_each_test_has_a_vhost_of_its_own(amqp_broker: BrokerFixture) -> None:
    # (this project's tests/conftest.py has an amqp_url fixture of its own, which wins over
    # the plugin's: the plugin's amqp_url is tested with pytester in test_plugin.py)
    assert amqp_broker.vhost.startswith("pytest/")
    assert amqp_broker.url.endswith("/" + amqp_broker.vhost.replace("/", "%2F"))
    assert pika.URLParameters(amqp_broker.url).virtual_host == amqp_broker.vhost


def test_delete_vhost_closes_its_connections_and_drops_its_queues() -> None:
    with BrokerFixture.start() as root:
        fixture = root.add_vhost("doomed")
        with pytest.raises(ValueError, match="exists"):
            root.add_vhost("doomed")
        conn = pika_connection(fixture.url)
        conn.channel().queue_declare("q")
        fixture.publish("", "q", b"x")
        assert fixture.delete_vhost() is True
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as caught:
            conn.process_data_events(TIMEOUT)
        assert caught.value.reply_code == 320
        assert "vhost 'doomed' is deleted" in caught.value.reply_text
        assert fixture.delete_vhost() is False
        assert "doomed" not in root.broker.vhosts
        assert ("guest", "doomed") not in root.broker.auth.permissions
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            pika_connection(fixture.url)


def test_fixture_wraps_a_broker_the_test_started() -> None:
    broker = Broker(port=0, users={"app": "secret"})
    broker.start_in_thread()
    try:
        fixture = BrokerFixture(broker)
        assert fixture.url == broker.url
        assert fixture.url.startswith("amqp://app:secret@127.0.0.1:")
        conn = pika_connection(fixture.url, "own")
        try:
            assert [(c.name, c.user, c.vhost) for c in fixture.connections()] == [
                ("own", "app", "/")
            ]
        finally:
            conn.close()
        fixture.stop()  # not its broker: nothing happens
        assert broker.port > 0
        assert fixture.wait_connections(0) == []
    finally:
        broker.stop_thread()
