"""The load-generator processes that run every flow scenario.

:func:`producer_main` (one process, one connection) and :func:`consumer_main` (one
process, the scenario's consumer connections, each consuming its share of the queues on
one channel). The orchestrating process talks to them through a small shared array of
64-bit counters and flags (:class:`Slot`) and receives their final report through a pipe.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from multiprocessing.connection import Connection as Pipe
from typing import Any, Protocol

from kiltmq import event_loop
from kiltmq.bench.loadclient import LoadClient, connect, encode_publish
from kiltmq.bench.scenarios import MAX_CONSUMER_CONNECTIONS, Scenario
from kiltmq.protocol import spec
from kiltmq.protocol.frames import FRAME_END_OCTET

__all__ = ["Plan", "Shared", "Slot", "consumer_main", "producer_main", "wait_until"]


class Slot(IntEnum):
    """Indexes into the shared counter array."""

    GO = 0  # producer may start
    STOP_PRODUCER = 1
    STOP_CONSUMERS = 2
    MEASURING = 3  # consumers record latencies while set
    PUBLISHED = 4
    PRODUCER_READY = 5
    CONFIRMED = 6  # publisher confirms received (durable scenarios)
    NACKED = 7
    PRODUCER_DONE = 8  # everything published is routed; the producer waits for STOP_CONSUMERS
    CONSUMED = 9  # MAX_CONSUMER_CONNECTIONS slots: deliveries counted per connection
    CONSUMER_READY = 9 + MAX_CONSUMER_CONNECTIONS  # MAX_CONSUMER_CONNECTIONS slots

    @staticmethod
    def size() -> int:
        return 9 + 2 * MAX_CONSUMER_CONNECTIONS


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
    routing_keys: tuple[str, ...]  # the producer cycles through them
    queues: tuple[str, ...]
    max_in_flight: int = 10000  # deliveries published but not yet consumed
    batch_bytes: int = 16384
    confirm_window: int = 1000  # unconfirmed publishes (durable scenarios)
    uvloop: bool | None = None

    def consumer_queues(self, connection: int) -> tuple[str, ...]:
        """The queues consumed on consumer connection number ``connection``."""
        return self.queues[connection :: self.scenario.consumer_connections]


# -- producer ------------------------------------------------------------------------------


async def _wait_flag(shared: Shared, slot: int, client: LoadClient) -> None:
    while not shared[slot]:
        if client.error is not None:
            raise client.error
        await asyncio.sleep(0.001)


async def _produce(plan: Plan, shared: Shared) -> None:
    scenario = plan.scenario
    client = await connect(plan.url)
    try:
        channel = await client.open_channel(1)
        assert client.transport is not None
        client.transport.set_write_buffer_limits(high=256 * 1024)
        if scenario.durable:
            await client.select_confirms(channel)
        payload = scenario.payload
        props = payload.persistent() if scenario.durable else payload.properties
        frames = [
            encode_publish(plan.exchange, key, payload.body, props, channel, client.frame_max)
            for key in plan.routing_keys
        ]
        shared[Slot.PRODUCER_READY] = 1
        await _wait_flag(shared, Slot.GO, client)
        if scenario.rate:
            await _produce_paced(plan, shared, client, frames[0])
        else:
            await _produce_flat_out(plan, shared, client, frames)
        # A broker may drop what a channel has not yet routed when the connection closes
        # (RabbitMQ does); channel.close-ok comes after every publish before it is routed.
        await asyncio.wait_for(
            client.request(channel, spec.ChannelClose(reply_code=200), spec.ChannelCloseOk), 60
        )
        # Alive until told, so that the orchestrator can read this process's CPU time.
        shared[Slot.PRODUCER_DONE] = 1
        deadline = time.monotonic() + 120
        while not shared[Slot.STOP_CONSUMERS] and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
    finally:
        await client.close()


def _batches(frames: list[bytes], size: int, most: int) -> list[tuple[bytes, int]]:
    """Frames joined into writes of about ``size`` bytes (at most ``most`` messages each),
    cycling through ``frames`` in order: (bytes, messages) pairs."""
    count = max(1, min(most, size // len(frames[0])))
    if len(frames) == 1:
        return [(frames[0] * count, count)]
    return [
        (b"".join(frames[i : i + count]), len(frames[i : i + count]))
        for i in range(0, len(frames), count)
    ]


async def _produce_flat_out(
    plan: Plan, shared: Shared, client: LoadClient, frames: list[bytes]
) -> None:
    scenario = plan.scenario
    window = plan.confirm_window if scenario.durable else 0
    batches = _batches(frames, plan.batch_bytes, window // 2 if window else 1 << 30)
    write = client.send_raw
    sleep = asyncio.sleep
    stop = Slot.STOP_PRODUCER
    cap = max(1, plan.max_in_flight // scenario.copies) if scenario.consumers else 0
    copies = scenario.copies
    slots = [Slot.CONSUMED + i for i in range(scenario.consumer_connections)]
    published = 0
    turn = 0
    while not shared[stop]:
        if client.error is not None:
            raise client.error
        if client.paused:
            await client.wait_writable()
            continue
        if cap and published - sum([shared[i] for i in slots]) // copies >= cap:
            await sleep(0.0005)
            continue
        batch, count = batches[turn]
        if window and published + count - client.confirmed > window:
            await client.wait_confirm()
            shared[Slot.CONFIRMED] = client.confirmed
            continue
        turn = (turn + 1) % len(batches)
        write(batch)
        published += count
        shared[Slot.PUBLISHED] = published
        if window:
            shared[Slot.CONFIRMED] = client.confirmed
        await sleep(0)
    if window:
        while client.confirmed < published:  # every publish gets its confirm
            await client.wait_confirm()
        shared[Slot.CONFIRMED] = client.confirmed
        shared[Slot.NACKED] = client.nacked


async def _produce_paced(plan: Plan, shared: Shared, client: LoadClient, frame: bytes) -> None:
    """Publish ``rate`` messages per second, each carrying its send time in the first 8
    bytes of its body."""
    rate = plan.scenario.rate
    size = plan.scenario.body_size
    if size < 8:
        raise ValueError("latency scenarios need a body of at least 8 bytes")
    prefix = frame[: len(frame) - 1 - size]
    rest = frame[len(frame) - 1 - size + 8 :]  # the body after its first 8 bytes, frame end
    if not rest.endswith(FRAME_END_OCTET):
        raise ValueError("latency scenarios need a body that fits in one frame")
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
                b"".join([prefix + monotonic_ns().to_bytes(8, "big") + rest for _ in range(due)])
            )
            sent += due
            shared[Slot.PUBLISHED] = sent
        await wait_until(start + sent / rate)


#: Event-loop timers are kept in whole milliseconds (uvloop rounds a delay to the
#: nearest one, so a shorter sleep returns at once; asyncio's own loop rounds it up).
LOOP_TIMER_RESOLUTION = 0.001


async def wait_until(deadline: float) -> None:
    """Return once ``time.monotonic()`` reaches ``deadline``. A wait shorter than the
    loop's timer resolution sleeps the thread (``time.sleep``) and then yields to the
    loop once: at 10,000 msg/s a paced producer waits 0.1 ms between messages, and
    ``asyncio.sleep`` would return at once on uvloop, so that the producer spun on a
    core of its own, or sleep a whole millisecond on asyncio's loop, so that it sent in
    bursts."""
    remaining = deadline - time.monotonic()
    if remaining >= LOOP_TIMER_RESOLUTION:
        await asyncio.sleep(remaining)
        remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
    await asyncio.sleep(0)


def producer_main(plan: Plan, shared: Shared, report: Pipe) -> None:
    """Entry point of the producer process."""
    result: dict[str, Any] = {"error": None}
    try:
        event_loop.run(_produce(plan, shared), uvloop=plan.uvloop)
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
        for i in range(scenario.consumer_connections):
            client = await connect(plan.url)
            clients.append(client)
            channel = await client.open_channel(1)
            client.on_delivered = partial(shared.__setitem__, Slot.CONSUMED + i)
            for queue in plan.consumer_queues(i):
                await client.consume(
                    channel, queue, no_ack=scenario.no_ack, prefetch=scenario.prefetch
                )
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
        result["latencies"] = event_loop.run(_consume(plan, shared), uvloop=plan.uvloop)
    except BaseException as exc:
        result["error"] = f"consumer: {type(exc).__name__}: {exc}"
    report.send(result)
    report.close()
