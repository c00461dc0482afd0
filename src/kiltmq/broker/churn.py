"""Broker-wide counts of connections, channels and queues coming and going (RabbitMQ's
``churn_rates``): plain integers, incremented where objects are made and closed."""

from __future__ import annotations

__all__ = ["Churn"]


class Churn:
    """The counters, shared by the broker and its vhosts."""

    FIELDS = (
        "channel_closed", "channel_created", "connection_closed", "connection_created",
        "queue_created", "queue_declared", "queue_deleted",
    )
    __slots__ = FIELDS

    def __init__(self) -> None:
        self.channel_closed = 0
        self.channel_created = 0
        self.connection_closed = 0
        self.connection_created = 0
        self.queue_created = 0
        self.queue_declared = 0
        self.queue_deleted = 0

    def values(self) -> tuple[int, ...]:
        """The counters in :attr:`FIELDS` order."""
        return tuple(getattr(self, name) for name in self.FIELDS)
