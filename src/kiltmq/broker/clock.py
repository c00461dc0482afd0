"""The broker's clock: the one place its timing code reads the time and sets timers.

Message and queue TTL, queue expiry, x-death times, the consumer timeout, the
stalled-content check, the handshake timeout and heartbeats all ask the broker's
:class:`Clock`, never ``loop.time()`` or ``time.time()`` themselves. This one is a thin
wrapper over the event loop; a test can give the broker one it moves by hand
(``kiltmq.testing.ControlledClock``), so that a 30-minute TTL passes in a moment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["Clock"]


class Clock:
    """The event loop's monotonic clock and timers, and the wall clock."""

    #: True while the clock jumps (a controlled clock's ``advance``): clients could not
    #: send anything meanwhile, so heartbeats missed during a jump do not count.
    jumping = False

    #: Monotonic seconds: the event loop's ``time`` itself once attached (read on every
    #: received chunk for heartbeats, so no wrapper call in between).
    time: Callable[[], float]

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self.time = self._time

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Follow ``loop`` (the broker's, at start)."""
        self._loop = loop
        self.time = loop.time

    def _time(self) -> float:
        """Monotonic seconds before :meth:`attach` (the running loop's clock)."""
        return self.loop.time()

    def wall(self) -> float:
        """Seconds since the epoch (message timestamps, x-death times, stored deadlines)."""
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """Run ``callback`` once :meth:`time` reaches ``when``."""
        return self.loop.call_at(when, callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """Run ``callback`` ``delay`` seconds from now."""
        return self.loop.call_later(delay, callback)
