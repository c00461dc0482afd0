"""The memory alarm (``Broker(memory_limit=...)``, connection.blocked) counts the message
bodies in memory, not those paged out to the store."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pika
import pytest

from kiltmq.broker import Broker, SQLiteStore
from kiltmq.broker.queue import Queue
from kiltmq.broker.store import PagedMessage

from .conftest import blocking

pytestmark = pytest.mark.timeout(60)

BODY = b"k" * 10_240
COUNT = 200  # 2 MB of bodies, of which about PAGE_MESSAGES stay in memory
PAGE_MESSAGES = 20
LIMIT = 600_000
WAIT = 20.0


def _poll(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {WAIT} s waiting for {what}")
        time.sleep(0.02)


def _start(data: Path) -> Broker:
    broker = Broker(
        port=0,
        store=SQLiteStore(data, page_messages=PAGE_MESSAGES),
        memory_limit=LIMIT,
        memory_check_interval=0.05,
    )
    broker.start_in_thread()
    return broker


def _paged(queue: Queue) -> tuple[int, int]:
    """The queue's count of paged-out bytes, and the same summed from its entries."""
    actual = sum(e.message.size for e in queue.ready if type(e.message) is PagedMessage)
    return queue.paged_bytes, actual


def test_paged_out_bodies_do_not_count_against_the_memory_limit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    broker = _start(data)
    try:
        blocked: list[str] = []
        conn = blocking(broker.url)
        conn.add_on_connection_blocked_callback(lambda _c, frame: blocked.append("blocked"))
        conn.add_on_connection_unblocked_callback(lambda _c, frame: blocked.append("unblocked"))
        with contextlib.closing(conn):
            ch = conn.channel()
            ch.confirm_delivery()
            ch.queue_declare("big", durable=True)
            for _ in range(COUNT):
                ch.basic_publish("", "big", BODY, pika.BasicProperties(delivery_mode=2))

            def state() -> tuple[int, tuple[int, int]]:
                return broker.memory_used(), _paged(broker.vhosts["/"].queues["big"])

            used, (counted, actual) = broker.call_in_loop(state)
            assert counted == actual >= (COUNT - PAGE_MESSAGES - 1) * len(BODY)
            assert used < LIMIT, used  # 2 MB queued, but only ~200 KB of it in memory
            conn.process_data_events(0)
            assert blocked == []

            # consuming reads bodies back: the count follows
            for _ in range(COUNT // 2):
                method, _props, body = ch.basic_get("big", auto_ack=True)
                assert method is not None and body == BODY
            used, (counted, actual) = broker.call_in_loop(state)
            assert counted == actual and counted < COUNT // 2 * len(BODY)

            # bodies held in memory (transient messages) do raise the alarm; another
            # connection, which does not publish, takes them away again
            transient = conn.channel()
            for _ in range(LIMIT // len(BODY) + 10):
                transient.basic_publish("", "big", BODY)
            _poll(lambda: broker.call_in_loop(lambda: broker.alarm), "the memory alarm")
            transient.basic_publish("", "big", BODY)  # as RabbitMQ: blocked when publishing
            _poll(lambda: conn.process_data_events(0) or blocked == ["blocked"],
                  "connection.blocked")
            with contextlib.closing(blocking(broker.url)) as other:
                other.channel().queue_purge("big")
            _poll(lambda: conn.process_data_events(0) or blocked == ["blocked", "unblocked"],
                  "connection.unblocked")
            ch.queue_purge("big")  # after the rest of the publishes, on this connection
            assert broker.call_in_loop(state) == (0, (0, 0))

            # paged-out messages that expire leave the count too
            expiring = pika.BasicProperties(delivery_mode=2, expiration="500")
            for _ in range(PAGE_MESSAGES * 2):
                transient.basic_publish("", "big", BODY, expiring)  # no wait for confirms
            _poll(lambda: broker.call_in_loop(state)[1][0] > 0, "the messages paged out")
            _poll(lambda: broker.call_in_loop(state) == (0, (0, 0)), "the messages to expire")
    finally:
        broker.stop_thread()


def test_recovered_messages_count_as_paged_out(tmp_path: Path) -> None:
    data = tmp_path / "data"
    broker = _start(data)
    try:
        with contextlib.closing(blocking(broker.url)) as conn:
            ch = conn.channel()
            ch.confirm_delivery()
            ch.queue_declare("kept", durable=True)
            for _ in range(10):
                ch.basic_publish("", "kept", BODY, pika.BasicProperties(delivery_mode=2))
    finally:
        broker.stop_thread()
    broker = _start(data)
    try:
        queue = broker.vhosts["/"].queues["kept"]
        assert broker.call_in_loop(lambda: _paged(queue)) == (10 * len(BODY),) * 2
        assert broker.call_in_loop(broker.memory_used) == 10 * Broker.MESSAGE_OVERHEAD
        with contextlib.closing(blocking(broker.url)) as conn:
            ch = conn.channel()
            method, _props, body = ch.basic_get("kept", auto_ack=True)
            assert method is not None and body == BODY
        # one read brought the rest back too (PAGE_IN_BATCH)
        assert broker.call_in_loop(lambda: _paged(queue)) == (0, 0)
        assert broker.call_in_loop(broker.memory_used) == 9 * (len(BODY) + Broker.MESSAGE_OVERHEAD)
    finally:
        broker.stop_thread()
