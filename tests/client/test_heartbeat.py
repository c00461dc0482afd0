"""Heartbeats: they keep flowing while a slow synchronous handler runs, and a silent
server is detected."""

from __future__ import annotations

import asyncio
import time

import pytest

import kiltmq
import kiltmq.blocking
from kiltmq import ConnectionLost, Message

from .conftest import TcpProxy

HANDLER_SECONDS = 3.5  # more than three heartbeat intervals of 1 s


async def test_heartbeats_flow_during_long_sync_handler(amqp_url: str) -> None:
    async with kiltmq.connect(amqp_url, heartbeat=1, recovery=False) as conn:
        assert conn.heartbeat == 1
        ch = await conn.channel()
        queue = (await ch.queue_declare("", exclusive=True)).queue
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        sent_during: list[int] = []

        def slow_handler(message: Message) -> None:
            before = conn.heartbeats_sent
            time.sleep(HANDLER_SECONDS)  # a blocking handler: runs in a worker thread
            sent_during.append(conn.heartbeats_sent - before)
            message.ack()
            loop.call_soon_threadsafe(done.set)

        await ch.basic_consume(queue, slow_handler)
        await ch.basic_publish(b"slow job", routing_key=queue)
        await asyncio.wait_for(done.wait(), HANDLER_SECONDS + 10)
        assert sent_during[0] >= 3
        # The broker did not drop us for missed heartbeats: the connection still works.
        assert conn.is_open and conn.recoveries == 0
        assert (await ch.queue_declare(queue, passive=True)).message_count == 0


def test_blocking_facade_keeps_heartbeats_while_application_sleeps(amqp_url: str) -> None:
    with kiltmq.blocking.connect(amqp_url, heartbeat=1, recovery=False) as conn:
        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=True).queue
        ch.basic_publish(b"1", routing_key=queue)
        ch.basic_publish(b"2", routing_key=queue)
        bodies: list[bytes] = []
        for message in ch.consume(queue, inactivity_timeout=10):
            bodies.append(message.body)
            time.sleep(HANDLER_SECONDS if len(bodies) == 1 else 0)
            message.ack()
            if len(bodies) == 2:
                break
        assert bodies == [b"1", b"2"]
        assert conn.is_open and conn.connection.heartbeats_sent >= 3
        assert ch.queue_declare(queue, passive=True).message_count == 0


async def test_silent_server_is_detected(proxy: TcpProxy) -> None:
    async with kiltmq.connect(proxy.url, heartbeat=1, recovery=False) as conn:
        ch = await conn.channel()
        proxy.freeze()
        reason = await asyncio.wait_for(conn.wait_closed(), 10)
        assert isinstance(reason, ConnectionLost)
        assert "heartbeat" in str(reason)
        with pytest.raises(kiltmq.ChannelClosed):
            await ch.queue_declare("")
