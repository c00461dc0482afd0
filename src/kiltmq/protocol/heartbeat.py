"""Heartbeat bookkeeping, as data: no clock, no timer."""

from __future__ import annotations

__all__ = ["Heartbeat"]


class Heartbeat:
    """Heartbeat bookkeeping as data: the shell tells it when bytes moved and asks what to do.

    With a negotiated timeout of ``interval`` seconds we send a heartbeat frame when we have
    sent nothing for ``interval / 2`` seconds, and count the peer as dead when it has sent
    nothing for ``miss_limit * interval`` seconds (RabbitMQ's rule: two missed beats).
    ``interval`` 0 disables both.
    """

    __slots__ = ("interval", "last_received", "last_sent", "miss_limit")

    def __init__(self, interval: float = 0, miss_limit: int = 2) -> None:
        self.interval = interval
        self.miss_limit = miss_limit
        self.last_received = 0.0
        self.last_sent = 0.0

    def start(self, interval: float, now: float) -> None:
        self.interval = interval
        self.last_received = self.last_sent = now

    def received(self, now: float) -> None:
        self.last_received = now

    def sent(self, now: float) -> None:
        self.last_sent = now

    def send_due(self, now: float) -> bool:
        return bool(self.interval) and now - self.last_sent >= self.interval / 2

    def peer_dead(self, now: float) -> bool:
        return bool(self.interval) and now - self.last_received > self.interval * self.miss_limit

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`send_due` or :meth:`peer_dead` may next become true (None: never)."""
        if not self.interval:
            return None
        return min(
            self.last_sent + self.interval / 2,
            self.last_received + self.interval * self.miss_limit,
        )
