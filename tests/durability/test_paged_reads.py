"""Paged-out bodies are read back off the event loop, ahead of delivery, in order.

A durable queue with a small page limit holds a backlog of persistent messages (paged
out as they arrive, and all of them after a restart); a consumer drains it. Checked:
every message arrives once, in publication order, with its body and properties; the
queries that read bodies back run in the store's reader thread, never on the broker's
event loop; and a transient publish with a confirm on another connection is answered
while the backlog is being read back.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pika
import pytest

from kiltmq.broker import Broker, SQLiteStore

from .conftest import blocking

pytestmark = pytest.mark.timeout(120)

COUNT = 3000
QUEUE = "backlog"


def _body(i: int) -> bytes:
    return b"%06d:" % i + bytes([i % 251]) * (i % 700)


def _start(data: Path) -> Broker:
    broker = Broker(port=0, store=SQLiteStore(data, page_messages=50))
    broker.start_in_thread()
    return broker


def _trace_reads(broker: Broker) -> list[str]:
    """The threads that run the queries reading bodies back, from now on."""
    store = broker.store
    assert isinstance(store, SQLiteStore)
    threads: list[str] = []

    def traced(sql: str) -> None:
        if "SELECT pos, exchange" in sql:
            threads.append(threading.current_thread().name)

    def install() -> None:
        assert store.body_reader is not None and store.body_reader.db is not None
        store.body_reader.db.set_trace_callback(traced)
        loop_reader = store._reader  # the connection for reads that must be answered now
        assert loop_reader is not None
        loop_reader.set_trace_callback(traced)

    broker.call_in_loop(install)
    return threads


def _drain(broker: Broker, expect_redelivered: bool) -> None:
    loop_thread = broker.call_in_loop(lambda: threading.current_thread().name)
    threads = _trace_reads(broker)
    conn = blocking(broker.url)
    prober = blocking(broker.url)
    try:
        probe = prober.channel()
        probe.confirm_delivery()
        probe.queue_declare("probe", exclusive=True)
        channel = conn.channel()
        channel.basic_qos(prefetch_count=100)
        for seen, (method, props, body) in enumerate(
            channel.consume(QUEUE, inactivity_timeout=30), 1
        ):
            assert method is not None, f"stalled after {seen - 1} messages"
            assert body == _body(seen - 1)
            assert props.delivery_mode == 2 and props.headers == {"n": seen - 1}
            assert method.redelivered is expect_redelivered
            channel.basic_ack(method.delivery_tag)
            if seen % 500 == 0:  # another connection is answered meanwhile
                probe.basic_publish("", "probe", b"ping")
            if seen == COUNT:
                break
        channel.cancel()
        assert channel.queue_declare(QUEUE, durable=True, passive=True).method.message_count == 0
    finally:
        conn.close()
        prober.close()
    assert threads, "no body was read back"
    assert set(threads) == {"kiltmq-store-reader"}, (set(threads), loop_thread)


def test_a_paged_backlog_is_read_back_off_the_loop_in_order(tmp_path: Path) -> None:
    data = tmp_path / "data"
    broker = _start(data)
    try:
        with blocking(broker.url) as conn:
            channel = conn.channel()
            channel.confirm_delivery()
            channel.queue_declare(QUEUE, durable=True)
            for i in range(COUNT):
                channel.basic_publish(
                    "", QUEUE, _body(i), pika.BasicProperties(delivery_mode=2, headers={"n": i})
                )
        paged = broker.call_in_loop(lambda: broker.vhosts["/"].queues[QUEUE].paged_bytes)
        assert paged > 0  # most of the backlog is in the store only
        _drain(broker, expect_redelivered=False)
        with blocking(broker.url) as conn:  # again, all paged out by a restart
            channel = conn.channel()
            channel.tx_select()
            for i in range(COUNT):
                channel.basic_publish(
                    "", QUEUE, _body(i), pika.BasicProperties(delivery_mode=2, headers={"n": i})
                )
            channel.tx_commit()
    finally:
        broker.stop_thread()
    broker = _start(data)
    try:
        _drain(broker, expect_redelivered=False)
    finally:
        broker.stop_thread()
