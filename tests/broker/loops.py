"""A broker running in its thread on asyncio's event loop or on uvloop's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from kiltmq.broker import Broker

LOOPS = ["asyncio", "uvloop"]


@contextmanager
def running(broker: Broker, loop: str) -> Iterator[Broker]:
    """``broker`` started in its thread on ``loop`` ("asyncio" or "uvloop")."""
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        previous = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # for the thread's new loop
        try:
            broker.start_in_thread()
        finally:
            asyncio.set_event_loop_policy(previous)
        kind = broker.call_in_loop(lambda: type(asyncio.get_running_loop()).__module__)
        assert kind.startswith("uvloop")
    else:
        broker.start_in_thread()
    try:
        yield broker
    finally:
        broker.stop_thread()
