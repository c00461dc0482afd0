"""A clean restart keeps what RabbitMQ keeps, checked through pika against kiltmq
(``Broker(data_dir=...)`` stopped and started again) and, opt-in, the local RabbitMQ."""

from __future__ import annotations

import contextlib
import logging
import uuid
from pathlib import Path

import pika
import pytest

from kiltmq.broker import Broker, SQLiteStore, StoreError
from kiltmq.broker.store import PagedMessage

from .conftest import Restartable, blocking

pytestmark = pytest.mark.timeout(120)

PERSISTENT = pika.BasicProperties(delivery_mode=2)
TRANSIENT = pika.BasicProperties(delivery_mode=1)


def _exists(conn: pika.BlockingConnection, kind: str, name: str) -> bool:
    channel = conn.channel()
    try:
        if kind == "queue":
            channel.queue_declare(name, passive=True)
        else:
            channel.exchange_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 404
        return False
    channel.close()
    return True


def test_clean_restart_keeps_durable_topology_and_persistent_messages(
    target: Restartable,
) -> None:
    p = f"dur-{uuid.uuid4().hex[:8]}."
    conn = blocking(target.url)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare(p + "x", "direct", durable=True)
    ch.exchange_declare(p + "fan", "fanout", durable=True)
    ch.exchange_declare(p + "auto-x", "fanout", durable=True, auto_delete=True)
    ch.exchange_declare(p + "tx", "fanout", durable=False)
    ch.queue_declare(p + "q", durable=True)
    ch.queue_declare(p + "q2", durable=True)
    ch.queue_declare(p + "auto-q", durable=True, auto_delete=True)
    ch.queue_declare(p + "tq", durable=False)
    ch.queue_declare(p + "excl", durable=True, exclusive=True)
    ch.queue_bind(p + "q", p + "x", "k")
    ch.exchange_bind(p + "fan", p + "x", "k")  # x -> fan -> q2
    ch.queue_bind(p + "q2", p + "fan")
    ch.queue_bind(p + "q", p + "auto-x")
    for i in range(5):
        ch.basic_publish(p + "x", "k", b"p%d" % i, PERSISTENT)
    ch.basic_publish(p + "x", "k", b"transient", TRANSIENT)
    ch.basic_publish("", p + "tq", b"persistent in a transient queue", PERSISTENT)
    method, _props, body = ch.basic_get(p + "q")
    assert body == b"p0" and method is not None
    ch.basic_ack(method.delivery_tag)  # gone for good
    method, _props, body = ch.basic_get(p + "q")
    assert body == b"p1"  # delivered, left unacknowledged over the restart

    target.restart()

    with contextlib.closing(blocking(target.url)) as conn2:
        for kind, name, kept in [
            ("exchange", p + "x", True),
            ("exchange", p + "fan", True),
            ("exchange", p + "auto-x", True),  # durable auto-delete: kept, as RabbitMQ does
            ("exchange", p + "tx", False),
            ("queue", p + "q", True),
            ("queue", p + "q2", True),
            ("queue", p + "auto-q", True),
            ("queue", p + "tq", False),
            ("queue", p + "excl", False),
        ]:
            assert _exists(conn2, kind, name) is kept, (kind, name)
        ch = conn2.channel()
        got = []
        while True:
            method, _props, body = ch.basic_get(p + "q", auto_ack=True)
            if method is None:
                break
            got.append((body, method.redelivered))
        assert got == [(b"p1", True), (b"p2", False), (b"p3", False), (b"p4", False)]
        q2 = []
        while True:
            method, _props, body = ch.basic_get(p + "q2", auto_ack=True)
            if method is None:
                break
            q2.append(body)
        assert q2 == [b"p0", b"p1", b"p2", b"p3", b"p4"]
        # the bindings came back too: x -> q and x -> fan -> q2, auto-x -> q
        ch.confirm_delivery()
        ch.basic_publish(p + "x", "k", b"after", PERSISTENT)
        ch.basic_publish(p + "auto-x", "", b"fanned", PERSISTENT)
        assert ch.basic_get(p + "q", auto_ack=True)[2] == b"after"
        assert ch.basic_get(p + "q", auto_ack=True)[2] == b"fanned"
        assert ch.basic_get(p + "q2", auto_ack=True)[2] == b"after"
        for queue in ("q", "q2", "auto-q"):
            ch.queue_delete(p + queue)
        for exchange in ("x", "fan", "auto-x"):
            ch.exchange_delete(p + exchange)
    with contextlib.suppress(Exception):
        conn.close()


def test_vhosts_users_and_permissions_survive(tmp_path: Path) -> None:
    with Broker(
        port=0,
        data_dir=tmp_path,
        users={"guest": "guest", "shop": "kilts"},
        vhosts=["/", "shop"],
        permissions={"shop": {"shop": ("^orders", ".*", ".*")}, "guest": {"/": (".*",) * 3}},
    ) as broker:
        port = broker.port
        with contextlib.closing(
            blocking(f"amqp://shop:kilts@127.0.0.1:{port}/shop")
        ) as conn:
            conn.channel().queue_declare("orders", durable=True)
    # started again with no configuration at all
    with Broker(port=0, data_dir=tmp_path) as broker:
        url = f"amqp://shop:kilts@127.0.0.1:{broker.port}/shop"
        with contextlib.closing(blocking(url)) as conn:
            ch = conn.channel()
            assert ch.queue_declare("orders", passive=True).method.queue == "orders"
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                ch.queue_declare("invoices", durable=True)  # the stored regex still applies
            assert refused.value.reply_code == 403
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            blocking(f"amqp://shop:wrong@127.0.0.1:{broker.port}/shop")


def test_tx_commit_and_confirms_follow_the_disk(tmp_path: Path) -> None:
    """Committed transactions and confirmed publishes are there after a restart, in
    publication order; acks committed in a transaction are not undone."""
    with Broker(port=0, data_dir=tmp_path) as broker, contextlib.closing(
        blocking(broker.url)
    ) as conn:
        tx = conn.channel()
        tx.queue_declare("q", durable=True)
        tx.tx_select()
        for i in range(3):
            tx.basic_publish("", "q", b"tx%d" % i, PERSISTENT)
        tx.tx_commit()
        tx.basic_publish("", "q", b"rolled back", PERSISTENT)
        tx.tx_rollback()
        confirm = conn.channel()
        confirm.confirm_delivery()
        for i in range(3):
            confirm.basic_publish("", "q", b"c%d" % i, PERSISTENT)
        method, _props, body = tx.basic_get("q")
        assert body == b"tx0" and method is not None
        tx.basic_ack(method.delivery_tag)
        tx.tx_commit()
    with Broker(port=0, data_dir=tmp_path) as broker, contextlib.closing(
        blocking(broker.url)
    ) as conn:
        ch = conn.channel()
        bodies = []
        while True:
            method, _props, body = ch.basic_get("q", auto_ack=True)
            if method is None:
                break
            bodies.append(body)
        assert bodies == [b"tx1", b"tx2", b"c0", b"c1", b"c2"]


def test_paged_queue_delivers_every_body_in_order_across_a_restart(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path, page_messages=50)
    sizes = [(i * 37) % 700 for i in range(600)]
    bodies = [(b"%05d:" % i) + bytes([65 + i % 26]) * size for i, size in enumerate(sizes)]
    with Broker(port=0, store=store) as broker, contextlib.closing(
        blocking(broker.url)
    ) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("big", durable=True)
        for i, body in enumerate(bodies):
            # every tenth message transient: it stays in memory between paged ones
            ch.basic_publish("", "big", body, TRANSIENT if i % 10 == 9 else PERSISTENT)
        queue = broker.vhosts["/"].queues["big"]
        paged = broker.call_in_loop(
            lambda: sum(type(e.message) is PagedMessage for e in queue.ready)
        )
        assert paged == len([i for i in range(50, 600) if i % 10 != 9])
        ch.basic_qos(prefetch_count=64)
        received: list[bytes] = []
        for method, _props, body in ch.consume("big", inactivity_timeout=10):
            assert method is not None, "delivery stopped"
            received.append(body)
            ch.basic_ack(method.delivery_tag)
            if len(received) == 300:
                break
        ch.cancel()
        assert received == bodies[:300]
    kept = [b for i, b in enumerate(bodies[300:], 300) if i % 10 != 9]
    with Broker(port=0, store=SQLiteStore(tmp_path, page_messages=50)) as broker, \
            contextlib.closing(blocking(broker.url)) as conn:
        ch = conn.channel()
        got = []
        while True:
            method, _props, body = ch.basic_get("big", auto_ack=True)
            if method is None:
                break
            got.append(body)
        assert got == kept


def test_a_second_broker_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    with Broker(port=0, data_dir=tmp_path), pytest.raises(
        StoreError, match="is in use by another broker"
    ):
        Broker(port=0, data_dir=tmp_path).start_in_thread()


def test_a_broker_without_data_dir_says_it_is_memory_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="kiltmq.broker"), Broker(port=0):
        pass
    assert any("memory-only" in r.getMessage() for r in caplog.records)
