"""The broker's clock under the test's control: TTLs, queue expiry, dead-lettering on
expiry, the consumer timeout, heartbeats, the handshake and stalled-content timeouts all
follow ``amqp_broker.clock.advance``, seen through pika, aio-pika, kombu and kiltmq
(each test uses ``amqp_broker.url``: this project's conftest has an ``amqp_url`` of its
own)."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import aio_pika
import pika
import pika.exceptions
import pytest
from kombu.connection import Connection as KombuConnection

import kiltmq
from kiltmq.bench.rawclient import RawClient
from kiltmq.protocol import spec
from kiltmq.protocol.frames import content_header_payload, encode_frame, method_frame
from kiltmq.testing import BrokerFixture, ControlledClock

TIMEOUT = 5.0
HALF_AN_HOUR = 1800


def pika_connection(url: str, name: str, heartbeat: int | None = None) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.socket_timeout = TIMEOUT
    params.connection_attempts = 1
    params.client_properties = {"connection_name": name}
    if heartbeat is not None:
        params.heartbeat = heartbeat
    return pika.BlockingConnection(params)


# -- the clock itself ------------------------------------------------------------------------


async def test_advance_runs_due_timers_in_order_at_their_time() -> None:
    clock = ControlledClock(frozen=True)
    clock.attach(asyncio.get_running_loop())
    start = clock.time()
    seen: list[tuple[str, float]] = []
    clock.call_later(10, lambda: seen.append(("ten", clock.time() - start)))
    clock.call_later(5, lambda: seen.append(("five", clock.time() - start)))
    cancelled = clock.call_later(7, lambda: seen.append(("seven", clock.time() - start)))
    clock.call_later(20, lambda: seen.append(("twenty", clock.time() - start)))
    cancelled.cancel()
    clock.advance(12)
    assert seen == [("five", 5.0), ("ten", 10.0)]
    assert clock.time() - start == 12.0
    assert clock.pending == 1
    await asyncio.sleep(0)
    assert clock.time() - start == 12.0  # frozen: only advance moves it


async def test_a_timer_set_while_advancing_runs_within_the_same_advance() -> None:
    clock = ControlledClock(frozen=True)
    clock.attach(asyncio.get_running_loop())
    ticks: list[float] = []
    start = clock.time()

    def tick() -> None:
        ticks.append(clock.time() - start)
        clock.call_later(30, tick)

    clock.call_later(30, tick)
    clock.advance(100)
    assert ticks == [30.0, 60.0, 90.0]


async def test_a_running_clock_fires_timers_in_real_time_and_after_a_jump() -> None:
    clock = ControlledClock()
    clock.attach(asyncio.get_running_loop())
    fired = asyncio.Event()
    clock.call_later(0.01, fired.set)
    await asyncio.wait_for(fired.wait(), TIMEOUT)
    later = asyncio.Event()
    clock.call_later(3600, later.set)
    wall = clock.wall()
    clock.advance(3600)
    assert later.is_set()
    assert clock.wall() >= wall + 3600
    clock.freeze()
    frozen_at = clock.time()
    await asyncio.sleep(0.01)
    assert clock.time() == frozen_at
    clock.resume()
    assert clock.time() >= frozen_at
    with pytest.raises(ValueError):
        clock.advance(-1)


# -- TTL, expiry and dead-lettering ----------------------------------------------------------


async def test_a_half_hour_ttl_dead_letters_with_the_time_of_expiry_kiltmq(
    amqp_broker: BrokerFixture
) -> None:
    amqp_broker.clock.freeze()
    async with kiltmq.connect(amqp_broker.url) as conn:
        channel = await conn.channel()
        await channel.queue_declare("expired-orders")
        await channel.queue_declare("orders", arguments={
            "x-message-ttl": HALF_AN_HOUR * 1000,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "expired-orders",
        })
        await channel.basic_publish(b"order 1", routing_key="orders")
        await amqp_broker.wait_messages_async("orders")
        published_at = amqp_broker.clock.wall()

        amqp_broker.clock.advance(HALF_AN_HOUR - 1)
        assert amqp_broker.queue("orders").bodies == [b"order 1"]
        amqp_broker.clock.advance(1)
        assert amqp_broker.queue("orders").message_count == 0

        dead = (await amqp_broker.wait_messages_async("expired-orders")).messages[0]
        death = dead.headers["x-death"][0]
        assert (death["reason"], death["queue"]) == ("expired", "orders")
        assert death["time"] == datetime.fromtimestamp(int(published_at) + HALF_AN_HOUR, UTC)
        got = await channel.basic_get("expired-orders", no_ack=True)
        assert got is not None and got.body == b"order 1"


def test_per_message_expiration_and_queue_expiry_pika(
    amqp_broker: BrokerFixture
) -> None:
    amqp_broker.clock.freeze()
    conn = pika_connection(amqp_broker.url, "pika-ttl")
    try:
        channel = conn.channel()
        channel.queue_declare("reports")
        channel.queue_declare("scratch", arguments={"x-expires": 3_600_000})
        channel.basic_publish("", "reports", b"soon", pika.BasicProperties(expiration="60000"))
        channel.basic_publish("", "reports", b"later", pika.BasicProperties(expiration="600000"))
        amqp_broker.wait_messages("reports", 2)

        amqp_broker.clock.advance(60)
        assert amqp_broker.queue("reports").bodies == [b"later"]
        amqp_broker.clock.advance(3540)
        assert amqp_broker.queue("reports").bodies == []
        assert not amqp_broker.has_queue("scratch")
        assert conn.is_open  # an hour passed; heartbeats were kept up meanwhile
        conn.process_data_events(0)
    finally:
        conn.close()


def test_a_policys_message_ttl_follows_the_clock_kombu(
    amqp_broker: BrokerFixture
) -> None:
    amqp_broker.clock.freeze()
    amqp_broker.set_policy("short-lived", "^tasks$", {"message-ttl": 600_000}, apply_to="queues")
    with KombuConnection(amqp_broker.url) as conn:  # type: ignore[no-untyped-call]
        queue = conn.SimpleQueue("tasks")
        queue.put({"task": "hem"})
        amqp_broker.wait_messages("tasks")
        amqp_broker.clock.advance(599)
        assert amqp_broker.queue("tasks").message_count == 1
        amqp_broker.clock.advance(1)
        assert amqp_broker.queue("tasks").message_count == 0
        queue.close()


# -- consumer timeout --------------------------------------------------------------------


async def test_an_unacked_delivery_hits_the_consumer_timeout_aio_pika(
    amqp_broker: BrokerFixture
) -> None:
    connection = await aio_pika.connect(amqp_broker.url)
    async with connection:
        channel = await connection.channel()
        closed: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

        def on_close(_sender: object, exc: BaseException | None = None) -> None:
            if not closed.done():
                closed.set_result(exc)

        channel.close_callbacks.add(on_close)
        queue = await channel.declare_queue("slow-jobs")
        received = asyncio.Event()

        async def hold(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            received.set()  # and never ack

        await queue.consume(hold)
        amqp_broker.publish("", "slow-jobs", b"job")
        await asyncio.wait_for(received.wait(), TIMEOUT)

        amqp_broker.clock.advance(HALF_AN_HOUR + 60)
        exc = await asyncio.wait_for(closed, TIMEOUT)
        assert isinstance(exc, aio_pika.exceptions.ChannelPreconditionFailed)
        assert "delivery acknowledgement on channel 1 timed out" in str(exc)
        info = await amqp_broker.wait_messages_async("slow-jobs")
        assert info.messages[0].redelivered is True


# -- connections: heartbeats, handshake, stalled content -------------------------------------


def test_heartbeats_lapse_only_when_the_client_is_silent_pika(
    amqp_broker: BrokerFixture
) -> None:
    conn = pika_connection(amqp_broker.url, "pika-hb", heartbeat=60)
    try:
        amqp_broker.clock.advance(600)  # the client is taken to have kept them up
        assert [c.name for c in amqp_broker.connections()] == ["pika-hb"]
        amqp_broker.clock.advance(200, silent=True)  # two intervals without a word
        amqp_broker.wait_connections(0, "pika-hb")
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            conn.process_data_events(TIMEOUT)
    finally:
        if conn.is_open:
            conn.close()


def test_a_connection_that_never_speaks_hits_the_handshake_timeout(
    amqp_broker: BrokerFixture,
) -> None:
    with socket.create_connection((amqp_broker.host, amqp_broker.port), TIMEOUT) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        assert sock.recv(7)[:1] == b"\x01"  # connection.start
        amqp_broker.clock.advance(10)  # the default handshake timeout
        assert closed_by_peer(sock)


def closed_by_peer(sock: socket.socket) -> bool:
    """Read until the peer closes (True); TimeoutError if it does not."""
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass  # aborted: RabbitMQ closes the socket without a word too
    return True


async def test_a_stalled_body_closes_the_connection_when_the_clock_moves(
    amqp_broker: BrokerFixture,
) -> None:
    client = await RawClient.connect(amqp_broker.port, vhost=amqp_broker.vhost)
    await client.open_channel(1)
    await client.open_channel(2)
    client.send_raw(method_frame(1, spec.BasicPublish(routing_key="q")))
    client.send_raw(encode_frame(2, 1, content_header_payload(60, 10, None)))
    client.send_raw(encode_frame(3, 1, b"x"))
    ok = await client.call(2, spec.QueueDeclare("q"))  # the broker read the body frame
    assert isinstance(ok, spec.QueueDeclareOk)
    amqp_broker.clock.advance(90)  # checks every 15 s, 60 s without progress
    close = await client.method(0)
    assert isinstance(close, spec.ConnectionClose)
    assert close.reply_code == 505
    assert close.reply_text == (
        "UNEXPECTED_FRAME - content body on channel 1 incomplete (1 of 10 bytes) "
        "with no body frame for 60s"
    )
    await client.disconnect()


@pytest.mark.kiltmq_broker(clock="frozen")
def test_a_frozen_clock_holds_a_short_ttl_until_advanced(
    amqp_broker: BrokerFixture
) -> None:
    assert amqp_broker.clock.frozen
    conn = pika_connection(amqp_broker.url, "frozen")
    try:
        channel = conn.channel()
        channel.queue_declare("brief", arguments={"x-message-ttl": 1})
        channel.queue_declare("marker")
        channel.basic_publish("", "brief", b"kept")
        channel.basic_publish("", "marker", b"after")
        amqp_broker.wait_messages("marker")
        conn.process_data_events(0.05)  # real time passes; the broker's does not
        assert amqp_broker.queue("brief").bodies == [b"kept"]
        amqp_broker.clock.advance(0.001)
        assert amqp_broker.queue("brief").bodies == []
    finally:
        conn.close()


def test_the_shared_brokers_clock_flows_again_after_a_test_froze_it(
    amqp_broker_session: BrokerFixture,
) -> None:
    assert not amqp_broker_session.clock.frozen
