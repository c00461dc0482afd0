"""Quorum queues (``x-queue-type: quorum``) as RabbitMQ 3.10 runs them on one node.

A :class:`QuorumQueue` is a :class:`~kiltmq.broker.queue.queue.Queue` that differs only
where RabbitMQ's quorum queues do; the type is chosen at declaration, so classic queues
keep their own path:

* a delivery that comes back (reject, nack, recover, a closed channel) counts: the
  message carries ``x-delivery-count`` on its next deliveries (and on every basic.get-ok);
  past ``x-delivery-limit`` (or the policy's ``delivery-limit``, the lower wins) it is
  dead-lettered with reason ``delivery_limit`` (dropped without a dead-letter exchange);
* requeued messages (reject, nack, recover) go to the back of the queue without a
  delivery limit; with one, and whenever a channel closes on its deliveries, they come
  back before the messages never delivered, in the order they came back;
* ``x-overflow: reject-publish`` refuses publishes once the queue went over its limit,
  until it is down to 80 % of it again; ``reject-publish-dlx`` is taken as ``drop-head``
  (RabbitMQ logs a warning and does the same);
* every message is stored, whatever its delivery mode (a quorum queue keeps all in
  its log); the confirm of a transient one does not wait for the store's commit;
* consumers on a channel with a global prefetch are not implemented (540);
* ``x-dead-letter-strategy: at-least-once`` needs ``reject-publish``, else it is
  at-most-once; on one node dead-lettering is immediate, so both behave alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kiltmq.broker.message import Message
from kiltmq.broker.queue.entry import Entry
from kiltmq.broker.queue.limits import Limits
from kiltmq.broker.queue.queue import Queue
from kiltmq.protocol.codec import FieldTable
from kiltmq.protocol.errors import AMQPNotImplemented
from kiltmq.protocol.frames import CONTENT_HEADER
from kiltmq.protocol.spec import BasicProperties

__all__ = ["CountedEntry", "QuorumQueue", "counted_header"]

#: Returned entries take sequence numbers from here up, so that they sort before every
#: entry never delivered (those count from 1) and in the order they came back.
_RETURNS_BASE = -(2**62)
#: RabbitMQ's low watermark: a quorum queue refusing publishes takes them again once at
#: or below this share of its limits.
_LOW_LIMIT = 0.8


class CountedEntry(Entry):
    """An entry delivered before: how often it came back, and the content header that
    carries that count."""

    __slots__ = ("delivery_count", "header")

    def __init__(
        self, message: Message, seq: int, expires: float | None, delivery_count: int
    ) -> None:
        super().__init__(message, seq, delivery_count > 0, expires)
        self.delivery_count = delivery_count
        self.header = counted_header(message, delivery_count)


def counted_header(message: Message, delivery_count: int) -> bytes:
    """The content header of ``message`` with ``x-delivery-count`` in its headers."""
    properties = message.properties
    fields = {name: getattr(properties, name) for name in properties.FIELDS}
    fields["headers"] = {**(properties.headers or {}), "x-delivery-count": delivery_count}
    raw = BasicProperties(**fields).encode()
    return CONTENT_HEADER.pack(60, 0, message.size) + raw


class QuorumQueue(Queue):
    """A durable queue with delivery counting, as RabbitMQ's quorum queues."""

    type = "quorum"
    stores_transient = True

    def _settings(self, args: dict[str, Any]) -> None:
        if args.get("x-overflow") == "reject-publish-dlx":
            args = {**args, "x-overflow": "drop-head"}
        super()._settings(args)
        limit = args.get("x-delivery-limit")
        #: Returns a message may have before it is dead-lettered (None: no limit).
        self.delivery_limit: int | None = (
            limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        )
        reject = self.overflow == "reject-publish"
        strategy = args.get("x-dead-letter-strategy")
        self.dead_letter_strategy = (
            "at-least-once" if strategy == "at-least-once" and reject else "at-most-once"
        )
        # reject-publish is this class's own (see publish); the base class only drops
        self._cap: Limits | None = self._limits if reject else None
        if reject:
            self._limits = None
        if not hasattr(self, "_rejecting"):
            self._rejecting = False
            self._return_seq = _RETURNS_BASE

    def publish(self, message: Message) -> bool:
        cap = self._cap
        if cap is None:
            return super().publish(message)
        if self._rejecting:
            if not self._below_low_limit(cap):
                return False
            self._rejecting = False
        accepted = super().publish(message)
        if cap.exceeded(len(self.ready), self.ready_bytes):
            self._rejecting = True
        return accepted

    def _below_low_limit(self, cap: Limits) -> bool:
        if cap.max_length is not None and len(self.ready) > int(cap.max_length * _LOW_LIMIT):
            return False
        return cap.max_length_bytes is None or self.ready_bytes <= int(
            cap.max_length_bytes * _LOW_LIMIT
        )

    def check_consumer(
        self,
        no_ack: bool,
        prefetch: int,
        global_prefetch: int,
        arguments: FieldTable | None,
        describe: str,
    ) -> None:
        if global_prefetch:
            raise AMQPNotImplemented(
                f"NOT_IMPLEMENTED - {describe} does not support global qos"
            )

    def get(self) -> Entry | None:
        entry = super().get()
        if entry is not None and entry.header is None:
            # basic.get-ok always carries the count, 0 on a first delivery
            entry = CountedEntry(entry.message, entry.seq, entry.expires, 0)
        return entry

    def requeue(self, entries: Iterable[Entry]) -> None:
        """Returned by the client (reject, nack, recover): to the back of the queue
        without a delivery limit, ahead of never-delivered messages with one."""
        self._return(entries, front=self.delivery_limit is not None)

    def release(self, entries: Iterable[Entry]) -> None:
        """Returned by a channel that closed: ahead of never-delivered messages."""
        self._return(entries, front=True)

    def _return(self, entries: Iterable[Entry], front: bool) -> None:
        """Count the returns; past the delivery limit the message dies, else it goes
        back, in the order given."""
        if self.deleted:
            return
        limit = self.delivery_limit
        back: list[Entry] = []
        for entry in entries:
            count = entry.delivery_count + 1
            if limit is not None and count > limit:
                self._dead_letter(entry, "delivery_limit")
                continue
            if front:
                self._return_seq += 1
                seq = self._return_seq
            else:
                self._seq += 1
                seq = self._seq
            back.append(CountedEntry(entry.message, seq, entry.expires, count))
            self.ready_bytes += entry.message.size
        if not back:
            return
        ready = self.ready
        if front:
            ready.put_back(back)
        else:
            for entry in back:
                ready.append(entry)
        if self._limits is not None:
            self._enforce_limits()
        head = ready[0] if ready else None
        if head is not None and head.expires is not None:
            self._ttl.schedule(head.expires)
        self.drain()
