"""Everything a connection held is freed by reference counting when it ends: with the
cycle collector off, its session, channels, consumers and exclusive queues go, and the
memory it held (deliveries awaiting acks, a half-received message, a transaction, confirms)
comes back, however the connection ended."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.broker.admin import Admin
from kiltmq.protocol import spec
from kiltmq.protocol.frames import content_header_payload, encode_frame, method_frame

pytestmark = pytest.mark.timeout(60)

ENDINGS = ("connection.close", "socket drop", "server close", "heartbeat timeout")
#: Bytes of a half-received message's body sent before the connection ends.
PARTIAL = 4 * 1024 * 1024
#: Bytes of deliveries left unacknowledged.
UNACKED = 4 * 1024 * 1024
#: Traced memory allowed to stay behind after the connection went.
SLACK = 512 * 1024


@contextmanager
def _collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@asynccontextmanager
async def _broker() -> AsyncIterator[Broker]:
    async with Broker(port=0, heartbeat=2) as broker:
        yield broker


async def _busy(broker: Broker, how: str) -> RawClient:
    """A connection holding everything a connection can hold: consumers with unacked
    deliveries, an exclusive queue, confirms, an open transaction, a half-received
    message. Heartbeats only where the connection is to end by their timeout."""
    heartbeat = None if how == "heartbeat timeout" else 0  # None: the broker's, 2 s
    client = await RawClient.connect(broker.port, heartbeat=heartbeat)
    client.answer_close = True
    for number in (1, 2, 3, 4):
        await client.open_channel(number)
    await client.request(1, spec.QueueDeclare("work"), spec.QueueDeclareOk)
    await client.request(1, spec.QueueDeclare("mine", exclusive=True), spec.QueueDeclareOk)
    await client.request(1, spec.BasicConsume("work", "c-work"), spec.BasicConsumeOk)
    await client.request(1, spec.BasicConsume("mine", "c-mine"), spec.BasicConsumeOk)
    await client.request(2, spec.ConfirmSelect(), spec.ConfirmSelectOk)
    body = b"u" * 65536
    for _ in range(UNACKED // len(body) // 2):
        client.publish(2, "", "work", body)
        client.publish(2, "", "mine", body)
    await client.request(3, spec.QueueDeclare("got"), spec.QueueDeclareOk)
    client.publish(3, "", "got", b"fetched")
    await client.request(3, spec.TxSelect(), spec.TxSelectOk)
    await client.request(3, spec.BasicGet("got"), spec.BasicGetOk)
    client.publish(3, "", "work", b"in a transaction")
    client.send(3, spec.BasicAck(1, False))
    client.send_raw(method_frame(4, spec.BasicPublish(routing_key="work")))
    client.send_raw(encode_frame(2, 4, content_header_payload(60, PARTIAL * 2, None)))
    chunk = b"p" * (client.frame_max - 8)
    for _ in range(PARTIAL // len(chunk)):
        client.send_raw(encode_frame(3, 4, chunk))
    await client.drain()
    conn = next(iter(broker.connections))
    while conn.core.channels[4].received < PARTIAL // len(chunk) * len(chunk):
        await asyncio.sleep(0.01)
    return client


def _referents(broker: Broker) -> dict[str, weakref.ref[Any]]:
    (conn,) = broker.connections
    session = conn.session
    refs: dict[str, weakref.ref[Any]] = {
        "connection": weakref.ref(conn),
        "session": weakref.ref(session),
        "core": weakref.ref(conn.core),
        "exclusive queue": weakref.ref(broker.vhosts["/"].queues["mine"]),
    }
    for number, channel in session.channels.items():
        refs[f"channel {number}"] = weakref.ref(channel)
        for tag, consumer in channel.consumers.items():
            refs[f"consumer {tag}"] = weakref.ref(consumer)
    return refs


async def _end(broker: Broker, client: RawClient, how: str) -> None:
    if how == "connection.close":
        await client.close()
    elif how == "socket drop":
        client.abort()
    elif how == "server close":
        Admin(broker).close_connections(broker.connections, "closed for the test")
    else:
        assert how == "heartbeat timeout"  # the client never sends a heartbeat
        client.pause_reading()
    while broker.connections:
        await asyncio.sleep(0.02)
    client.abort()
    client.events.clear()
    for _ in range(5):  # callbacks already scheduled (flushes) run
        await asyncio.sleep(0)


@pytest.mark.parametrize("how", ENDINGS)
async def test_a_closed_connection_is_freed_without_the_cycle_collector(how: str) -> None:
    async with _broker() as broker:
        with _collector_off():
            client = await _busy(broker, how)
            refs = _referents(broker)
            assert len(refs) == 10  # connection, session, core, queue, 4 channels, 2 consumers
            await _end(broker, client, how)
            alive = [name for name, ref in refs.items() if ref() is not None]
            assert alive == []
        queue = broker.vhosts["/"].queues["work"]
        assert not queue.consumers and len(queue.ready) == UNACKED // 65536 // 2


@pytest.mark.parametrize("how", ENDINGS)
async def test_memory_held_by_a_connection_comes_back(how: str) -> None:
    async with _broker() as broker:
        with _collector_off():
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                client = await _busy(broker, how)
                held = tracemalloc.get_traced_memory()[0] - before
                await _end(broker, client, how)
                # the requeued deliveries of "work" stay, in the queue
                await _purge(broker)
                del client
                after = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
        assert held > PARTIAL + UNACKED
        assert after < SLACK, f"{after} bytes of {held} still held"


async def _purge(broker: Broker) -> None:
    queue = broker.vhosts["/"].queues["work"]
    queue.purge()


async def test_a_connection_waiting_for_the_store_is_freed_once_it_committed(
    tmp_path: Path,
) -> None:
    """Confirms of persistent messages wait for the store's commit; once it is done,
    nothing of the closed connection stays (its last batch no longer holds it)."""
    async with Broker(port=0, data_dir=tmp_path / "data") as broker:
        with _collector_off():
            client = await RawClient.connect(broker.port)
            await client.open_channel(1)
            await client.request(1, spec.QueueDeclare("kept", durable=True), spec.QueueDeclareOk)
            await client.request(1, spec.ConfirmSelect(), spec.ConfirmSelectOk)
            for _ in range(10):
                client.publish(1, "", "kept", b"m" * 1000, spec.BasicProperties(delivery_mode=2))
            (conn,) = broker.connections
            refs: dict[str, weakref.ref[Any]] = {
                "connection": weakref.ref(conn),
                "channel": weakref.ref(conn.session.channels[1]),
            }
            del conn
            client.abort()
            while broker.connections or any(ref() is not None for ref in refs.values()):
                await asyncio.sleep(0.01)  # the commit comes; then everything goes
        assert broker.vhosts["/"].queues["kept"].message_count == 10
