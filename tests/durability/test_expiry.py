"""Message TTL across a restart: a recovered message keeps its original deadline (as in
RabbitMQ), and a store of the previous format opens, is upgraded in place and keeps its
data."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pika
import pytest

from kiltmq.broker import Broker, SQLiteStore
from kiltmq.broker.message import Message
from kiltmq.broker.store import KEY_BASE, SCHEMA_VERSION
from kiltmq.protocol.spec import BasicProperties

from .conftest import EmbeddedTarget, blocking
from .old_formats import format_version, write_store

pytestmark = pytest.mark.timeout(60)

TTL_MS = 2000
WAIT = 20.0  # upper bound of any polling here


def _poll(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {WAIT} s waiting for {what}")
        time.sleep(0.05)


def _count(url: str, queue: str) -> int:
    with contextlib.closing(blocking(url)) as conn:
        ok = conn.channel().queue_declare(queue, passive=True)
        return int(ok.method.message_count)


def test_a_recovered_message_keeps_its_ttl_deadline(tmp_path: Path) -> None:
    """expiration=2000 ms and x-message-ttl=2000 ms; the broker is restarted cleanly after
    about 0.5 s: the messages are still there, with the rest of their time (not a new
    countdown), and then expire (the one of the x-message-ttl queue into its
    dead-letter queue, body intact)."""
    target = EmbeddedTarget(tmp_path / "data")
    try:
        with contextlib.closing(blocking(target.url)) as conn:
            ch = conn.channel()
            ch.confirm_delivery()
            ch.queue_declare("per-message", durable=True)
            ch.queue_declare("dead", durable=True)
            ch.queue_declare(
                "per-queue",
                durable=True,
                arguments={
                    "x-message-ttl": TTL_MS,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": "dead",
                },
            )
            ch.queue_declare("no-ttl", durable=True)
            ch.basic_publish(
                "", "per-message", b"short-lived",
                pika.BasicProperties(delivery_mode=2, expiration=str(TTL_MS)),
            )
            ch.basic_publish("", "per-queue", b"queue ttl", pika.BasicProperties(delivery_mode=2))
            ch.basic_publish("", "no-ttl", b"forever", pika.BasicProperties(delivery_mode=2))
            published = time.time()
        time.sleep(0.5)
        target.restart()

        def remaining(name: str) -> float:
            """Seconds left before the head of queue ``name`` expires, from the broker."""
            queue = target.broker.vhosts["/"].queues[name]
            expires = queue.ready[0].expires
            assert expires is not None, f"no deadline re-armed in {name}"
            return float(expires - queue.vhost.now())

        for name in ("per-message", "per-queue"):
            left = target.broker.call_in_loop(remaining, name)
            # the time spent before the restart is gone: the old deadline, not a new one
            assert left <= TTL_MS / 1000.0 - (time.time() - published) + 0.05, (name, left)
            assert _count(target.url, name) == 1  # still there after the restart

        _poll(lambda: _count(target.url, "per-message") == 0, "the per-message TTL")
        _poll(lambda: _count(target.url, "per-queue") == 0, "the queue's message TTL")
        _poll(lambda: _count(target.url, "dead") == 1, "the expired message dead-lettered")
        with contextlib.closing(blocking(target.url)) as conn:
            _method, _props, body = conn.channel().basic_get("dead", auto_ack=True)
            assert body == b"queue ttl"
        assert _count(target.url, "no-ttl") == 1
    finally:
        target.close()


# -- the previous format ----------------------------------------------------------------

def _format_1_store(path: Path) -> None:
    write_store(
        path, 1,
        queue={"name": "old", "durable": True, "auto_delete": False, "arguments": {}},
        messages=[
            (b"with ttl", BasicProperties(delivery_mode=2, expiration="300")),
            (b"kept", BasicProperties(delivery_mode=2)),
        ],
    )


async def test_a_format_1_store_is_upgraded_in_place_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    _format_1_store(data)
    assert SCHEMA_VERSION >= 2

    store = SQLiteStore(data)
    store.open()
    try:
        assert format_version(data) == SCHEMA_VERSION
        recovered = store.recover()
        assert [d["name"] for _v, _k, d in recovered.definitions] == ["old"]
        assert [s.expires_at for s in recovered.messages] == [None, None]
        loaded = store.load("/", "old", [s.message for s in recovered.messages])
        assert [m.body for m in loaded] == [b"with ttl", b"kept"]
        # the new column is written from now on
        fresh = Message.build("", "old", b"new", BasicProperties(delivery_mode=2))
        store.message_enqueued("/", "old", fresh)
        store.message_expires("/", "old", fresh, 4_000_000_000.0)
    finally:
        store.close()

    again = SQLiteStore(data)
    again.open()
    try:
        messages = again.recover().messages
        assert [s.expires_at for s in messages] == [None, None, 4_000_000_000.0]
    finally:
        again.close()

    # a broker on the upgraded store: the format 1 message with a TTL has no stored
    # deadline, so its countdown starts again at recovery, and it does expire
    async with Broker(port=0, data_dir=data) as broker:
        queue = broker.vhosts["/"].queues["old"]
        assert [e.expires is None for e in queue.ready] == [False, True, False]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while len(queue.ready) == 3:
            if loop.time() > deadline:
                pytest.fail("the recovered message with a TTL did not expire")
            await asyncio.sleep(0.05)
        assert [e.message.id for e in queue.ready] == [KEY_BASE + 1, KEY_BASE + 2]


# -- a stopped broker -------------------------------------------------------------------


async def test_nothing_expires_while_the_broker_is_stopped(tmp_path: Path) -> None:
    """A stopped broker (its store closed) lets nothing expire, even if its event loop
    runs on; started again it does, and the store agrees with what expired. A recovered
    queue with x-expires starts its countdown at the start."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))

    async def until(condition: Callable[[], bool], what: str) -> None:
        deadline = loop.time() + WAIT
        while not condition():
            if loop.time() > deadline:
                pytest.fail(f"timed out after {WAIT} s waiting for {what}")
            await asyncio.sleep(0.02)

    data = tmp_path / "data"
    broker = Broker(port=0, data_dir=data)
    await broker.start()
    vhost = broker.vhosts["/"]
    vhost.declare_queue("dead", durable=True)
    vhost.declare_queue("idle", durable=True, arguments={"x-expires": 300})
    short, _ = vhost.declare_queue(
        "short",
        durable=True,
        arguments={
            "x-message-ttl": 300,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "dead",
        },
    )
    short.publish(Message.build("", "short", b"m", BasicProperties(delivery_mode=2)))
    await broker.stop()
    await asyncio.sleep(0.5)  # past the TTL and x-expires, stopped
    assert [len(short.ready), len(vhost.queues["dead"].ready)] == [1, 0]
    assert "idle" in vhost.queues
    assert errors == []

    await broker.start()  # the same object again: the timers run again
    await until(lambda: len(vhost.queues["dead"].ready) == 1, "the message to expire")
    await until(lambda: "idle" not in vhost.queues, "the idle queue to expire")
    vhost.declare_queue("idle-late", durable=True, arguments={"x-expires": 300})
    await broker.stop()

    # what the store kept agrees
    again = Broker(port=0, data_dir=data)
    await again.start()
    try:
        queues = again.vhosts["/"].queues
        assert sorted(queues) == ["dead", "idle-late", "short"]
        assert [len(queues["short"].ready), len(queues["dead"].ready)] == [0, 1]
        await until(lambda: "idle-late" not in queues, "the recovered idle queue to expire")
    finally:
        await again.stop()
    assert errors == []
    loop.set_exception_handler(None)
