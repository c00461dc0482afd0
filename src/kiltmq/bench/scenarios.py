"""The broker scenarios and the load-generator processes that run them.

Each scenario is data (:class:`Scenario`); the same two worker functions run all of them:
:func:`producer_main` (one process, one connection) and :func:`consumer_main` (one
process, one connection per queue). The orchestrating process talks to them through a
small shared array of 64-bit counters and flags (:class:`Slot`) and receives their
final report through a pipe.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from multiprocessing.connection import Connection as Pipe
from typing import Any, Protocol

from kiltmq.bench.loadclient import LoadClient, connect, encode_publish
from kiltmq.protocol import spec
from kiltmq.protocol.frames import FRAME_END_OCTET
from kiltmq.protocol.spec import BasicProperties

__all__ = [
    "MAX_QUEUES",
    "SCENARIOS",
    "Plan",
    "Scenario",
    "Shared",
    "Slot",
    "consumer_main",
    "producer_main",
]

MAX_QUEUES = 8


@dataclass(frozen=True)
class Scenario:
    """One benchmark scenario; the same for every broker."""

    key: str
    title: str
    queues: int = 1
    consumers: bool = True
    no_ack: bool = False
    fanout: bool = False
    prefetch: int = 1000
    rate: int = 0  # messages per second; 0: as fast as the broker takes them
    latency: bool = False
    body_size: int = 100
    unit: str = "msg/s"


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario("a", "1 producer, 1 consumer, 1 queue, manual ack, prefetch 1000"),
        Scenario("b", "1 producer, 1 consumer, 1 queue, no-ack", no_ack=True, prefetch=0),
        Scenario("c", "publish only, 1 queue, no consumer", consumers=False),
        Scenario(
            "d",
            "fanout exchange to 4 queues, 4 consumers, manual ack",
            queues=4,
            fanout=True,
            unit="deliveries/s",
        ),
        Scenario("e", "latency at 1,000 msg/s, 1 consumer, manual ack", rate=1000, latency=True),
    )
}


class Slot(IntEnum):
    """Indexes into the shared counter array."""

    GO = 0  # producer may start
    STOP_PRODUCER = 1
    STOP_CONSUMERS = 2
    MEASURING = 3  # consumers record latencies while set
    PUBLISHED = 4
    PRODUCER_READY = 5
    CONSUMED = 8  # MAX_QUEUES slots: deliveries counted per consumer
    CONSUMER_READY = 8 + MAX_QUEUES  # MAX_QUEUES slots

    @staticmethod
    def size() -> int:
        return 8 + 2 * MAX_QUEUES


class Shared(Protocol):
    """The shared ``multiprocessing`` array of int64 (``RawArray('q', Slot.size())``)."""

    def __getitem__(self, index: int, /) -> int: ...
    def __setitem__(self, index: int, value: int, /) -> None: ...


@dataclass(frozen=True)
class Plan:
    """What the worker processes need to know."""

    url: str
    scenario: Scenario
    exchange: str
    routing_key: str
    queues: tuple[str, ...]
    max_in_flight: int = 10000
    batch_bytes: int = 16384


# -- producer ------------------------------------------------------------------------------


async def _wait_flag(shared: Shared, slot: int, client: LoadClient) -> None:
    while not shared[slot]:
        if client.error is not None:
            raise client.error
        await asyncio.sleep(0.001)


async def _produce(plan: Plan, shared: Shared) -> None:
    client = await connect(plan.url)
    try:
        channel = await client.open_channel(1)
        assert client.transport is not None
        client.transport.set_write_buffer_limits(high=256 * 1024)
        body = bytes(plan.scenario.body_size)
        frame = encode_publish(
            plan.exchange,
            plan.routing_key,
            body,
            BasicProperties(delivery_mode=1),
            channel,
            client.frame_max,
        )
        shared[Slot.PRODUCER_READY] = 1
        await _wait_flag(shared, Slot.GO, client)
        if plan.scenario.rate:
            await _produce_paced(plan, shared, client, frame)
        else:
            await _produce_flat_out(plan, shared, client, frame)
        # A broker may drop what a channel has not yet routed when the connection closes
        # (RabbitMQ does); channel.close-ok comes after every publish before it is routed.
        await asyncio.wait_for(
            client.request(channel, spec.ChannelClose(reply_code=200), spec.ChannelCloseOk), 60
        )
    finally:
        await client.close()


async def _produce_flat_out(plan: Plan, shared: Shared, client: LoadClient, frame: bytes) -> None:
    count = max(1, plan.batch_bytes // len(frame))
    batch = frame * count
    write = client.send_raw
    sleep = asyncio.sleep
    stop = Slot.STOP_PRODUCER
    cap = plan.max_in_flight if plan.scenario.consumers else 0
    slots = [Slot.CONSUMED + i for i in range(len(plan.queues))]
    published = 0
    while not shared[stop]:
        if client.error is not None:
            raise client.error
        if client.paused:
            await client.wait_writable()
            continue
        if cap and published - min([shared[i] for i in slots]) >= cap:
            await sleep(0.0005)
            continue
        write(batch)
        published += count
        shared[Slot.PUBLISHED] = published
        await sleep(0)


async def _produce_paced(plan: Plan, shared: Shared, client: LoadClient, frame: bytes) -> None:
    """Publish ``rate`` messages per second, each carrying its send time in its body."""
    rate = plan.scenario.rate
    size = plan.scenario.body_size
    if size < 8:
        raise ValueError("latency scenarios need a body of at least 8 bytes")
    prefix = frame[: len(frame) - 1 - size]
    pad = bytes(size - 8) + FRAME_END_OCTET
    monotonic_ns = time.monotonic_ns
    monotonic = time.monotonic
    start = monotonic()
    sent = 0
    while not shared[Slot.STOP_PRODUCER]:
        if client.error is not None:
            raise client.error
        if client.paused:
            await client.wait_writable()
        due = min(int((monotonic() - start) * rate) + 1 - sent, 1000)
        if due > 0:
            client.send_raw(
                b"".join([prefix + monotonic_ns().to_bytes(8, "big") + pad for _ in range(due)])
            )
            sent += due
            shared[Slot.PUBLISHED] = sent
        await asyncio.sleep(max(0.0, start + sent / rate - monotonic()))


def producer_main(plan: Plan, shared: Shared, report: Pipe) -> None:
    """Entry point of the producer process."""
    result: dict[str, Any] = {"error": None}
    try:
        asyncio.run(_produce(plan, shared))
    except BaseException as exc:
        result["error"] = f"producer: {type(exc).__name__}: {exc}"
    report.send(result)
    report.close()


# -- consumers -----------------------------------------------------------------------------


async def _consume(plan: Plan, shared: Shared) -> list[int]:
    scenario = plan.scenario
    clients: list[LoadClient] = []
    samples: list[int] = []
    try:
        for i, queue in enumerate(plan.queues):
            client = await connect(plan.url)
            clients.append(client)
            channel = await client.open_channel(1)
            client.on_delivered = partial(shared.__setitem__, Slot.CONSUMED + i)
            await client.consume(channel, queue, no_ack=scenario.no_ack, prefetch=scenario.prefetch)
            shared[Slot.CONSUMER_READY + i] = 1
        recording = False
        while not shared[Slot.STOP_CONSUMERS]:
            for client in clients:
                if client.error is not None:
                    raise client.error
            if scenario.latency and recording != bool(shared[Slot.MEASURING]):
                recording = not recording
                for client in clients:
                    client.latencies = samples if recording else None
            await asyncio.sleep(0.005)
    finally:
        for client in clients:
            await client.close()
    return samples


def consumer_main(plan: Plan, shared: Shared, report: Pipe) -> None:
    """Entry point of the consumer process (all of a scenario's consumers)."""
    result: dict[str, Any] = {"error": None, "latencies": []}
    try:
        result["latencies"] = asyncio.run(_consume(plan, shared))
    except BaseException as exc:
        result["error"] = f"consumer: {type(exc).__name__}: {exc}"
    report.send(result)
    report.close()
