"""Client throughput against the local RabbitMQ: kiltmq vs aio-pika vs pika.

Scenarios (each client in this process, one after the other, on its own queue):

* ``publish``: 100,000 transient 100-byte messages, no confirms. The clock stops when a
  synchronous queue.declare sent after the last publish is answered, so every message
  has reached the broker.
* ``confirm``: 20,000 persistent 100-byte messages to a durable queue with publisher
  confirms, pipelined (all in flight at once where the client allows it; pika's
  BlockingConnection waits for each confirm before the next publish).
* ``consume``: 100,000 messages waiting in a queue, consumed with prefetch 1000 and a
  manual basic.ack per message.

Reported: messages per second (wall clock) and client CPU per message
(``time.process_time``: this process only, so the broker's CPU is not counted), with the
ratio of kiltmq's throughput to each other client's.

Run: ``python -m benchmarks client_throughput`` (``KILTMQ_BENCH_SCALE=0.1`` for a
quick run; ``KILTMQ_RABBITMQ_URL`` for another broker).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import kiltmq
from kiltmq import BasicProperties
from kiltmq.bench.options import DEFAULT_RABBITMQ_URL

URL = os.environ.get("KILTMQ_RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
SCALE = float(os.environ.get("KILTMQ_BENCH_SCALE", "1"))
PUBLISH_COUNT = int(100_000 * SCALE)
CONFIRM_COUNT = int(20_000 * SCALE)
CONSUME_COUNT = int(100_000 * SCALE)
PREFETCH = 1000
BODY = b"x" * 100


@dataclass
class Result:
    scenario: str
    client: str
    count: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.count * 1e6


def _queue(tag: str) -> str:
    return f"bench.client.{tag}.{uuid.uuid4().hex[:8]}"


async def _measure(
    scenario: str, client: str, count: int, body: Callable[[], Awaitable[None]]
) -> Result:
    wall, cpu = time.perf_counter(), time.process_time()
    await body()
    return Result(
        scenario, client, count, time.perf_counter() - wall, time.process_time() - cpu
    )


def _measure_sync(scenario: str, client: str, count: int, body: Callable[[], None]) -> Result:
    wall, cpu = time.perf_counter(), time.process_time()
    body()
    return Result(
        scenario, client, count, time.perf_counter() - wall, time.process_time() - cpu
    )


# -- helpers: fill and delete queues with kiltmq (not measured) ---------------------------


async def _fill(queue: str, count: int) -> None:
    async with kiltmq.connect(URL) as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue)
        await ch.confirm_select()
        for start in range(0, count, 10_000):
            await asyncio.gather(
                *(
                    ch.publish_nowait(BODY, routing_key=queue)
                    for _ in range(min(10_000, count - start))
                )
            )


async def _delete(*queues: str) -> None:
    async with kiltmq.connect(URL) as conn:
        ch = await conn.channel()
        for queue in queues:
            await ch.queue_delete(queue)


# -- kiltmq -------------------------------------------------------------------------------


async def kiltmq_publish(count: int) -> Result:
    queue = _queue("kiltmq")
    async with kiltmq.connect(URL) as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue)

        async def run() -> None:
            publish = ch.basic_publish
            for _ in range(count):
                await publish(BODY, "", queue)
            await ch.queue_declare(queue, passive=True)

        result = await _measure("publish", "kiltmq", count, run)
        await ch.queue_delete(queue)
    return result


async def kiltmq_confirm(count: int) -> Result:
    queue = _queue("kiltmq")
    properties = BasicProperties(delivery_mode=2)
    async with kiltmq.connect(URL) as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue, durable=True)
        await ch.confirm_select()

        async def run() -> None:
            publish = ch.publish_nowait
            await asyncio.gather(*[publish(BODY, "", queue, properties) for _ in range(count)])

        result = await _measure("confirm", "kiltmq", count, run)
        await ch.queue_delete(queue)
    return result


async def kiltmq_consume(count: int) -> Result:
    queue = _queue("kiltmq")
    await _fill(queue, count)
    async with kiltmq.connect(URL) as conn:
        ch = await conn.channel()
        await ch.basic_qos(PREFETCH)

        async def run() -> None:
            received = 0
            async for message in ch.consume(queue):
                message.ack()
                received += 1
                if received == count:
                    break

        result = await _measure("consume", "kiltmq", count, run)
        await ch.queue_delete(queue)
    return result


# -- aio-pika -------------------------------------------------------------------------------


async def aio_pika_publish(count: int) -> Result:
    import aio_pika

    queue = _queue("aiopika")
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        await channel.declare_queue(queue)
        exchange = channel.default_exchange

        async def run() -> None:
            for _ in range(count):
                await exchange.publish(aio_pika.Message(BODY), routing_key=queue)
            await channel.declare_queue(queue, passive=True)

        result = await _measure("publish", "aio-pika", count, run)
        await channel.queue_delete(queue)
    return result


async def aio_pika_confirm(count: int) -> Result:
    import aio_pika

    queue = _queue("aiopika")
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)
        exchange = channel.default_exchange

        async def run() -> None:
            mode = aio_pika.DeliveryMode.PERSISTENT
            await asyncio.gather(
                *[
                    exchange.publish(aio_pika.Message(BODY, delivery_mode=mode), routing_key=queue)
                    for _ in range(count)
                ]
            )

        result = await _measure("confirm", "aio-pika", count, run)
        await channel.queue_delete(queue)
    return result


async def aio_pika_consume(count: int) -> Result:
    import aio_pika

    queue_name = _queue("aiopika")
    await _fill(queue_name, count)
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.declare_queue(queue_name, passive=True)

        async def run() -> None:
            received = 0
            async with queue.iterator() as iterator:
                async for message in iterator:
                    await message.ack()
                    received += 1
                    if received == count:
                        break

        result = await _measure("consume", "aio-pika", count, run)
        await channel.queue_delete(queue_name)
    return result


# -- pika (BlockingConnection) ------------------------------------------------------------------


def pika_publish(count: int) -> Result:
    import pika

    queue = _queue("pika")
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        channel = connection.channel()
        channel.queue_declare(queue)

        def run() -> None:
            publish = channel.basic_publish
            for _ in range(count):
                publish("", queue, BODY)
            channel.queue_declare(queue, passive=True)

        result = _measure_sync("publish", "pika", count, run)
        channel.queue_delete(queue)
    finally:
        connection.close()
    return result


def pika_confirm(count: int) -> Result:
    import pika

    queue = _queue("pika")
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        properties = pika.BasicProperties(delivery_mode=2)

        def run() -> None:
            publish = channel.basic_publish
            for _ in range(count):
                publish("", queue, BODY, properties)  # waits for each confirm

        result = _measure_sync("confirm", "pika", count, run)
        channel.queue_delete(queue)
    finally:
        connection.close()
    return result


def pika_consume(count: int) -> Result:
    import pika

    queue = _queue("pika")
    asyncio.run(_fill(queue, count))
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=PREFETCH)

        def run() -> None:
            received = 0

            def on_message(ch: object, method: object, properties: object, body: bytes) -> None:
                nonlocal received
                channel.basic_ack(method.delivery_tag)  # type: ignore[attr-defined]
                received += 1
                if received == count:
                    channel.stop_consuming()

            channel.basic_consume(queue, on_message)
            channel.start_consuming()

        result = _measure_sync("consume", "pika", count, run)
        channel.queue_delete(queue)
    finally:
        connection.close()
    return result


# -- report ------------------------------------------------------------------------------------


def _table(results: list[Result]) -> str:
    lines = [
        f"{'scenario':<9} {'client':<9} {'messages':>9} {'msgs/s':>10} {'CPU us/msg':>11} "
        f"{'kiltmq is':>10}",
    ]
    by_scenario: dict[str, dict[str, Result]] = {}
    for result in results:
        by_scenario.setdefault(result.scenario, {})[result.client] = result
    for scenario, clients in by_scenario.items():
        ours = clients.get("kiltmq")
        for client, result in clients.items():
            ratio = "" if ours is None or client == "kiltmq" else f"{ours.rate / result.rate:.2f}x"
            lines.append(
                f"{scenario:<9} {client:<9} {result.count:>9} {result.rate:>10,.0f} "
                f"{result.cpu_us:>11.1f} {ratio:>10}"
            )
    return "\n".join(lines)


ASYNC_SCENARIOS: dict[tuple[str, str], Callable[[int], Awaitable[Result]]] = {
    ("publish", "kiltmq"): kiltmq_publish,
    ("confirm", "kiltmq"): kiltmq_confirm,
    ("consume", "kiltmq"): kiltmq_consume,
    ("publish", "aio-pika"): aio_pika_publish,
    ("confirm", "aio-pika"): aio_pika_confirm,
    ("consume", "aio-pika"): aio_pika_consume,
}
SYNC_SCENARIOS: dict[tuple[str, str], Callable[[int], Result]] = {
    ("publish", "pika"): pika_publish,
    ("confirm", "pika"): pika_confirm,
    ("consume", "pika"): pika_consume,
}


def _run(scenario: str, client: str, count: int) -> Result:
    sync = SYNC_SCENARIOS.get((scenario, client))
    if sync is not None:
        return sync(count)
    return asyncio.run(_await(ASYNC_SCENARIOS[scenario, client](count)))


async def _await(result: Awaitable[Result]) -> Result:
    return await result


def main() -> int:
    try:
        asyncio.run(_delete())
    except Exception as exc:
        print(f"client_throughput: RabbitMQ not reachable at {URL}: {exc}", file=sys.stderr)
        return 1
    results: list[Result] = []
    failures = 0
    for scenario, count in (
        ("publish", PUBLISH_COUNT),
        ("confirm", CONFIRM_COUNT),
        ("consume", CONSUME_COUNT),
    ):
        for client in ("kiltmq", "aio-pika", "pika"):
            try:
                results.append(_run(scenario, client, count))
            except Exception as exc:
                failures += 1
                print(f"{scenario:<9} {client:<9} failed: {exc!r}", flush=True)
                continue
            print(_table(results[-1:]).splitlines()[-1], flush=True)
    print()
    print(_table(results))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
