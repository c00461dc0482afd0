"""The test's handle on the broker's clock (``amqp_broker.clock``): each call is handed to
the broker's event loop, so a test in any thread can move time."""

from __future__ import annotations

from kiltmq.broker.clock import Clock
from kiltmq.testing.broker_loop import BrokerLoop
from kiltmq.testing.clock import ControlledClock

__all__ = ["ClockControl"]


class ClockControl:
    """Moves a broker's :class:`~kiltmq.testing.clock.ControlledClock` from a test."""

    def __init__(self, clock: Clock, loop: BrokerLoop) -> None:
        self._clock = clock
        self._loop = loop

    def _controlled(self) -> ControlledClock:
        clock = self._clock
        if not isinstance(clock, ControlledClock):
            raise TypeError(
                "this broker runs on the real clock: start it with "
                "clock=kiltmq.testing.ControlledClock() to move time"
            )
        return clock

    def advance(self, seconds: float, *, silent: bool = False) -> None:
        """Move the broker's time ``seconds`` forward: every TTL, queue expiry, consumer
        timeout, stalled-content, handshake and heartbeat timer due meanwhile runs, in
        order, before this returns (what it sends to clients is on its way). Clients
        are taken to have kept up their heartbeats, unless ``silent``."""
        clock = self._controlled()
        self._loop.call(lambda: clock.advance(seconds, silent=silent))

    def freeze(self) -> None:
        """Stop the broker's time: from now on only :meth:`advance` moves it."""
        clock = self._controlled()
        self._loop.call(clock.freeze)

    def resume(self) -> None:
        """Let the broker's time flow again (from where it stands)."""
        clock = self._controlled()
        self._loop.call(clock.resume)

    @property
    def frozen(self) -> bool:
        clock = self._clock
        return isinstance(clock, ControlledClock) and clock.frozen

    def time(self) -> float:
        """The broker's monotonic time, in seconds."""
        return self._loop.call(self._clock.time)

    def wall(self) -> float:
        """The broker's wall clock (seconds since the epoch): real time plus what
        :meth:`advance` added."""
        return self._loop.call(self._clock.wall)

    def __repr__(self) -> str:
        state = "frozen" if self.frozen else "running"
        return f"<broker clock, {state}>"
