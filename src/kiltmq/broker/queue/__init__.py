"""A queue of a virtual host and its collaborators, one concept per module:

* :mod:`~kiltmq.broker.queue.queue`: :class:`Queue` (ready messages, consumers, the
  delivery loop), :class:`Consumer`, and what the queue needs from outside
  (:class:`QueueOwner`, :class:`ConsumerChannel`);
* :mod:`~kiltmq.broker.queue.entry`: :class:`Entry`, a message's place in a queue;
* :mod:`~kiltmq.broker.queue.ready`: the ready list, FIFO or by message priority;
* :mod:`~kiltmq.broker.queue.dispatch`: which consumer gets the next message;
* :mod:`~kiltmq.broker.queue.expiry`: message TTL and x-expires timers;
* :mod:`~kiltmq.broker.queue.limits`: x-max-length, x-max-length-bytes, x-overflow;
* :mod:`~kiltmq.broker.queue.paging`: bodies paged out to the store and back;
* :mod:`~kiltmq.broker.queue.quorum`: :class:`QuorumQueue`, RabbitMQ's quorum queues;
* :mod:`~kiltmq.broker.queue.discards`: dead messages a quorum queue keeps until their
  dead-letter queues hold them (dead-lettering at least once);
* :mod:`~kiltmq.broker.queue.stream`: :class:`StreamQueue`, RabbitMQ's streams;
* :mod:`~kiltmq.broker.queue.types`: the queue class of each ``x-queue-type``.
"""

from kiltmq.broker.queue.entry import Entry
from kiltmq.broker.queue.paging import PAGE_IN_BATCH
from kiltmq.broker.queue.queue import Consumer, ConsumerChannel, Queue, QueueOwner
from kiltmq.broker.queue.quorum import QuorumQueue
from kiltmq.broker.queue.ready import FifoReady, PriorityReady, Ready
from kiltmq.broker.queue.stream import StreamQueue
from kiltmq.broker.queue.types import QUEUE_CLASSES

__all__ = [
    "PAGE_IN_BATCH",
    "QUEUE_CLASSES",
    "Consumer",
    "ConsumerChannel",
    "Entry",
    "FifoReady",
    "PriorityReady",
    "Queue",
    "QueueOwner",
    "QuorumQueue",
    "Ready",
    "StreamQueue",
]
