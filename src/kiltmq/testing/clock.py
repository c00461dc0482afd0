"""A broker clock a test moves by hand: :meth:`ControlledClock.advance` runs, in order,
every timer that falls due (TTLs, queue expiry, the consumer timeout, heartbeats, the
handshake and stalled-content timeouts), each seeing the time it was set for, so a
30-minute TTL expires in a moment.

Running (the default), the clock follows the event loop plus what ``advance`` added;
frozen, it moves only when advanced. Its methods run on the broker's loop (the
fixture's ``clock`` hands them there).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable

from kiltmq.broker.clock import Clock

__all__ = ["ControlledClock"]

log = logging.getLogger("kiltmq.broker")

#: Cancelled timers kept in the heap before it is compacted.
_COMPACT_AT = 256


class ControlledClock(Clock):
    """A :class:`~kiltmq.broker.clock.Clock` that :meth:`advance` moves forward."""

    def __init__(self, *, frozen: bool = False) -> None:
        super().__init__()
        self.time = self._controlled_time
        #: Seconds added to the event loop's clock (and to the wall clock).
        self.offset = 0.0
        self._start_frozen = frozen
        #: The event loop's time when frozen (None: running).
        self._frozen_at: float | None = None
        self._timers: list[tuple[float, int, asyncio.TimerHandle, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._wakeup: asyncio.TimerHandle | None = None
        self._wakeup_at = float("inf")
        self._cancelled = 0

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        previous = self._loop
        if previous is not None and previous is not loop:  # a restart: carry the time over
            now = self.time()
            self._timers.clear()  # they belonged to the broker that stopped
            self._wakeup = None
            super().attach(loop)
            self.time = self._controlled_time
            self.offset = 0.0
            self.offset = now - self.time()
        else:
            super().attach(loop)
            self.time = self._controlled_time
            if self._start_frozen and self._frozen_at is None:
                self._frozen_at = loop.time()
        self._arm()

    # -- reading ------------------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def _controlled_time(self) -> float:
        frozen_at = self._frozen_at
        if frozen_at is None:
            return self.loop.time() + self.offset
        return frozen_at + self.offset

    def wall(self) -> float:
        base = time.time()
        if self._frozen_at is not None:
            base -= self.loop.time() - self._frozen_at
        return base + self.offset

    # -- timers -------------------------------------------------------------------------

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, (), self.loop)
        heapq.heappush(self._timers, (when, next(self._seq), handle, callback))
        if when < self._wakeup_at:
            self._arm()
        elif len(self._timers) > _COMPACT_AT:
            self._compact()
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self.call_at(self.time() + delay, callback)

    @property
    def pending(self) -> int:
        """How many timers wait (cancelled ones not counted)."""
        return sum(1 for timer in self._timers if not timer[2].cancelled())

    def _compact(self) -> None:
        live = [t for t in self._timers if not t[2].cancelled()]
        if len(live) * 2 < len(self._timers):
            heapq.heapify(live)
            self._timers = live

    def _arm(self) -> None:
        """Wake up on the event loop when the earliest timer falls due (running only)."""
        timers = self._timers
        while timers and timers[0][2].cancelled():
            heapq.heappop(timers)
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        self._wakeup_at = float("inf")
        if not timers or self._loop is None:
            return
        self._wakeup_at = timers[0][0]
        if self._frozen_at is None:
            self._wakeup = self._loop.call_at(self._wakeup_at - self.offset, self._on_wakeup)

    def _on_wakeup(self) -> None:
        self._wakeup = None
        self._run_due(self.time())
        self._arm()

    def _run_due(self, until: float) -> None:
        """Run the timers due at ``until``, earliest first, moving the clock to each."""
        timers = self._timers
        while timers and timers[0][0] <= until:
            when, _, handle, callback = heapq.heappop(timers)
            if handle.cancelled():
                continue
            self._move_to(when)
            try:
                callback()
            except Exception:
                log.exception("timer %r failed", callback)

    def _move_to(self, when: float) -> None:
        now = self.time()
        if when > now:
            self.offset += when - now

    # -- moving -------------------------------------------------------------------------

    def advance(self, seconds: float, *, silent: bool = False) -> None:
        """Move the clock ``seconds`` forward, running the timers that fall due in order.
        Clients could not send meanwhile: their missed heartbeats do not count, unless
        ``silent`` (then a connection whose heartbeats lapse is dropped, as RabbitMQ
        drops a client silent that long)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        target = self.time() + seconds
        self.jumping = not silent
        try:
            self._run_due(target)
            self._move_to(target)
        finally:
            self.jumping = False
        self._arm()

    def freeze(self) -> None:
        """Stop following the event loop: from now on only :meth:`advance` moves it."""
        if self._frozen_at is None:
            self._frozen_at = self.loop.time()
            self._arm()

    def resume(self) -> None:
        """Follow the event loop again, from the time the clock shows now."""
        frozen_at = self._frozen_at
        if frozen_at is not None:
            self.offset += frozen_at - self.loop.time()
            self._frozen_at = None
            self._arm()
