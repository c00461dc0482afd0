"""The paced producer's waits: a fixed rate needs waits shorter than the event loop's
timers can measure (0.1 ms at 10,000 msg/s)."""

from __future__ import annotations

import asyncio
import time

import pytest

from kiltmq import event_loop
from kiltmq.bench.workers import wait_until

DELAYS = (0.0001, 0.0004, 0.0007, 0.0015, 0.003)


@pytest.mark.parametrize("uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_a_wait_lasts_until_its_deadline(uvloop: bool) -> None:
    """On either loop, each wait returns at or after its deadline: with uvloop, a plain
    ``asyncio.sleep`` shorter than half a millisecond returns at once."""

    async def waits() -> list[tuple[float, float]]:
        reached = []
        for delay in DELAYS:
            deadline = time.monotonic() + delay
            await wait_until(deadline)
            reached.append((time.monotonic(), deadline))
        return reached

    for now, deadline in event_loop.run(waits(), uvloop=uvloop):
        assert now >= deadline


def test_a_wait_lets_the_loop_run() -> None:
    """Each wait, even one shorter than the loop's timer resolution, yields to the loop
    once, so the producer's connection is still served between messages."""

    async def main() -> int:
        turns = 0

        async def count() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        counter = asyncio.ensure_future(count())
        await asyncio.sleep(0)
        before = turns
        for _ in range(5):
            await wait_until(time.monotonic() + 0.0001)
        counter.cancel()
        return turns - before

    assert event_loop.run(main(), uvloop=True) >= 5
