"""The queue class of each queue type (x-queue-type), picked once at declaration."""

from __future__ import annotations

from kiltmq.broker.queue.queue import Queue
from kiltmq.broker.queue.quorum import QuorumQueue
from kiltmq.broker.queue.stream import StreamQueue

__all__ = ["QUEUE_CLASSES"]

QUEUE_CLASSES: dict[str, type[Queue]] = {
    "classic": Queue,
    "quorum": QuorumQueue,
    "stream": StreamQueue,
}
