"""A closed client connection is freed by reference counting: with the cycle collector
off, it and its channels and consumers go once the application lets go of them."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

import kiltmq

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("how", ["close", "socket drop"])
async def test_a_closed_connection_leaves_no_cycles(amqp_url: str, how: str) -> None:
    gc.collect()
    gc.disable()
    try:
        conn = await kiltmq.connect(amqp_url, recovery=False, heartbeat=5)
        ch = await conn.channel()
        await ch.confirm_select()
        queue = (await ch.queue_declare("", exclusive=True)).queue
        await ch.basic_publish(b"held", routing_key=queue)
        consumer = ch.consume(queue)
        message = await asyncio.wait_for(anext(aiter(consumer)), 10)
        assert message.body == b"held"  # delivered, not acked
        refs: dict[str, weakref.ref[Any]] = {
            "connection": weakref.ref(conn),
            "channel": weakref.ref(ch),
            "consumer": weakref.ref(consumer),
        }
        if how == "close":
            await conn.close()
        else:
            assert conn._transport is not None
            conn._transport.abort()
            await conn.wait_closed()
        del conn, ch, consumer, message
        for _ in range(5):  # callbacks already scheduled run
            await asyncio.sleep(0)
        assert [name for name, ref in refs.items() if ref() is not None] == []
    finally:
        gc.enable()
