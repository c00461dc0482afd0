"""connection.blocked: publishing waits while the broker is blocked, and gives up after
blocked_timeout.

Against RabbitMQ a memory alarm is raised for about two seconds with
``rabbitmqctl set_vm_memory_high_watermark`` (and always restored): that blocks every
publishing connection to that RabbitMQ for the moment. The embedded broker's alarm is
raised with ``Broker.set_alarm``.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

import kiltmq
from kiltmq import BlockedTimeout

from .conftest import rabbitmqctl


async def _set_alarm(request: pytest.FixtureRequest, broker_kind: str, active: bool) -> None:
    if broker_kind == "rabbitmq":
        await rabbitmqctl("set_vm_memory_high_watermark", "0.0000001" if active else "0.4")
    else:
        broker = request.getfixturevalue("embedded_broker")
        await asyncio.to_thread(broker.call_in_loop, broker.set_alarm, active)


async def test_publish_while_blocked(
    amqp_url: str, broker_kind: str, request: pytest.FixtureRequest
) -> None:
    impatient = await kiltmq.connect(amqp_url, blocked_timeout=0.5, recovery=False)
    patient = await kiltmq.connect(amqp_url, blocked_timeout=30, recovery=False)
    try:
        ch = await impatient.channel()
        queue = (await ch.queue_declare("", exclusive=True)).queue
        waiting_ch = await patient.channel()
        await waiting_ch.confirm_select()
        other_queue = (await waiting_ch.queue_declare("", exclusive=True)).queue
        blocked = asyncio.Event()
        unblocked = asyncio.Event()
        impatient.on_blocked.append(lambda reason: blocked.set())
        impatient.on_unblocked.append(unblocked.set)
        waiting: asyncio.Task[None] | None = None
        first: asyncio.Future[None] | None = None
        await ch.basic_publish(b"before", routing_key=queue)
        await _set_alarm(request, broker_kind, True)
        try:
            try:
                await asyncio.wait_for(blocked.wait(), 2)
            except TimeoutError:
                # Some brokers block a connection only once it publishes.
                with contextlib.suppress(BlockedTimeout):
                    await ch.basic_publish(b"trigger", routing_key="test.nowhere")
                await asyncio.wait_for(blocked.wait(), 15)
            assert impatient.blocked and impatient.blocked_reason
            with pytest.raises(BlockedTimeout):
                await ch.basic_publish(b"never sent", routing_key=queue)
            with pytest.raises(BlockedTimeout):
                await asyncio.wait_for(ch.publish_nowait(b"never sent", routing_key=queue), 10)
            first = waiting_ch.publish_nowait(b"first", routing_key=other_queue)
            async with asyncio.timeout(15):
                while not patient.blocked:
                    await asyncio.sleep(0.02)
            waiting = asyncio.create_task(
                waiting_ch.basic_publish(b"waits", routing_key=other_queue)
            )
            await asyncio.sleep(0.3)
            assert not waiting.done()  # held back while blocked
        finally:
            await _set_alarm(request, broker_kind, False)
        await asyncio.wait_for(unblocked.wait(), 30)
        assert waiting is not None and first is not None
        await asyncio.wait_for(waiting, 30)  # sent and confirmed once unblocked
        await asyncio.wait_for(first, 30)
        await ch.basic_publish(b"after", routing_key=queue)
        bodies: list[bytes] = []
        async with asyncio.timeout(10):
            while len(bodies) < 2:
                message = await ch.basic_get(queue, no_ack=True)
                if message is None:
                    await asyncio.sleep(0.02)
                else:
                    bodies.append(message.body)
        assert bodies == [b"before", b"after"]
    finally:
        await impatient.close()
        await patient.close()
