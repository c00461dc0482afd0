"""RabbitMQ's consumer timeout: a delivery left unacknowledged longer than
``consumer_timeout`` closes its channel with 406 and comes back redelivered."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from kiltmq.broker import Broker
from kiltmq.broker.channel.ack_timeout import AckClock
from kiltmq.broker.config import ConfigError, parse_config

from .test_cli import _start

TIMEOUT = 0.3
TEXT = (
    "PRECONDITION_FAILED - delivery acknowledgement on channel {} timed out. "
    "Timeout value used: 300 ms. This timeout value can be configured, "
    "see consumers doc guide to learn more"
)


@pytest.fixture
def conn() -> Iterator[pika.BlockingConnection]:
    with Broker(port=0, consumer_timeout=TIMEOUT) as broker:
        params = pika.URLParameters(broker.url)
        params.socket_timeout = 10
        connection = pika.BlockingConnection(params)
        yield connection
        if connection.is_open:
            connection.close()


def test_unacked_delivery_closes_the_channel_and_comes_back(
    conn: pika.BlockingConnection,
) -> None:
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"slow")
    got: list[bool] = []
    started = time.monotonic()
    with pytest.raises(ChannelClosedByBroker) as info:
        for method, _props, _body in ch.consume(q, inactivity_timeout=0.02):
            if method is not None:
                got.append(method.redelivered)
            assert time.monotonic() - started < 5, "the channel was not closed"
    elapsed = time.monotonic() - started
    assert got == [False]
    assert TIMEOUT - 0.05 <= elapsed < TIMEOUT * 4
    assert (info.value.reply_code, info.value.reply_text) == (
        406,
        TEXT.format(ch.channel_number),
    )
    # the connection goes on; the delivery is back, redelivered
    other = conn.channel()
    method, _props, body = other.basic_get(q, auto_ack=True)
    assert method is not None and method.redelivered and body == b"slow"


def test_acked_in_time_stays_open(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    for n in range(6):
        ch.basic_publish("", q, str(n).encode())
        method, _props, _body = ch.basic_get(q)
        assert method is not None
        conn.process_data_events(TIMEOUT / 3)
        ch.basic_ack(method.delivery_tag)
    conn.process_data_events(TIMEOUT * 2)
    assert ch.is_open


def test_basic_get_counts_too(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"got")
    method, _props, _body = ch.basic_get(q)
    assert method is not None
    idle = ch.queue_declare("", exclusive=True).method.queue
    started = time.monotonic()
    with pytest.raises(ChannelClosedByBroker) as info:
        for _ in ch.consume(idle, inactivity_timeout=0.02):  # waits, sees the close
            assert time.monotonic() - started < 5, "the channel was not closed"
    assert info.value.reply_code == 406


def test_no_timeout_when_disabled() -> None:
    with Broker(port=0, consumer_timeout=None) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"x")
        assert ch.basic_get(q)[0] is not None
        conn.process_data_events(0.3)
        assert ch.is_open
        conn.close()


def test_clock_records_and_expires() -> None:
    clock = AckClock()
    assert not clock.overdue(0.0, 1.0, None, 0)
    assert not clock.overdue(1.0, 1.0, 1, 3)  # tags 1..3 out by t=1
    assert not clock.overdue(1.5, 1.0, 1, 5)
    assert clock.overdue(2.0, 1.0, 1, 5)
    # tags up to 3 settled: tag 4 is known out only by t=1.5
    assert not clock.overdue(2.0, 1.0, 4, 5)
    assert clock.overdue(2.5, 1.0, 4, 5)
    assert not clock.overdue(3.0, 1.0, None, 5)


def test_config_and_defaults() -> None:
    assert parse_config({"consumer_timeout": 2.5})["consumer_timeout"] == 2.5
    assert parse_config({"consumer_timeout": 0})["consumer_timeout"] is None
    with pytest.raises(ConfigError):
        parse_config({"consumer_timeout": "30m"})
    assert Broker(port=0).consumer_timeout == 1800.0
    assert Broker(port=0, consumer_timeout=0).consumer_timeout is None


def test_command_line_option() -> None:
    proc, port = _start("--port", "0", "--memory-only", "--consumer-timeout", "0.3")
    try:
        url = f"amqp://guest:guest@127.0.0.1:{port}/"
        conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"x")
        assert ch.basic_get(q)[0] is not None
        idle = ch.queue_declare("", exclusive=True).method.queue
        with pytest.raises(ChannelClosedByBroker) as info:
            for _ in ch.consume(idle, inactivity_timeout=0.05):
                pass
        assert info.value.reply_code == 406
        assert "Timeout value used: 300 ms" in info.value.reply_text
        conn.close()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert proc.stderr is not None
        proc.stderr.close()
    result = subprocess.run(
        [sys.executable, "-m", "kiltmq", "broker", "--consumer-timeout", "-1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "kiltmq broker: --consumer-timeout must not be negative"
