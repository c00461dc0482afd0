"""Time in a queue: message TTL (per-queue x-message-ttl, per-message expiration) and
queue expiry (x-expires).

Deadlines are on the event loop's monotonic clock; a timer is set only when something can
expire: :class:`Deadline` keeps one timer for the earliest deadline asked for (the ready
head's), :class:`QueueExpiry` counts down while the queue has no consumer and is not
used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kiltmq.broker.message import Message

__all__ = ["CallAt", "Deadline", "QueueExpiry", "message_ttl"]

#: Schedules a callback at a time of the event loop's clock.
CallAt = Callable[[float, Callable[[], None]], asyncio.TimerHandle]


def message_ttl(message: Message, queue_ttl: int | None) -> int | None:
    """The TTL of ``message`` in a queue with x-message-ttl ``queue_ttl``, in
    milliseconds: the smaller of the two (None: it does not expire)."""
    ttl = queue_ttl
    try:
        per_message = message.expiration_ms()
    except (ValueError, IndexError):
        per_message = None
    if per_message is not None and (ttl is None or per_message < ttl):
        ttl = per_message
    return ttl


class Deadline:
    """A timer that runs ``callback`` at the earliest of the times it was asked for."""

    __slots__ = ("_call_at", "_callback", "_handle", "_at")

    def __init__(self, call_at: CallAt, callback: Callable[[], None]) -> None:
        self._call_at = call_at
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0

    @property
    def armed(self) -> bool:
        return self._handle is not None

    def schedule(self, when: float) -> None:
        """Run the callback at ``when``, unless it runs earlier already."""
        handle = self._handle
        if handle is not None:
            if self._at <= when:
                return
            handle.cancel()
        self._at = when
        self._handle = self._call_at(when, self._fire)

    def reschedule(self, when: float) -> None:
        """Run the callback at ``when`` (and not at the time asked for before)."""
        self.cancel()
        self.schedule(when)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def release(self) -> None:
        """Cancel, and let go of the callback for good (its owner is deleted)."""
        self.cancel()
        self._callback = _nothing

    def _fire(self) -> None:
        self._handle = None
        self._callback()


def _nothing() -> None:
    """The callback of a released :class:`Deadline`."""


class QueueExpiry:
    """x-expires: the queue is deleted once it has had no consumer and no use for
    ``expires`` milliseconds."""

    __slots__ = ("expires", "_now", "_call_at", "_in_use", "_expire", "_timer", "_last_used")

    def __init__(
        self,
        expires: int,
        now: Callable[[], float],
        call_at: CallAt,
        in_use: Callable[[], bool],
        expire: Callable[[], None],
    ) -> None:
        self.expires = expires
        self._now = now
        self._call_at = call_at
        #: Whether the queue is out of reach of expiry now (deleted, or consumed from).
        self._in_use = in_use
        self._expire = expire
        self._timer: asyncio.TimerHandle | None = None
        self._last_used = 0.0

    def touch(self, idle: bool) -> None:
        """The queue was used: restart the countdown (armed if ``idle``: no consumer)."""
        self._last_used = self._now()
        if self._timer is None and idle:
            self._timer = self._call_at(self._last_used + self.expires / 1000.0, self._fire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        if self._in_use():
            return
        due = self._last_used + self.expires / 1000.0
        if self._now() >= due:
            self._expire()
        else:
            self._timer = self._call_at(due, self._fire)
