"""Several broker addresses: the first live one is used, and recovery moves to the next
one with the topology and consumers, against embedded kiltmq brokers (one per "node")."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import pytest

import kiltmq
import kiltmq.blocking
from kiltmq import ConnectError, ConnectionLost
from kiltmq.broker import Broker
from kiltmq.client import Connection
from kiltmq.client.addresses import Addresses
from kiltmq.client.url import parse_url

TIMEOUT = 20


def _free_port() -> int:
    """A port nothing listens on (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _url(port: int) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/"


@pytest.fixture
async def brokers() -> AsyncIterator[list[Broker]]:
    """Three embedded brokers on this event loop, stopped at the end."""
    started = [Broker(port=0) for _ in range(3)]
    for broker in started:
        await broker.start()
    try:
        yield started
    finally:
        for broker in started:
            await broker.stop()


def _recovered_event(conn: Connection) -> asyncio.Event:
    event = asyncio.Event()
    conn.on_recovered.append(event.set)
    return event


async def _recovered(conn: Connection, event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), TIMEOUT)
    event.clear()


def test_recovery_order_tries_the_others_first() -> None:
    a, b, c = (parse_url(_url(port)) for port in (5001, 5002, 5003))
    addresses = Addresses([a, b, c])
    assert addresses.first() == [a, b, c]
    assert addresses.after(a) == [b, c, a]
    assert addresses.after(b) == [c, a, b]
    assert addresses.after(c) == [a, b, c]
    assert Addresses([a]).after(a) == [a]


def test_shuffled_order_keeps_the_lost_address_last() -> None:
    parsed = [parse_url(_url(port)) for port in range(5001, 5009)]
    addresses = Addresses(parsed, shuffle=True)
    firsts = [addresses.first() for _ in range(20)]
    assert all(sorted(order, key=lambda p: p.port) == parsed for order in firsts)
    assert len({tuple(p.port for p in order) for order in firsts}) > 1
    for _ in range(20):
        order = addresses.after(parsed[3])
        assert order[-1] is parsed[3]
        assert sorted(order[:-1], key=lambda p: p.port) == parsed[:3] + parsed[4:]


async def test_connects_to_the_first_live_address(brokers: list[Broker]) -> None:
    dead = _free_port()
    async with kiltmq.connect([_url(dead), brokers[1].url, brokers[0].url]) as conn:
        assert conn.parameters.port == brokers[1].port
        assert [a.port for a in conn.addresses.all] == [dead, brokers[1].port, brokers[0].port]
    # the same with the hosts listed in one URL
    url = f"amqp://guest:guest@127.0.0.1:{dead},127.0.0.1:{brokers[2].port}/"
    async with kiltmq.connect(url) as conn:
        assert conn.parameters.port == brokers[2].port


async def test_all_addresses_down_raises_the_last_error_with_notes() -> None:
    first, second = _free_port(), _free_port()
    with pytest.raises(ConnectError) as info:
        await kiltmq.connect([_url(first), _url(second)], connection_timeout=5)
    assert f":{second}" in str(info.value)
    notes = getattr(info.value, "__notes__", [])
    assert len(notes) == 1 and f":{first}/" in notes[0]


async def test_failover_restores_topology_and_consumers(
    brokers: list[Broker], unique: Callable[[str], str]
) -> None:
    node1, node2, node3 = brokers
    port1 = node1.port
    exchange, queue = unique("x"), unique("q")
    conn = await kiltmq.connect(
        [node1.url, node2.url, node3.url], recovery_initial_delay=0.01, rpc_timeout=TIMEOUT
    )
    try:
        recovered = _recovered_event(conn)
        ch = await conn.channel()
        await ch.confirm_select()
        await ch.exchange_declare(exchange, "direct")
        await ch.queue_declare(queue)
        await ch.queue_bind(queue, exchange, "key")
        consumer = await ch.consume(queue, no_ack=True)
        await ch.basic_publish(b"on node 1", exchange, "key")
        async with asyncio.timeout(TIMEOUT):
            assert (await anext(consumer)).body == b"on node 1"

        # In-flight publishes when the node goes: each is confirmed or fails; none hangs.
        in_flight = [ch.publish_nowait(b"m%d" % i, exchange, "key") for i in range(200)]
        await node1.stop()
        results = await asyncio.wait_for(
            asyncio.gather(*in_flight, return_exceptions=True), TIMEOUT
        )
        assert all(r is None or isinstance(r, ConnectionLost) for r in results), results
        await _recovered(conn, recovered)
        assert conn.parameters.port == node2.port
        assert conn.recoveries == 1

        # The exchange, queue, binding and consumer were declared again on node 2.
        await ch.basic_publish(b"on node 2", exchange, "key")
        async with asyncio.timeout(TIMEOUT):
            while (message := await anext(consumer)).body != b"on node 2":
                assert message.body.startswith(b"m")  # confirmed on node 1 before it went
        async with kiltmq.connect(node2.url) as other:
            check = await other.channel()
            assert (await check.queue_declare(queue, passive=True)).consumer_count == 1

        # Then node 3 (the next one), then round the list to node 1, started again.
        await node2.stop()
        await _recovered(conn, recovered)
        assert conn.parameters.port == node3.port
        restarted = Broker(port=port1)
        await restarted.start()
        try:
            await node3.stop()
            await _recovered(conn, recovered)
            assert conn.parameters.port == port1
            await ch.basic_publish(b"on node 1 again", exchange, "key")
            async with asyncio.timeout(TIMEOUT):
                assert (await anext(consumer)).body == b"on node 1 again"
        finally:
            await conn.close()
            await restarted.stop()
    finally:
        await conn.close()


async def test_recovery_attempts_count_rounds_over_the_list(brokers: list[Broker]) -> None:
    conn = await kiltmq.connect(
        [brokers[0].url, brokers[1].url],
        recovery_initial_delay=0.01,
        recovery_attempts=2,
        connection_timeout=5,
    )
    closed = asyncio.Event()
    conn.on_closed.append(lambda reason: closed.set())
    await brokers[1].stop()
    await brokers[0].stop()
    await asyncio.wait_for(closed.wait(), TIMEOUT)
    assert isinstance(conn.close_reason, ConnectionLost)
    assert "after 2 attempts" in str(conn.close_reason)


def test_blocking_connect_takes_a_list(embedded_broker: Broker) -> None:
    dead = _free_port()
    with kiltmq.blocking.connect([_url(dead), embedded_broker.url]) as conn:
        assert conn.connection.parameters.port == embedded_broker.port
        ch = conn.channel()
        assert ch.queue_declare("", exclusive=True).queue
