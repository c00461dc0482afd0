"""The consumer timeout of one channel (RabbitMQ's ``consumer_timeout``): whether its
oldest unacknowledged delivery has waited too long.

Deliveries carry no timestamp (the deliver path stays as it is). Each periodic check
instead records the time with the channel's last delivery tag: a delivery is at least as
old as the first record whose tag covers it, so a check can tell that it is overdue
without knowing exactly when it went out. The channel closes at most two check intervals
after the timeout, as RabbitMQ's own periodic check does too."""

from __future__ import annotations

from collections import deque

__all__ = ["AckClock", "timed_out_text"]


def timed_out_text(channel: int, timeout_ms: int) -> str:
    """RabbitMQ 3.10's reply text for an overdue acknowledgement."""
    return (
        f"PRECONDITION_FAILED - delivery acknowledgement on channel {channel} timed out. "
        f"Timeout value used: {timeout_ms} ms. This timeout value can be configured, "
        "see consumers doc guide to learn more"
    )


class AckClock:
    """(time, last delivery tag) records of one channel, taken at each check."""

    __slots__ = ("_marks",)

    def __init__(self) -> None:
        # made at the first record: most channels never have a delivery unacked at a check
        self._marks: deque[tuple[float, int]] | None = None

    def overdue(self, now: float, timeout: float, oldest: int | None, last_tag: int) -> bool:
        """Whether the unacked delivery ``oldest`` (the smallest tag still unacked, None
        if none) went out at least ``timeout`` seconds before ``now``; records
        ``last_tag`` at ``now`` otherwise."""
        marks = self._marks
        if oldest is None:
            if marks:
                marks.clear()
            return False
        if marks is None:
            marks = self._marks = deque()
        while marks and marks[0][1] < oldest:
            marks.popleft()
        if marks and now - marks[0][0] >= timeout:
            return True
        if not marks or marks[-1][1] != last_tag:
            marks.append((now, last_tag))
        return False
