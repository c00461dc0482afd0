"""The synchronous facade: same client underneath, usable from several threads."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

import kiltmq
import kiltmq.blocking
from kiltmq import BlockedTimeout, NotFound
from kiltmq.broker import Broker


def test_blocking_round_trip(amqp_url: str) -> None:
    with kiltmq.blocking.connect(amqp_url) as conn:
        with conn.channel() as ch:
            queue = ch.queue_declare("", exclusive=True).queue
            ch.confirm_select()
            ch.basic_publish(b"hello", routing_key=queue)
            message = ch.basic_get(queue)
            assert message is not None and message.body == b"hello"
            message.ack()
            assert ch.basic_get(queue) is None
            with pytest.raises(NotFound):
                ch.queue_declare("test.no-such-queue", passive=True)
            assert ch.is_closed
        assert conn.is_open
    assert conn.is_closed


def test_several_threads_publish_and_consume(amqp_url: str) -> None:
    publishers, per_thread = 4, 250
    with kiltmq.blocking.connect(amqp_url) as conn:
        setup = conn.channel()
        queue = setup.queue_declare("", exclusive=True).queue
        shared = conn.channel()  # publishers share one channel
        shared.confirm_select()
        received: Counter[bytes] = Counter()
        errors: list[BaseException] = []
        consuming = threading.Event()

        def consume() -> None:
            try:
                ch = conn.channel()
                ch.basic_qos(50)
                consumer = ch.consume(queue, inactivity_timeout=15)
                consuming.set()
                for message in consumer:
                    received[message.body] += 1
                    message.ack()
                    if sum(received.values()) == publishers * per_thread:
                        consumer.cancel()
            except BaseException as exc:
                errors.append(exc)

        def publish(n: int) -> None:
            try:
                for i in range(per_thread):
                    shared.basic_publish(f"{n}-{i}".encode(), routing_key=queue)
            except BaseException as exc:
                errors.append(exc)

        consumer_thread = threading.Thread(target=consume)
        consumer_thread.start()
        assert consuming.wait(15)
        threads = [threading.Thread(target=publish, args=(n,)) for n in range(publishers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        consumer_thread.join(60)
        assert not errors
        assert len(received) == publishers * per_thread
        assert set(received.values()) == {1}


def test_blocking_callback_consumer(amqp_url: str) -> None:
    with kiltmq.blocking.connect(amqp_url) as conn:
        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=True).queue
        done = threading.Event()
        got: list[bytes] = []

        def handler(message: kiltmq.Message) -> None:
            got.append(message.body)
            message.ack()
            if len(got) == 3:
                done.set()

        tag = ch.basic_consume(queue, handler)
        for i in range(3):
            ch.basic_publish(str(i), routing_key=queue)
        assert done.wait(15)
        ch.basic_cancel(tag)
        assert got == [b"0", b"1", b"2"]


def test_blocking_connect_errors() -> None:
    with pytest.raises(kiltmq.ConnectError):
        kiltmq.blocking.connect("amqp://guest:guest@127.0.0.1:1/?connection_timeout=2000")


def test_blocking_calls_wait_as_long_as_the_async_client_does(embedded_broker: Broker) -> None:
    """The facade's own wait covers the call's timeout and blocked_timeout, however they
    compare with rpc_timeout, and the call's own errors come through as they are: a
    publish on a blocked connection ends in BlockedTimeout."""
    with kiltmq.blocking.connect(
        embedded_broker.url, rpc_timeout=0.3, blocked_timeout=1.0, recovery=False
    ) as conn:
        conn._margin = 0.2  # the facade's extra wait, short enough to matter here
        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=True, timeout=5).queue
        embedded_broker.call_in_loop(embedded_broker.set_alarm, True)
        try:
            ch.basic_publish(b"blocks the connection", routing_key="test.nowhere")
            deadline = time.monotonic() + 10
            while not conn.blocked:
                assert time.monotonic() < deadline, "connection.blocked never came"
                time.sleep(0.02)
            with pytest.raises(BlockedTimeout):
                ch.basic_publish(b"never sent", routing_key=queue)
        finally:
            embedded_broker.call_in_loop(embedded_broker.set_alarm, False)
        ch.basic_publish(b"sent", routing_key=queue)
        message = ch.basic_get(queue, no_ack=True, timeout=5)
        assert message is not None and message.body == b"sent"
