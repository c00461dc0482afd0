"""RabbitMQ's consumer timeout for the whole broker: one periodic check over every
connection's channels (no timer per delivery or per channel). A channel whose oldest
unacknowledged delivery waited longer than the timeout is closed with 406
PRECONDITION_FAILED and its unacked deliveries go back to their queues, redelivered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from kiltmq.broker.clock import Clock

__all__ = ["ConsumerTimeout", "TimedSession"]

log = logging.getLogger("kiltmq.broker")


class TimedSession(Protocol):
    """What the check needs of a connection's session."""

    def check_ack_timeouts(self, now: float, timeout: float) -> None: ...


class ConsumerTimeout:
    """Checks the sessions that ``sessions()`` gives every ``interval`` (a quarter of the
    timeout, at most 30 s); a channel closes between the timeout and the timeout plus two
    intervals after its delivery."""

    def __init__(self, clock: Clock, sessions: Callable[[], Iterable[TimedSession]]) -> None:
        self.timeout = 0.0
        self.interval = 0.0
        self._clock = clock
        self._sessions = sessions
        self._running = False
        self._timer: asyncio.TimerHandle | None = None

    def start(self, timeout: float | None) -> None:
        """Check every channel from now on, with ``timeout`` seconds (None: never)."""
        self.stop()
        if timeout is None:
            return
        self.timeout = timeout
        self.interval = min(max(timeout / 4, 0.01), 30.0)
        self._running = True
        self._timer = self._clock.call_later(self.interval, self._check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._running = False

    def _check(self) -> None:
        if not self._running:
            return
        now = self._clock.time()
        for session in list(self._sessions()):
            try:
                session.check_ack_timeouts(now, self.timeout)
            except Exception:
                log.exception("consumer timeout check failed for %r", session)
        self._timer = self._clock.call_later(self.interval, self._check)
