"""A stream's arrival times survive a restart (and a kill): a timestamp offset reads from
the messages that arrived since, not from every message published before the restart,
and ``x-max-age`` counts from each message's arrival. The restart check runs against
RabbitMQ too when ``KILTMQ_RABBITMQ_RESTART=1``."""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pika
import pika.exceptions
import pytest

from kiltmq.broker import Broker, SQLiteStore
from kiltmq.broker.message import Message
from kiltmq.broker.queue import StreamQueue
from kiltmq.broker.store import SCHEMA_VERSION
from kiltmq.protocol.spec import BasicProperties

from .conftest import BrokerProcess, Restartable, blocking
from .old_formats import format_version, write_store

pytestmark = pytest.mark.timeout(120)

WAIT = 20.0  # upper bound of any polling here
#: Segments smaller than a message (by body here, by chunk in RabbitMQ, which hangs on
#: segments of a few bytes): each message its own segment on both brokers, so age
#: retention can drop any but the newest.
AGED = {"x-queue-type": "stream", "x-max-age": "3s", "x-stream-max-segment-size-bytes": 50}
PAD = 64


class _Killed:
    """A broker process restarted by kill -9 and a new start."""

    name = "kiltmq"

    def __init__(self, process: BrokerProcess) -> None:
        self.process = process
        process.start()

    @property
    def url(self) -> str:
        return self.process.url

    def restart(self) -> None:
        self.process.kill()
        self.process.start()


def _read(url: str, queue: str, offset: object, least: int = 1) -> list[bytes]:
    """The bodies a new consumer of ``queue`` from ``offset`` reads (at least ``least``
    of them, then whatever else comes within a moment). Right after a restart RabbitMQ
    accepts connections before its streams are back (404 "... is down or inaccessible"
    to a consume): that is waited out."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return _read_once(url, queue, offset, least)
        except pika.exceptions.ChannelClosedByBroker as closed:
            recovering = closed.reply_code == 404 and "down or inaccessible" in closed.reply_text
            if not recovering or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _read_once(url: str, queue: str, offset: object, least: int) -> list[bytes]:
    with contextlib.closing(blocking(url)) as conn:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=100)
        seen: list[bytes] = []

        def on_message(channel: object, method: object, props: pika.BasicProperties,
                       body: bytes) -> None:
            seen.append(body.rstrip(b"."))
            ch.basic_ack(method.delivery_tag)  # type: ignore[attr-defined]

        ch.basic_consume(queue, on_message, arguments={"x-stream-offset": offset})
        deadline = time.monotonic() + WAIT
        while len(seen) < least and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.2)
        conn.process_data_events(time_limit=0.5)
        return seen


def _publish(url: str, queue: str, *bodies: bytes) -> None:
    with contextlib.closing(blocking(url)) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        for body in bodies:  # one chunk each on RabbitMQ: each confirmed before the next
            ch.basic_publish(
                "", queue, body.ljust(PAD, b"."), pika.BasicProperties(delivery_mode=2)
            )


def _arrival_times_count_after_a_restart(broker: Restartable) -> None:
    queue = f"times-{uuid.uuid4().hex[:8]}"
    with contextlib.closing(blocking(broker.url)) as conn:
        conn.channel().queue_declare(queue, durable=True, arguments=AGED)
    try:
        _publish(broker.url, queue, b"old-1", b"old-2")
        # a timestamp (whole seconds) after the old messages and before the new one
        since = math.ceil(time.time() + 0.1)
        time.sleep(max(0.0, since - time.time()) + 0.3)
        _publish(broker.url, queue, b"new")
        published = time.monotonic()
        broker.restart()
        assert _read(broker.url, queue, datetime.fromtimestamp(since, UTC)) == [b"new"]
        # older than x-max-age by their arrival: gone once the next segment starts
        time.sleep(max(0.0, published + 3.5 - time.monotonic()))
        _publish(broker.url, queue, b"after")
        deadline = time.monotonic() + WAIT
        while (first := _read(broker.url, queue, "first")) != [b"after"]:
            assert time.monotonic() < deadline, f"still kept: {first}"
            time.sleep(0.2)
    finally:
        with contextlib.closing(blocking(broker.url)) as conn:
            conn.channel().queue_delete(queue)


def test_stream_arrival_times_survive_a_restart(target: Restartable) -> None:
    _arrival_times_count_after_a_restart(target)


def test_stream_arrival_times_survive_a_kill(broker_process: BrokerProcess) -> None:
    _arrival_times_count_after_a_restart(_Killed(broker_process))


# -- the previous format ----------------------------------------------------------------

def _format_3_store(path: Path) -> None:
    write_store(
        path, 3,
        queue={"name": "log", "durable": True, "auto_delete": False,
               "arguments": {"x-queue-type": "stream"}},
        messages=[
            (b"m%d" % offset, BasicProperties(headers={"x-stream-offset": offset}))
            for offset in range(2)
        ],
    )


async def test_a_format_3_store_is_upgraded_and_its_streams_get_arrival_times(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    _format_3_store(data)
    assert SCHEMA_VERSION >= 4

    store = SQLiteStore(data)
    store.open()
    try:
        assert format_version(data) == SCHEMA_VERSION
        recovered = store.recover()
        assert [s.arrived_at for s in recovered.messages] == [None, None]
        fresh = Message.build("", "log", b"m2", BasicProperties(headers={"x-stream-offset": 2}))
        store.message_enqueued("/", "log", fresh)
        store.message_arrived("/", "log", fresh, 1_700_000_000.25)
    finally:
        store.close()

    # a broker on the upgraded store: the messages of format 3 arrived "now" (their
    # times were not kept), the new one when it was recorded
    before = time.time()
    async with Broker(port=0, data_dir=data) as broker:
        stream = broker.vhosts["/"].queues["log"]
        assert isinstance(stream, StreamQueue)
        assert [offset for offset in range(stream.first, stream.end)] == [0, 1, 2]
        old, older, recorded = stream.times
        assert old >= before and older >= before
        assert recorded == 1_700_000_000.25
