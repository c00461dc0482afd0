"""The ready entries of a queue, in delivery order: :class:`FifoReady` (publication
order) or :class:`PriorityReady` (x-max-priority: highest level first, publication order
within a level).

Requeued entries go back to their original position, ordered by sequence number, as in
RabbitMQ's classic queues. Entries only ever leave from the head (delivery, basic.get,
expiry, drop-head), so an entry being put back belongs among the entries put back before
it, at the head: :func:`put_back` merges with that head part only, and costs the number
of entries put back plus those it passes, not the length of the queue.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator
from typing import Protocol

from kiltmq.broker.message import Message
from kiltmq.broker.queue.entry import Entry, seq_of

__all__ = ["FifoReady", "PriorityReady", "Ready", "priority_level", "put_back"]


class Ready(Protocol):
    """The ready entries of a queue in delivery order."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Entry]: ...

    def __getitem__(self, index: int) -> Entry: ...

    def append(self, entry: Entry) -> None: ...

    def popleft(self) -> Entry: ...

    def clear(self) -> None: ...

    def put_back(self, back: list[Entry]) -> None:
        """Put entries back at their positions by sequence number (``back`` sorted by
        it)."""


def put_back(ready: deque[Entry], back: list[Entry]) -> None:
    """Merge ``back`` (sorted by seq) into ``ready`` (sorted by seq) by sequence number,
    touching only the entries of ``ready`` that come before the last of ``back``."""
    last = back[-1].seq
    if ready and ready[0].seq < last:
        ahead: list[Entry] = []
        popleft = ready.popleft
        while ready and ready[0].seq < last:
            ahead.append(popleft())
        back = sorted(ahead + back, key=seq_of)  # two sorted runs: a linear merge
    ready.extendleft(reversed(back))


class FifoReady(deque[Entry]):
    """Ready entries of a plain queue, in publication order."""

    __slots__ = ()

    def put_back(self, back: list[Entry]) -> None:
        put_back(self, back)


def priority_level(message: Message, max_priority: int) -> int:
    """The level of ``message`` in a queue with x-max-priority ``max_priority``: its
    priority property, capped (0 without one, or with malformed properties)."""
    try:
        priority = message.priority()
    except (ValueError, IndexError, struct.error):
        return 0
    return min(priority or 0, max_priority)


class PriorityReady:
    """Ready entries of a priority queue (x-max-priority): one deque per priority level,
    served highest first, FIFO within a level."""

    __slots__ = ("levels", "count")

    def __init__(self, max_priority: int) -> None:
        self.levels: list[deque[Entry]] = [deque() for _ in range(max_priority + 1)]
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Entry]:
        for level in reversed(self.levels):
            yield from level

    def __getitem__(self, index: int) -> Entry:
        if index != 0:
            raise IndexError("only the head can be looked at")
        for level in reversed(self.levels):
            if level:
                return level[0]
        raise IndexError("empty")

    def append(self, entry: Entry) -> None:
        self.levels[entry.priority].append(entry)
        self.count += 1

    def popleft(self) -> Entry:
        for level in reversed(self.levels):
            if level:
                self.count -= 1
                return level.popleft()
        raise IndexError("empty")

    def clear(self) -> None:
        for level in self.levels:
            level.clear()
        self.count = 0

    def put_back(self, back: list[Entry]) -> None:
        by_level: dict[int, list[Entry]] = {}
        for entry in back:
            by_level.setdefault(entry.priority, []).append(entry)
        for priority, entries in by_level.items():
            put_back(self.levels[priority], entries)
        self.count += len(back)
