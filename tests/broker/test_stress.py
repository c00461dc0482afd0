"""Many publishers and consumers at once, with aio-pika on the broker's own loop:
every message is acknowledged exactly once, whatever mix of acks, requeues and
consumer crashes happens on the way."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import aio_pika
import pytest

from kiltmq.broker import Broker

pytestmark = pytest.mark.timeout(90)

PUBLISHERS = 3
PER_PUBLISHER = 400


async def _publisher(url: str, index: int) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("stress.x")
        for n in range(PER_PUBLISHER):
            await exchange.publish(
                aio_pika.Message(f"p{index}-{n}".encode()),
                routing_key=f"jobs.{n % 3}",
            )


async def _consumer(
    url: str, seed: int, acked: Counter[str], done: asyncio.Event, total: int
) -> None:
    rng = random.Random(seed)
    connection = await aio_pika.connect(url)
    async with connection:
        while not done.is_set():
            # a "crash" closes the channel with deliveries unacknowledged: they come back
            channel = await connection.channel()
            prefetch = rng.choice([1, 7, 50])
            await channel.set_qos(prefetch_count=prefetch)
            queue = await channel.get_queue("stress.q")
            crash_after = rng.randrange(20, 200)
            seen = held = 0
            async with queue.iterator() as messages:
                while True:
                    try:
                        message = await asyncio.wait_for(messages.__anext__(), 0.2)
                    except TimeoutError:
                        break  # idle: "crash", so that held messages come back
                    seen += 1
                    roll = rng.random()
                    if roll < 0.7:
                        await message.ack()
                        acked[message.body.decode()] += 1
                        if sum(acked.values()) >= total:
                            done.set()
                            break
                    elif roll < 0.9:
                        await message.nack(requeue=True)
                    else:  # leave it unacknowledged until the crash
                        held += 1
                    if seen >= crash_after or held >= prefetch:
                        break
            await channel.close()


async def test_every_message_is_acked_exactly_once() -> None:
    async with Broker(port=0) as broker:
        url = broker.url
        setup = await aio_pika.connect(url)
        async with setup:
            channel = await setup.channel()
            exchange = await channel.declare_exchange("stress.x", aio_pika.ExchangeType.TOPIC)
            queue = await channel.declare_queue("stress.q")
            await queue.bind(exchange, "jobs.*")
            total = PUBLISHERS * PER_PUBLISHER
            acked: Counter[str] = Counter()
            done = asyncio.Event()
            consumers = [
                asyncio.create_task(_consumer(url, seed, acked, done, total)) for seed in range(3)
            ]
            await asyncio.wait_for(
                asyncio.gather(*(_publisher(url, i) for i in range(PUBLISHERS))), 60
            )
            await asyncio.wait_for(done.wait(), 60)
            await asyncio.wait_for(asyncio.gather(*consumers), 30)
            expected = {f"p{i}-{n}" for i in range(PUBLISHERS) for n in range(PER_PUBLISHER)}
            assert set(acked) == expected
            assert max(acked.values()) == 1
            declared = await channel.declare_queue("stress.q", passive=True)
            assert declared.declaration_result.message_count == 0
