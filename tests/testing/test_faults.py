"""Faults on demand (``amqp_broker.faults``) as pika, aio-pika, kombu and kiltmq clients
see them: nacked publishes, held confirms, refused declarations, channels and
connections closed now or after some methods, dropped connections, alarms, and a
restart that keeps durable state. Each ends with the test."""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq.exceptions
import amqp.exceptions
import pika
import pika.exceptions
import pytest
from kombu.connection import Connection as KombuConnection

import kiltmq
from kiltmq.client.errors import PublishNacked
from kiltmq.protocol.errors import AMQPError
from kiltmq.testing import BrokerFixture
from kiltmq.testing.fault_engine import engine_of

TIMEOUT = 5.0


def pika_connection(url: str, name: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.socket_timeout = TIMEOUT
    params.blocked_connection_timeout = TIMEOUT * 4
    params.connection_attempts = 1
    params.client_properties = {"connection_name": name}
    return pika.BlockingConnection(params)


# -- confirms ----------------------------------------------------------------------------


def test_the_next_publish_is_nacked_pika(amqp_broker: BrokerFixture) -> None:
    conn = pika_connection(amqp_broker.url, "shop")
    try:
        channel = conn.channel()
        channel.queue_declare("orders")
        channel.confirm_delivery()
        fault = amqp_broker.faults.nack_publishes(1, connection="shop")
        with pytest.raises(pika.exceptions.NackError):
            channel.basic_publish("", "orders", b"lost")
        assert not fault.active  # one nack, then it is over
        channel.basic_publish("", "orders", b"kept")
        assert amqp_broker.queue("orders").bodies == [b"kept"]
    finally:
        conn.close()


async def test_nacks_only_for_publishes_to_the_named_queue_kiltmq(
    amqp_broker: BrokerFixture,
) -> None:
    amqp_broker.faults.nack_publishes(2, queue="payments")
    async with kiltmq.connect(amqp_broker.url) as conn:
        channel = await conn.channel()
        await channel.confirm_select()
        await channel.queue_declare("payments")
        await channel.queue_declare("audit")
        await channel.basic_publish(b"a1", routing_key="audit")
        with pytest.raises(PublishNacked):
            await channel.basic_publish(b"p1", routing_key="payments")
        with pytest.raises(PublishNacked):
            await channel.basic_publish(b"p2", routing_key="payments")
        await channel.basic_publish(b"p3", routing_key="payments")
    assert amqp_broker.queue("payments").bodies == [b"p3"]
    assert amqp_broker.queue("audit").bodies == [b"a1"]


async def test_confirms_held_until_released_aio_pika(amqp_broker: BrokerFixture) -> None:
    connection = await aio_pika.connect(amqp_broker.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue("invoices")
        with amqp_broker.faults.hold_confirms() as hold:
            publish = asyncio.ensure_future(
                channel.default_exchange.publish(aio_pika.Message(b"inv 1"), "invoices")
            )
            await amqp_broker.wait_messages_async("invoices")
            other = await connection.channel()
            await other.declare_queue("invoices", passive=True)  # a round trip after it
            assert not publish.done()
            assert hold.active
        confirm = await asyncio.wait_for(publish, TIMEOUT)
        assert confirm is not None
        assert (await queue.declare()).message_count == 1


# -- refusals ----------------------------------------------------------------------------


def test_a_declare_refused_with_403_kombu(amqp_broker: BrokerFixture) -> None:
    amqp_broker.faults.refuse("queue.declare", 403, name="tasks")
    with KombuConnection(amqp_broker.url) as conn:  # type: ignore[no-untyped-call]
        channel = conn.channel()
        with pytest.raises(amqp.exceptions.AccessRefused) as refused:
            channel.queue_declare("tasks")
        assert refused.value.reply_code == 403
        assert refused.value.reply_text == (
            f"ACCESS_REFUSED - access to queue 'tasks' in vhost '{amqp_broker.vhost}' "
            "refused for user 'guest'"
        )
        channel = conn.channel()
        channel.queue_declare("tasks")  # only the next one
    assert amqp_broker.has_queue("tasks")


async def test_a_declare_refused_with_405_aio_pika(amqp_broker: BrokerFixture) -> None:
    amqp_broker.faults.refuse("queue.declare", 405)
    connection = await aio_pika.connect(amqp_broker.url)
    async with connection:
        channel = await connection.channel()
        with pytest.raises(aiormq.exceptions.ChannelLockedResource) as locked:
            await channel.declare_queue("reports", exclusive=True)
        assert "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue " \
            f"'reports' in vhost '{amqp_broker.vhost}'" in str(locked.value)


async def test_a_bind_refused_with_404_and_a_declare_with_406_kiltmq(
    amqp_broker: BrokerFixture,
) -> None:
    amqp_broker.faults.refuse("queue.bind", 404)
    amqp_broker.faults.refuse("exchange.declare", 406, name="events")
    async with kiltmq.connect(amqp_broker.url) as conn:
        channel = await conn.channel()
        await channel.queue_declare("q")
        with pytest.raises(AMQPError) as closed:
            await channel.queue_bind("q", "amq.topic", "a.b")
        assert closed.value.reply_code == 404
        assert closed.value.reply_text == (
            f"NOT_FOUND - no exchange 'amq.topic' in vhost '{amqp_broker.vhost}'"
        )
        channel = await conn.channel()
        with pytest.raises(AMQPError) as inequivalent:
            await channel.exchange_declare("events", "topic", durable=True)
        assert inequivalent.value.reply_code == 406
        assert inequivalent.value.reply_text == (
            f"PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'events' in "
            f"vhost '{amqp_broker.vhost}': received 'true' but current is 'false'"
        )


def test_refusing_an_unknown_method_is_an_error(amqp_broker: BrokerFixture) -> None:
    with pytest.raises(ValueError, match="cannot refuse"):
        amqp_broker.faults.refuse("basic.publish", 403)


# -- scopes: one channel, the whole broker ---------------------------------------------------


async def test_nacks_held_confirms_and_refusals_limited_to_one_channel_kiltmq(
    amqp_broker: BrokerFixture,
) -> None:
    async with kiltmq.connect(amqp_broker.url) as conn:
        first = await conn.channel()
        second = await conn.channel()
        for channel in (first, second):
            await channel.confirm_select()
        await first.queue_declare("q")
        amqp_broker.faults.nack_publishes(1, channel=second.number)
        await first.basic_publish(b"first", routing_key="q")  # not this channel's
        with pytest.raises(PublishNacked):
            await second.basic_publish(b"second", routing_key="q")
        hold = amqp_broker.faults.hold_confirms(channel=first.number)
        await second.basic_publish(b"not held", routing_key="q")
        held = asyncio.ensure_future(first.basic_publish(b"held", routing_key="q"))
        await amqp_broker.wait_messages_async("q", 3)
        assert not held.done()
        hold.release()
        await asyncio.wait_for(held, TIMEOUT)
        amqp_broker.faults.refuse("queue.declare", 404, channel=second.number)
        await first.queue_declare("free")
        with pytest.raises(AMQPError) as refused:
            await second.queue_declare("refused")
        assert refused.value.reply_code == 404
    assert amqp_broker.queue("q").bodies == [b"first", b"not held", b"held"]


@pytest.mark.kiltmq_broker(scope="function")
def test_a_fault_for_the_whole_broker_reaches_every_vhost_pika(
    amqp_broker: BrokerFixture,
) -> None:
    other = amqp_broker.add_vhost("other")
    own_only = amqp_broker.faults.refuse("queue.declare", 403, name="mine")
    everywhere = amqp_broker.faults.refuse(
        "queue.declare", 406, name="theirs", vhost=None, count=2
    )
    there = pika_connection(other.url, "there")
    here = pika_connection(amqp_broker.url, "here")
    try:
        channel = there.channel()
        channel.queue_declare("mine")  # the fixture's vhost only: not refused there
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.queue_declare("theirs")
        assert refused.value.reply_code == 406
        assert "in vhost 'other'" in refused.value.reply_text
        assert own_only.active and everywhere.active  # one of two refusals left
        amqp_broker.faults.close_connection(None)  # the fixture's vhost's only
        assert amqp_broker.wait_connections(0) == []
        assert [c.name for c in amqp_broker.connections(vhost=None)] == ["there"]
        amqp_broker.faults.close_connection(None, vhost=None)  # every connection
        assert amqp_broker.wait_connections(0, vhost=None) == []
        for conn in (there, here):
            with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
                conn.channel()
    finally:
        for conn in (there, here):
            if conn.is_open:
                conn.close()


# -- closing and dropping ------------------------------------------------------------------


def test_a_channel_closed_after_two_methods_pika(amqp_broker: BrokerFixture) -> None:
    conn = pika_connection(amqp_broker.url, "worker")
    try:
        channel = conn.channel()
        amqp_broker.faults.close_channel(
            "worker", channel.channel_number, reply_code=406,
            reply_text="PRECONDITION_FAILED - unknown delivery tag 7", after=2,
        )
        channel.queue_declare("one")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
            channel.queue_declare("two")
            conn.process_data_events(0.2)
            channel.queue_declare("three")
        assert (closed.value.reply_code, closed.value.reply_text) == (
            406, "PRECONDITION_FAILED - unknown delivery tag 7"
        )
        assert amqp_broker.has_queue("two")
        assert not amqp_broker.has_queue("three")
        assert conn.is_open
    finally:
        conn.close()


async def test_a_connection_closed_now_is_recovered_by_aio_pika(
    amqp_broker: BrokerFixture,
) -> None:
    connection = await aio_pika.connect_robust(
        amqp_broker.url, client_properties={"connection_name": "orders"},
        reconnect_interval=0.1,
    )
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("orders")
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                await received.put(message.body)

        await queue.consume(on_message)
        amqp_broker.faults.close_connection("orders", reply_code=320,
                                            reply_text="CONNECTION_FORCED - node down")
        await amqp_broker.wait_connections_async(0, "orders")
        await amqp_broker.wait_connections_async(1, "orders")
        await amqp_broker.wait_consumers_async("orders")
        amqp_broker.publish("", "orders", b"after")
        assert await asyncio.wait_for(received.get(), TIMEOUT) == b"after"


async def test_a_partition_after_some_methods_is_survived_by_kiltmq(
    amqp_broker: BrokerFixture,
) -> None:
    async with kiltmq.connect(amqp_broker.url, name="billing") as conn:
        channel = await conn.channel()
        await channel.queue_declare("bills")
        amqp_broker.faults.drop_connection("billing", after=1)
        await channel.basic_publish(b"b1", routing_key="bills")  # then the TCP reset
        await amqp_broker.wait_messages_async("bills")
        await amqp_broker.wait_connections_async(1, "billing")  # a new one
        await channel.basic_publish(b"b2", routing_key="bills")  # once recovered
        assert (await amqp_broker.wait_messages_async("bills", 2)).bodies == [b"b1", b"b2"]
        assert conn.recoveries == 1


# -- alarms ------------------------------------------------------------------------------


def test_publishers_blocked_until_the_alarm_clears_pika(amqp_broker: BrokerFixture) -> None:
    conn = pika_connection(amqp_broker.url, "producer")
    events: list[str] = []
    conn.add_on_connection_blocked_callback(
        lambda _c, frame: events.append(f"blocked: {frame.method.reason}")
    )
    conn.add_on_connection_unblocked_callback(lambda _c, _f: events.append("unblocked"))
    try:
        channel = conn.channel()
        channel.queue_declare("metrics")
        alarm = amqp_broker.faults.alarm("memory")
        channel.basic_publish("", "metrics", b"m1")
        while not events:
            conn.process_data_events(0.05)
        assert events == ["blocked: low on memory"]
        alarm.release()
        while len(events) < 2:
            conn.process_data_events(0.05)
        assert events == ["blocked: low on memory", "unblocked"]
        assert amqp_broker.wait_messages("metrics").bodies == [b"m1"]
    finally:
        conn.close()


def test_only_rabbitmqs_alarms_can_be_raised(amqp_broker: BrokerFixture) -> None:
    with pytest.raises(ValueError, match="memory"):
        amqp_broker.faults.alarm("cpu")


# -- restart -----------------------------------------------------------------------------


@pytest.mark.kiltmq_broker(durable=True)
async def test_a_robust_consumer_survives_a_restart_aio_pika(
    amqp_broker: BrokerFixture,
) -> None:
    connection = await aio_pika.connect_robust(
        amqp_broker.url, client_properties={"connection_name": "robust"},
        reconnect_interval=0.1,
    )
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("jobs", durable=True)
        await channel.declare_queue("scratch")
        await channel.default_exchange.publish(
            aio_pika.Message(b"persistent", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            "jobs",
        )
        await channel.default_exchange.publish(aio_pika.Message(b"transient"), "jobs")
        await amqp_broker.wait_messages_async("jobs", 2)
        reconnected = asyncio.Event()
        connection.reconnect_callbacks.add(lambda *_: reconnected.set())
        await asyncio.to_thread(amqp_broker.restart)
        assert amqp_broker.queue("jobs").bodies == [b"persistent"]
        assert not amqp_broker.has_queue("scratch")

        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                await received.put(message.body)

        await asyncio.wait_for(reconnected.wait(), 15)
        await queue.consume(on_message)
        assert await asyncio.wait_for(received.get(), TIMEOUT) == b"persistent"


@pytest.mark.kiltmq_broker(durable=True)
async def test_faults_and_alarms_set_before_a_restart_go_on_after_it_kiltmq(
    amqp_broker: BrokerFixture,
) -> None:
    refusal = amqp_broker.faults.refuse("queue.declare", 403, name="tasks")
    hold = amqp_broker.faults.hold_confirms(connection="shop")
    alarm = amqp_broker.faults.alarm("disk")
    await asyncio.to_thread(amqp_broker.restart)
    assert [refusal.active, hold.active, alarm.active] == [True, True, True]
    assert amqp_broker.call_in_loop(lambda: "disk" in amqp_broker.broker.alarms)
    alarm.release()
    assert not amqp_broker.call_in_loop(lambda: bool(amqp_broker.broker.alarms))
    async with kiltmq.connect(amqp_broker.url, name="shop") as conn:
        channel = await conn.channel()
        with pytest.raises(AMQPError) as refused:
            await channel.queue_declare("tasks")  # still refused after the restart
        assert refused.value.reply_code == 403
        assert not refusal.active
        channel = await conn.channel()
        await channel.queue_declare("tasks")
        await channel.confirm_select()
        publish = asyncio.ensure_future(channel.basic_publish(b"held", routing_key="tasks"))
        await amqp_broker.wait_messages_async("tasks")
        await asyncio.sleep(0.05)
        assert not publish.done()  # its confirm is still held
        hold.release()
        await asyncio.wait_for(publish, TIMEOUT)


def test_a_shared_or_memory_only_broker_cannot_restart(amqp_broker: BrokerFixture) -> None:
    with pytest.raises(RuntimeError, match="of the test's own"):
        amqp_broker.restart()


# -- the faults end with the test ------------------------------------------------------------


def test_faults_leave_nothing_behind(amqp_broker: BrokerFixture) -> None:
    conn = pika_connection(amqp_broker.url, "clean")
    try:
        amqp_broker.faults.hold_confirms()
        amqp_broker.faults.refuse("queue.declare", 403)
        conn.channel()
        patched = amqp_broker.call_in_loop(
            lambda: sorted({
                key for c in amqp_broker.broker.connections
                for key in c.session.__dict__ if key == "handle"
            })
        )
        assert patched == ["handle"]
        amqp_broker.faults.clear()
        assert amqp_broker.call_in_loop(
            lambda: not engine_of(amqp_broker.broker).faults and all(
                "handle" not in c.session.__dict__ and all(
                    "flush_confirms" not in ch.__dict__ for ch in c.session.channels.values()
                )
                for c in amqp_broker.broker.connections
            )
        )
        conn.channel().queue_declare("free")  # no longer refused
    finally:
        conn.close()

