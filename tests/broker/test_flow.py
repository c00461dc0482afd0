"""Flow control, resource alarms, heartbeats with a real client, and shutdown."""

from __future__ import annotations

import time

import pika
import pytest
from pika.exceptions import ConnectionClosedByBroker

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.protocol import spec

from .conftest import Connect

pytestmark = pytest.mark.timeout(90)


async def test_a_consumer_that_does_not_read_is_not_flooded(abroker: Broker) -> None:
    """Deliveries stop when the consumer's socket is full; the rest waits in the queue,
    and other connections carry on."""
    sleeper = await RawClient.connect(abroker.port)
    await sleeper.open_channel(1)
    await sleeper.call(1, spec.QueueDeclare("flood"))
    ok = await sleeper.call(1, spec.BasicConsume("flood", "sleepy", no_ack=True))
    assert isinstance(ok, spec.BasicConsumeOk)
    sleeper.pause_reading()  # from now on the sleeper never reads its socket
    publisher = await RawClient.connect(abroker.port)
    await publisher.open_channel(1)
    await publisher.call(1, spec.ConfirmSelect())
    body = b"x" * 32768
    for _ in range(1500):
        publisher.publish(1, "", "flood", body)
    await publisher.drain()
    confirmed = 0
    while confirmed < 1500:
        ack = await publisher.method(1)
        assert isinstance(ack, spec.BasicAck)
        confirmed = ack.delivery_tag
    declared = await publisher.call(1, spec.QueueDeclare("flood", passive=True))
    assert isinstance(declared, spec.QueueDeclareOk)
    assert declared.message_count >= 1000  # at most a few MB went to the sleeper
    assert declared.consumer_count == 1
    # another consumer gets the backlog
    await publisher.call(1, spec.QueuePurge("flood"))
    await sleeper.disconnect()
    await publisher.disconnect()


def test_memory_alarm_blocks_publishers(url: str) -> None:
    """As RabbitMQ: a connection is blocked when it publishes during the alarm; one that
    does not publish is not."""
    del url
    with Broker(port=0, memory_limit=100_000, memory_check_interval=0.05) as broker:
        events: list[str] = []
        params = pika.URLParameters(broker.url)
        publisher = pika.BlockingConnection(params)
        publisher.add_on_connection_blocked_callback(lambda *_: events.append("blocked"))
        publisher.add_on_connection_unblocked_callback(lambda *_: events.append("unblocked"))
        other = pika.BlockingConnection(params)
        other.add_on_connection_blocked_callback(lambda *_: events.append("other blocked"))
        ch = publisher.channel()
        ch.queue_declare("hog")
        for _ in range(4):
            ch.basic_publish("", "hog", b"m" * 50_000)
        deadline = time.monotonic() + 10
        while not broker.call_in_loop(lambda: broker.alarm) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert broker.alarms == {"memory"}
        publisher.process_data_events(time_limit=0.2)
        assert events == []  # nothing published since the alarm
        ch.basic_publish("", "hog", b"while blocked")
        while "blocked" not in events and time.monotonic() < deadline:
            publisher.process_data_events(time_limit=0.05)
        assert events == ["blocked"]
        other.channel().queue_purge("hog")  # consuming connections go on
        while "unblocked" not in events and time.monotonic() < deadline:
            publisher.process_data_events(time_limit=0.05)
        assert events == ["blocked", "unblocked"]
        ch.basic_publish("", "hog", b"after the alarm")
        assert ch.queue_declare("hog", passive=True).method.message_count == 1
        other.close()
        publisher.close()


def test_heartbeats_keep_a_live_client_connected() -> None:
    with Broker(port=0, heartbeat=1) as broker:
        params = pika.URLParameters(broker.url)
        conn = pika.BlockingConnection(params)
        assert conn._impl.params.heartbeat == 1
        ch = conn.channel()
        ch.queue_declare("alive")
        conn.process_data_events(time_limit=3.5)  # longer than two heartbeat timeouts
        assert conn.is_open
        ch.basic_publish("", "alive", b"still here")
        assert ch.basic_get("alive", auto_ack=True)[2] == b"still here"
        conn.close()


def test_stop_closes_connections_with_320(connect: Connect, broker: Broker) -> None:
    conn = connect()
    ch = conn.channel()
    ch.queue_declare("q")
    broker.stop_thread()
    with pytest.raises(ConnectionClosedByBroker) as info:
        conn.process_data_events(time_limit=5)
        ch.queue_declare("q", passive=True)
    assert info.value.reply_code == 320
    assert info.value.reply_text == (
        "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    )


async def test_async_context_manager_and_restart() -> None:
    broker = Broker(port=0)
    async with broker:
        port = broker.port
        client = await RawClient.connect(port)
        await client.open_channel(1)
        await client.disconnect()
    assert broker.connections == set()
    with pytest.raises(OSError):
        await RawClient.open(port)


def test_start_in_thread_reports_a_busy_port() -> None:
    with Broker(port=0) as first:
        second = Broker(port=first.port)
        with pytest.raises(OSError):
            second.start_in_thread()


def test_runs_on_uvloop() -> None:
    import asyncio
    import threading

    import uvloop

    loop = uvloop.new_event_loop()
    broker = Broker(port=0)
    loop.run_until_complete(broker.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.queue_declare("uv")
        ch.basic_publish("", "uv", b"on uvloop")
        assert ch.basic_get("uv", auto_ack=True)[2] == b"on uvloop"
        conn.close()
    finally:
        asyncio.run_coroutine_threadsafe(broker.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
