"""Paging: a durable queue that holds many ready messages keeps the bodies of further
persistent ones in the store only.

A message arriving while the queue is over the store's page limits
(:attr:`~kiltmq.broker.store.Store.page_messages`, :attr:`~kiltmq.broker.store.Store.page_bytes`)
is swapped for its stand-in (``message.paged``). Bodies come back ahead of delivery, off
the event loop (:meth:`~kiltmq.broker.store.Store.load_later`): when delivery reaches a
stand-in, it and the next stand-ins behind it are read in one batch, and delivery waits
for that batch (:meth:`Pager.wait`). Reads then run ahead of delivery: a batch that comes
in starts the read of the next one while fewer than ``2 * PAGE_IN_BATCH`` entries lie
before it, and delivering the first message of a batch starts a read again
(:attr:`Pager.trigger`), so reads overlap delivery.
Order never changes: the queue delivers its head only once its body is in. basic.get and
dead-lettering need a body at once and read it on the loop (:meth:`Pager.page_in`).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from itertools import islice

from kiltmq.broker.message import Message
from kiltmq.broker.queue.entry import Entry
from kiltmq.broker.store import Store

__all__ = ["PAGE_IN_BATCH", "Pager"]

log = logging.getLogger("kiltmq.broker.queue")

#: Paged-out messages read back from the store in one go.
PAGE_IN_BATCH = 256


class Pager:
    """Pages the bodies of one queue's messages out to the store and back in."""

    __slots__ = (
        "_store",
        "_vhost",
        "_queue",
        "_max_messages",
        "_max_bytes",
        "_wake",
        "_reading",
        "_sync",
        "active",
        "paged_bytes",
        "trigger",
    )

    def __init__(
        self, store: Store, vhost: str, queue: str, durable: bool, wake: Callable[[], None]
    ) -> None:
        """``wake``: a bound method (of the queue), called when bodies are read in."""
        self._store = store
        self._vhost = vhost
        self._queue = queue
        self._max_messages = store.page_messages if durable else None
        self._max_bytes = store.page_bytes if durable else None
        #: Called when a batch of bodies is in (the queue's delivery loop); held weakly,
        #: so that the queue and its pager are no cycle and a deleted queue is freed
        self._wake = weakref.WeakMethod(wake)
        #: The entries of the batch being read, with their stand-ins (None: no read).
        self._reading: dict[Entry, Message] | None = None
        #: Read on the loop from now on (a read off the loop failed).
        self._sync = False
        #: Whether messages arriving now may be paged out (the queue has page limits).
        self.active = self._max_messages is not None or self._max_bytes is not None
        #: Bytes of ready bodies that are in the store only.
        self.paged_bytes = 0
        #: Delivering this entry starts the read of the next batch.
        self.trigger: Entry | None = None

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

    # -- reading back ahead of delivery --------------------------------------------------

    def wait(self, ready: Iterable[Entry]) -> bool:
        """The head of ``ready`` is a stand-in: False while its body is being read (the
        queue's delivery loop runs again once it is in), True if it was read now."""
        if self._sync:
            entries = iter(ready)
            self.page_in(next(entries), entries)
            return True
        if self._reading is None:
            self.prefetch(ready)
        return False

    def prefetch(self, ready: Iterable[Entry]) -> None:
        """Start reading the stand-ins among the first ``2 * PAGE_IN_BATCH`` entries of
        ``ready`` (unless a read is under way)."""
        if self._reading is not None or self._sync:
            return
        batch = {
            entry: entry.message
            for entry in islice(ready, 2 * PAGE_IN_BATCH)
            if entry.message.paged
        }
        if not batch:
            return
        if len(batch) > PAGE_IN_BATCH:
            batch = dict(islice(batch.items(), PAGE_IN_BATCH))
        self._reading = batch
        asked = list(batch.items())
        self._store.load_later(
            self._vhost,
            self._queue,
            [stand_in for _entry, stand_in in asked],
            lambda messages: self._loaded(batch, asked, messages, ready),
        )

    def _loaded(
        self,
        batch: dict[Entry, Message],
        asked: list[tuple[Entry, Message]],
        messages: list[Message] | None,
        ready: Iterable[Entry],
    ) -> None:
        if self._reading is not batch:  # the queue was purged or deleted meanwhile
            return
        self._reading = None
        if messages is None:
            log.warning("queue '%s': reading bodies on the loop from now on", self._queue)
            self._sync = True
        else:
            first = None
            for (entry, stand_in), message in zip(asked, messages, strict=True):
                # still waiting: not taken by basic.get or dropped meanwhile
                if entry in batch and entry.message is stand_in:
                    entry.message = message
                    self.paged_bytes -= stand_in.size
                    if first is None:
                        first = entry
            self.trigger = first
            self.prefetch(ready)  # the next batch, if it is near enough
        wake = self._wake()
        if wake is not None:
            wake()

    # -- reading back on the loop ----------------------------------------------------------

    def page_in(self, entry: Entry, behind: Iterable[Entry]) -> None:
        """Read back the body of ``entry`` and those of the stand-ins among the next
        entries ``behind`` it, with one store read on the loop."""
        batch = [entry]
        for other in islice(behind, PAGE_IN_BATCH):
            if other.message.paged:
                batch.append(other)
        loaded = self._store.load(self._vhost, self._queue, [e.message for e in batch])
        reading = self._reading
        for paged, message in zip(batch, loaded, strict=True):
            self.paged_bytes -= paged.message.size
            paged.message = message
            if reading is not None:
                reading.pop(paged, None)

    def dropped(self, entry: Entry, keep: bool) -> None:
        """The stand-in ``entry`` left the queue unread; with ``keep``, read its body
        back (it goes on elsewhere)."""
        message = entry.message
        self.paged_bytes -= message.size
        if self._reading is not None:
            self._reading.pop(entry, None)
        if keep:
            (entry.message,) = self._store.load(self._vhost, self._queue, [message])

    def forget(self) -> None:
        """Every ready entry left the queue (purge, delete)."""
        self.paged_bytes = 0
        self._reading = None
        self.trigger = None
