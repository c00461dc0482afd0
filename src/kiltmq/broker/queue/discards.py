"""Dead-lettering at least once (``x-dead-letter-strategy: at-least-once``), as RabbitMQ
3.10's quorum queues do it.

A message that dies in such a queue (rejected, expired, past its delivery limit) is not
republished and forgotten: it stays in the queue, out of the ready list, as one of its
:class:`Discards`, until every queue its dead-letter exchange routes it to took it. One
that cannot be moved now (the dead-letter exchange does not exist, nothing is bound that
routes it, or a queue refused it: reject-publish) is tried again every
:data:`RETRY_SECONDS`; a queue that took it at an earlier try is not given it again.
Messages waiting here count towards the queue's length limits, which is why RabbitMQ
requires ``x-overflow: reject-publish`` for this strategy.

With the durable store the message's row stays, marked with the reason it died for
(:meth:`~kiltmq.broker.store.Store.message_dead`), until it was moved; the row's removal
comes after the target queues' inserts in the store's order of writes, so a crash in
between moves it again after the restart, never loses it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from kiltmq.broker.message import Message
from kiltmq.broker.queue.expiry import CallAt, Deadline

if TYPE_CHECKING:
    from kiltmq.broker.queue.queue import Queue

__all__ = ["RETRY_SECONDS", "DeadLetterOwner", "Discard", "Discards"]

#: Seconds between tries to move messages that could not be moved: RabbitMQ's
#: ``dead_letter_worker_publisher_confirm_timeout`` (3 minutes).
RETRY_SECONDS = 180.0


class DeadLetterOwner(Protocol):
    """What dead-lettering at least once needs from the queue's virtual host."""

    def count_dead_letter(self, queue: Queue, reason: str) -> None:
        """Count a message that died in ``queue`` for ``reason``."""

    def forward_dead_letter(
        self, queue: Queue, message: Message, reason: str, held: set[str]
    ) -> bool:
        """Republish ``message`` to the dead-letter exchange of ``queue``, except to the
        queues named in ``held`` (names of the queues taking it are added). True once
        every queue it routes to holds it."""


class Discard:
    """A dead message waiting in its queue: why it died, and the queues that hold it."""

    __slots__ = ("message", "reason", "held")

    def __init__(self, message: Message, reason: str) -> None:
        self.message = message
        self.reason = reason
        self.held: set[str] = set()


class Discards:
    """The dead messages of one queue, waiting until their dead-letter queues took them.

    ``forward(discard)`` tries to move one (True: moved); ``moved(discard)`` is told of
    each moved (the queue drops its row).
    """

    __slots__ = ("waiting", "bytes", "_forward", "_moved", "_timer", "_now")

    def __init__(
        self,
        forward: Callable[[Discard], bool],
        moved: Callable[[Discard], None],
        call_at: CallAt,
        now: Callable[[], float],
    ) -> None:
        self.waiting: deque[Discard] = deque()
        #: Bytes of the bodies waiting (in memory or not).
        self.bytes = 0
        self._forward = forward
        self._moved = moved
        self._now = now
        self._timer = Deadline(call_at, self.retry)

    def __len__(self) -> int:
        return len(self.waiting)

    def add(self, message: Message, reason: str) -> bool:
        """``message`` died: move it now if it can be (True), else keep it and try
        later (False)."""
        discard = Discard(message, reason)
        if self._forward(discard):
            self._moved(discard)
            return True
        self.restore(discard)
        self._timer.schedule(self._now() + RETRY_SECONDS)
        return False

    def restore(self, discard: Discard) -> None:
        """Keep ``discard`` (as recovered from the store: tried at :meth:`start`)."""
        self.waiting.append(discard)
        self.bytes += discard.message.size

    def start(self) -> None:
        """Try the waiting messages soon (the broker starts)."""
        if self.waiting:
            self._timer.schedule(self._now())

    def retry(self) -> None:
        """Try every waiting message again, in the order they died."""
        kept: deque[Discard] = deque()
        for discard in self.waiting:
            if self._forward(discard):
                self.bytes -= discard.message.size
                self._moved(discard)
            else:
                kept.append(discard)
        self.waiting = kept
        if kept:
            self._timer.schedule(self._now() + RETRY_SECONDS)

    def in_memory(self) -> tuple[int, int]:
        """Messages waiting with their bodies in memory, and the bytes of those."""
        count = size = 0
        for discard in self.waiting:
            if not discard.message.paged:
                count += 1
                size += discard.message.size
        return count, size

    def stop(self) -> None:
        """No tries until :meth:`start` (the broker stops)."""
        self._timer.cancel()

    def clear(self) -> list[Message]:
        """Forget every waiting message; returns them."""
        gone = [discard.message for discard in self.waiting]
        self.waiting.clear()
        self.bytes = 0
        self._timer.cancel()
        return gone

    def release(self) -> None:
        """Let go of the queue's callbacks for good (it is deleted), so that reference
        counting frees it."""
        self._timer.release()
        self._forward = _refuse
        self._moved = _ignore


def _refuse(discard: Discard) -> bool:
    return False


def _ignore(discard: Discard) -> None:
    """The callbacks of released :class:`Discards`."""
