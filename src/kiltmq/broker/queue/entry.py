"""Entry: a message's place in one queue."""

from __future__ import annotations

from kiltmq.broker.message import Message

__all__ = ["Entry", "seq_of"]


class Entry:
    """A message's place in one queue: the shared message, this queue's sequence number
    (publication order), whether it was delivered before, its deadline (message TTL, on
    the event loop's clock) and its priority level (x-max-priority queues)."""

    __slots__ = ("message", "seq", "redelivered", "expires", "priority")

    #: Deliveries returned so far (counted by quorum queues only, see
    #: :class:`~kiltmq.broker.queue.quorum.CountedEntry`).
    delivery_count = 0
    #: The content header to send instead of the message's own (None: the message's).
    header: bytes | None = None

    def __init__(
        self,
        message: Message,
        seq: int,
        redelivered: bool = False,
        expires: float | None = None,
        priority: int = 0,
    ) -> None:
        self.message = message
        self.seq = seq
        self.redelivered = redelivered
        self.expires = expires
        self.priority = priority

    def __repr__(self) -> str:
        return f"Entry({self.message!r}, seq={self.seq}, redelivered={self.redelivered})"


def seq_of(entry: Entry) -> int:
    """Sort key: the entry's sequence number."""
    return entry.seq
