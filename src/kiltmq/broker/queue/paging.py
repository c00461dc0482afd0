"""Paging: a durable queue that holds many ready messages keeps the bodies of further
persistent ones in the store only.

A message arriving while the queue is over the store's page limits
(:attr:`~kiltmq.broker.store.Store.page_messages`, :attr:`~kiltmq.broker.store.Store.page_bytes`)
is swapped for its stand-in (``message.paged``); when delivery reaches a stand-in, it and
the next stand-ins behind it are read back with one store read.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from kiltmq.broker.message import Message
from kiltmq.broker.queue.entry import Entry
from kiltmq.broker.store import Store

__all__ = ["PAGE_IN_BATCH", "Pager"]

#: Paged-out messages read back from the store in one go when delivery reaches them.
PAGE_IN_BATCH = 256


class Pager:
    """Pages the bodies of one queue's messages out to the store and back in."""

    __slots__ = (
        "_store",
        "_vhost",
        "_queue",
        "_max_messages",
        "_max_bytes",
        "active",
        "paged_bytes",
    )

    def __init__(self, store: Store, vhost: str, queue: str, durable: bool) -> None:
        self._store = store
        self._vhost = vhost
        self._queue = queue
        self._max_messages = store.page_messages if durable else None
        self._max_bytes = store.page_bytes if durable else None
        #: Whether messages arriving now may be paged out (the queue has page limits).
        self.active = self._max_messages is not None or self._max_bytes is not None
        #: Bytes of ready bodies that are in the store only.
        self.paged_bytes = 0

    def over(self, count: int, size: int) -> bool:
        """Whether ``count`` ready messages of ``size`` bytes are over the page limits."""
        limit = self._max_messages
        if limit is not None and count > limit:
            return True
        limit = self._max_bytes
        return limit is not None and size > limit

    def page_out(self, entry: Entry) -> None:
        """Swap the message of ``entry`` (persistent, already in the store) for its
        stand-in."""
        entry.message = paged = self._store.page_out(self._vhost, self._queue, entry.message)
        if paged.paged:
            self.paged_bytes += paged.size

    def restored(self, message: Message) -> None:
        """A recovered message joined the queue (paged out if the store says so)."""
        if message.paged:
            self.paged_bytes += message.size

    def page_in(self, entry: Entry, behind: Iterable[Entry]) -> None:
        """Read back the body of ``entry`` and those of the stand-ins among the next
        entries ``behind`` it, with one store read."""
        batch = [entry]
        for other in islice(behind, PAGE_IN_BATCH):
            if other.message.paged:
                batch.append(other)
        loaded = self._store.load(self._vhost, self._queue, [e.message for e in batch])
        for paged, message in zip(batch, loaded, strict=True):
            self.paged_bytes -= paged.message.size
            paged.message = message

    def dropped(self, entry: Entry, keep: bool) -> None:
        """The stand-in ``entry`` left the queue unread; with ``keep``, read its body
        back (it goes on elsewhere)."""
        message = entry.message
        self.paged_bytes -= message.size
        if keep:
            (entry.message,) = self._store.load(self._vhost, self._queue, [message])
