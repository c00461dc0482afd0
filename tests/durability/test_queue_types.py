"""Quorum queues in the store: their type, arguments and messages (of any delivery mode)
survive a restart, and definitions carry the type. (Their behaviour towards clients is
compared with RabbitMQ in tests/compat/sc_quorum.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

import pika
import pytest

from kiltmq.broker import Broker
from kiltmq.broker.admin import Admin
from kiltmq.broker.memory import MESSAGE_OVERHEAD
from kiltmq.broker.message import Message
from kiltmq.broker.queue import QuorumQueue

from .conftest import BrokerProcess, Restartable, blocking

pytestmark = pytest.mark.timeout(60)

QUORUM = {"x-queue-type": "quorum", "x-delivery-limit": 1}


def _bodies(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> list[bytes]:
    bodies: list[bytes] = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def test_quorum_queue_keeps_its_type_and_every_message_across_a_restart(
    tmp_path: Path,
) -> None:
    with Broker(port=0, data_dir=tmp_path) as broker, contextlib.closing(
        blocking(broker.url)
    ) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("jobs", durable=True, arguments=QUORUM)
        ch.basic_publish("", "jobs", b"persistent", pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("", "jobs", b"transient", pika.BasicProperties(delivery_mode=1))
        ch.basic_publish("", "jobs", b"acked")
        ch.queue_declare("plain", durable=True)
        ch.basic_publish("", "plain", b"transient", pika.BasicProperties(delivery_mode=1))
        ch.basic_publish("", "plain", b"persistent", pika.BasicProperties(delivery_mode=2))
        ch.basic_get("jobs", auto_ack=True)  # a message acked is gone from the store too
        ch.basic_get("jobs", auto_ack=True)
        ch.basic_publish("", "jobs", b"later", pika.BasicProperties(delivery_mode=1))
    with Broker(port=0, data_dir=tmp_path) as broker, contextlib.closing(
        blocking(broker.url)
    ) as conn:
        stats = {q.name: q for q in Admin(broker).queues("/")}
        assert stats["jobs"].type == "quorum" and stats["plain"].type == "classic"
        assert stats["jobs"].arguments == QUORUM
        ch = conn.channel()
        # a quorum queue keeps transient messages; a classic durable queue does not
        assert _bodies(ch, "plain") == [b"persistent"]
        ch.basic_publish("", "jobs", b"after")
        # still a quorum queue: deliveries counted, the limit applies
        method, props, body = ch.basic_get("jobs")
        assert method is not None and body == b"acked"
        assert props.headers == {"x-delivery-count": 0}
        ch.basic_reject(method.delivery_tag, requeue=True)
        method, props, body = ch.basic_get("jobs")
        assert method is not None and body == b"acked"
        assert props.headers == {"x-delivery-count": 1}
        ch.basic_reject(method.delivery_tag, requeue=True)  # over the limit: dropped
        assert _bodies(ch, "jobs") == [b"later", b"after"]
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.queue_declare("jobs", durable=True)
        assert refused.value.reply_code == 406


def test_definitions_carry_the_queue_type() -> None:
    with Broker(port=0) as broker:
        admin = Admin(broker)
        admin.import_definitions({"queues": [{
            "name": "imported", "vhost": "/", "durable": True, "auto_delete": False,
            "arguments": {"x-queue-type": "quorum"},
        }]})
        queue = broker.vhosts["/"].queues["imported"]
        assert queue.type == "quorum"
        exported = admin.export_definitions()
        assert {
            "name": "imported", "vhost": "/", "durable": True, "auto_delete": False,
            "arguments": {"x-queue-type": "quorum"},
        } in exported["queues"]


def test_delivery_count_on_a_message_larger_than_a_frame() -> None:
    body = b"x" * 300_000
    with Broker(port=0) as broker, contextlib.closing(blocking(broker.url)) as conn:
        ch = conn.channel()
        ch.queue_declare("big", durable=True, arguments={"x-queue-type": "quorum"})
        ch.basic_publish("", "big", body, pika.BasicProperties(headers={"k": "v"}))
        seen = []

        def on_message(channel: object, method: object, props: pika.BasicProperties,
                       got: bytes) -> None:
            seen.append((props.headers, len(got)))
            ch.basic_nack(method.delivery_tag, requeue=len(seen) < 2)  # type: ignore[attr-defined]

        ch.basic_consume("big", on_message)
        while len(seen) < 2:
            conn.process_data_events(time_limit=1)
        assert seen == [({"k": "v"}, len(body)), ({"k": "v", "x-delivery-count": 1}, len(body))]


def _read_stream(
    conn: pika.BlockingConnection, queue: str, offset: object, count: int
) -> list[tuple[int, bytes]]:
    """The first ``count`` messages of stream ``queue`` from ``offset``:
    (x-stream-offset, body)."""
    ch = conn.channel()
    ch.basic_qos(prefetch_count=10)
    seen: list[tuple[int, bytes]] = []

    def on_message(channel: object, method: object, props: pika.BasicProperties,
                   body: bytes) -> None:
        seen.append((props.headers["x-stream-offset"], body))
        ch.basic_ack(method.delivery_tag)  # type: ignore[attr-defined]

    ch.basic_consume(queue, on_message, arguments={"x-stream-offset": offset})
    while len(seen) < count:
        conn.process_data_events(time_limit=1)
    ch.close()
    return seen[:count]


def test_a_stream_keeps_its_messages_and_offsets_across_a_restart(tmp_path: Path) -> None:
    stream = {"x-queue-type": "stream", "x-stream-max-segment-size-bytes": 10,
              "x-max-length-bytes": 25}
    with Broker(port=0, data_dir=tmp_path) as broker, contextlib.closing(
        blocking(broker.url)
    ) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("log", durable=True, arguments=stream)
        for i in range(5):  # five messages of 5 bytes: segments of two messages
            ch.basic_publish("", "log", b"m%04d" % i, pika.BasicProperties(delivery_mode=1))
        assert _read_stream(conn, "log", "first", 5) == [
            (i, b"m%04d" % i) for i in range(5)
        ]
        for i in range(5, 8):
            ch.basic_publish("", "log", b"m%04d" % i)
        # segments [m0 m1] [m2 m3] [m4 m5] [m6 ...]: when the fourth starts, the log is
        # over 25 bytes and the oldest whole segment goes
        assert _read_stream(conn, "log", "first", 6) == [
            (i, b"m%04d" % i) for i in range(2, 8)
        ]
    with Broker(port=0, data_dir=tmp_path) as broker, contextlib.closing(
        blocking(broker.url)
    ) as conn:
        assert Admin(broker).queue_stats("/", "log").type == "stream"
        assert _read_stream(conn, "log", 5, 3) == [(i, b"m%04d" % i) for i in range(5, 8)]
        assert _read_stream(conn, "log", "first", 1) == [(2, b"m0002")]
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", "log", b"after")
        assert _read_stream(conn, "log", "last", 1) == [(8, b"after")]


def _get(ch: pika.adapters.blocking_connection.BlockingChannel, queue: str
         ) -> tuple[int, bytes, object]:
    method, props, body = ch.basic_get(queue)
    assert method is not None
    return method.delivery_tag, body, (props.headers or {}).get("x-delivery-count")


def _wait_get(conn: pika.BlockingConnection, ch: pika.adapters.blocking_connection.BlockingChannel,
              queue: str, timeout: float = 15.0) -> tuple[int, bytes, object]:
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = ch.basic_get(queue)
        if method is not None or time.monotonic() > deadline:
            assert method is not None
            return method.delivery_tag, body, (props.headers or {}).get("x-delivery-count")
        conn.sleep(0.1)


def test_delivery_counts_survive_a_restart(target: Restartable) -> None:
    # counted on every return (reject, a closed connection, recover), kept in the store:
    # after a restart a message goes on from its count, and the delivery limit applies
    p = f"count-{uuid.uuid4().hex[:8]}."
    jobs, dead = p + "jobs", p + "dead"
    arguments = {"x-queue-type": "quorum", "x-delivery-limit": 3,
                 "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
    conn = blocking(target.url)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(dead, durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_declare(jobs, durable=True, arguments=arguments)
    for body in (b"twice", b"once", b"never"):
        ch.basic_publish("", jobs, body)
    for _ in range(2):
        tag, body, _count = _get(ch, jobs)
        assert body == b"twice"
        ch.basic_reject(tag, requeue=True)
    held = conn.channel()
    _get(held, jobs)
    _get(held, jobs)  # "once" is out, unacknowledged, when the broker stops
    target.restart()
    conn = blocking(target.url)
    ch = conn.channel()
    assert [_get(ch, jobs)[1:] for _ in range(3)] == [
        (b"twice", 3), (b"once", 1), (b"never", 0),
    ]
    # dead-lettering is at most once: RabbitMQ drops a dead letter whose quorum queue has
    # no leader yet after the restart, so first see the dead-letter queue take a message
    ch.confirm_delivery()
    ch.basic_publish("", dead, b"probe")
    probe_tag, probe, _count = _wait_get(conn, ch, dead)
    assert probe == b"probe"
    ch.basic_ack(probe_tag)
    ch.basic_recover(requeue=True)
    # then wait until the dead letter is in its queue, so the restart is not racing it
    # (RabbitMQ may lose one still on its way)
    deadline = time.monotonic() + 15
    while ch.queue_declare(dead, passive=True).method.message_count < 1:
        assert time.monotonic() < deadline, "the dead letter did not arrive"
        conn.sleep(0.05)
    target.restart()
    with contextlib.closing(blocking(target.url)) as conn:
        ch = conn.channel()
        # "twice" came back a fourth time at the recover: past the limit, dead-lettered
        # (RabbitMQ's quorum queues finish recovering a moment after the node accepts
        # connections: wait for the message rather than read once)
        assert _wait_get(conn, ch, dead)[1] == b"twice"
        assert sorted(_get(ch, jobs)[1:] for _ in range(2)) == [(b"never", 1), (b"once", 2)]
        ch = conn.channel()
        for queue in (jobs, dead):
            ch.queue_delete(queue)


async def test_a_message_dead_at_least_once_waits_across_restarts(tmp_path: Path) -> None:
    # dead with nowhere to go, it stays in its queue's store; at a start it is tried at
    # once, and moved, its row gone, when a queue is bound by then
    arguments = {"x-queue-type": "quorum", "x-overflow": "reject-publish",
                 "x-dead-letter-exchange": "dlx", "x-dead-letter-strategy": "at-least-once"}
    async with Broker(port=0, data_dir=tmp_path) as broker:
        vhost = broker.vhosts["/"]
        vhost.declare_exchange("dlx", "fanout", durable=True)
        vhost.declare_queue("dlq", durable=True, arguments={"x-queue-type": "quorum"})
        source, _ = vhost.declare_queue("source", durable=True, arguments=arguments)
        for body in (b"dies", b"lives"):
            source.publish(Message.build("", "source", body))
        entry = source.get()
        assert entry is not None
        source.reject(entry, requeue=False)
    async with Broker(port=0, data_dir=tmp_path) as broker:
        vhost = broker.vhosts["/"]
        source = vhost.queues["source"]
        assert isinstance(source, QuorumQueue)
        assert [e.message.size for e in source.ready] == [5]
        assert [(d.reason, d.message.size) for d in source.discards.waiting] == [
            ("rejected", 4),
        ]
        vhost.bind(vhost.exchanges["dlx"], vhost.queues["dlq"], "")
        await asyncio.sleep(0)  # the try at start: still no route then
    async with Broker(port=0, data_dir=tmp_path) as broker:
        vhost = broker.vhosts["/"]
        source, dlq = vhost.queues["source"], vhost.queues["dlq"]
        assert isinstance(source, QuorumQueue)
        for _ in range(100):
            if not source.discards.waiting:
                break
            await asyncio.sleep(0)
        assert not source.discards.waiting
        assert [e.message.size for e in dlq.ready] == [4]
    async with Broker(port=0, data_dir=tmp_path) as broker:
        vhost = broker.vhosts["/"]
        source, dlq = vhost.queues["source"], vhost.queues["dlq"]
        assert isinstance(source, QuorumQueue)
        assert not source.discards.waiting
        assert [e.message.size for e in source.ready] == [5]
        loaded = broker.store.load("/", "dlq", [dlq.ready[0].message])
        headers = loaded[0].properties.headers or {}
        assert loaded[0].body == b"dies"
        assert headers["x-first-death-queue"] == "source"


def test_a_recovered_streams_log_counts_in_memory_once_read(tmp_path: Path) -> None:
    # after a restart the log's bodies stay in the store until a consumer reads them
    with Broker(port=0, data_dir=tmp_path) as broker, contextlib.closing(
        blocking(broker.url)
    ) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("log", durable=True, arguments={"x-queue-type": "stream"})
        for i in range(3):
            ch.basic_publish("", "log", b"%04d" % i)
        assert broker.memory_use().ready == 3 * (4 + MESSAGE_OVERHEAD)
    with Broker(port=0, data_dir=tmp_path) as broker, contextlib.closing(
        blocking(broker.url)
    ) as conn:
        assert broker.memory_use().ready == 0
        assert _read_stream(conn, "log", "first", 3) == [(i, b"%04d" % i) for i in range(3)]
        assert broker.memory_use().ready == 3 * (4 + MESSAGE_OVERHEAD)


def test_a_message_dead_at_least_once_survives_a_kill(broker_process: BrokerProcess) -> None:
    # kill -9 while a dead message waits for a route that exists by then (its next try
    # is minutes away): the broker started again moves it at once, exactly once
    arguments = {"x-queue-type": "quorum", "x-overflow": "reject-publish",
                 "x-dead-letter-exchange": "dlx", "x-dead-letter-strategy": "at-least-once"}
    broker_process.start()
    conn = blocking(broker_process.url)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("source", durable=True, arguments=arguments)
    persistent = pika.BasicProperties(delivery_mode=2)  # confirmed once written
    ch.basic_publish("", "source", b"dies", persistent)
    tag, _body, _count = _get(ch, "source")
    ch.basic_reject(tag, requeue=False)  # no exchange "dlx": it waits
    ch.exchange_declare("dlx", "fanout", durable=True)
    ch.queue_declare("dlq", durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_bind("dlq", "dlx")
    ch.basic_publish("", "source", b"barrier", persistent)  # everything before is written
    broker_process.kill()
    broker_process.start()
    with contextlib.closing(blocking(broker_process.url)) as conn:
        ch = conn.channel()
        for _ in range(200):
            method, _props, moved = ch.basic_get("dlq", auto_ack=True)
            if method is not None:
                break
            conn.sleep(0.05)
        assert moved == b"dies"
        assert ch.basic_get("dlq", auto_ack=True)[0] is None
        assert ch.basic_get("source", auto_ack=True)[2] == b"barrier"
        assert ch.basic_get("source", auto_ack=True)[0] is None
