"""Quorum queues (``x-queue-type: quorum``) as RabbitMQ 3.10 runs them on one node.

A :class:`QuorumQueue` is a :class:`~kiltmq.broker.queue.queue.Queue` that differs only
where RabbitMQ's quorum queues do; the type is chosen at declaration, so classic queues
keep their own path:

* a delivery that comes back (reject, nack, recover, a closed channel) counts: the
  message carries ``x-delivery-count`` on its next deliveries (and on every basic.get-ok),
  and the count is kept in the store (a restart goes on counting from it);
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
* ``x-dead-letter-strategy: at-least-once`` needs ``reject-publish`` and a dead-letter
  exchange (else it is at-most-once, or no dead-lettering, with RabbitMQ's warning); dead
  messages then stay in the queue until their dead-letter queues hold them
  (:mod:`~kiltmq.broker.queue.discards`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, cast

from kiltmq.broker.message import Message, kept_headers
from kiltmq.broker.queue.discards import DeadLetterOwner, Discard, Discards
from kiltmq.broker.queue.entry import Entry
from kiltmq.broker.queue.limits import Limits
from kiltmq.broker.queue.queue import Queue
from kiltmq.protocol.codec import FieldTable, Long
from kiltmq.protocol.errors import AMQPNotImplemented
from kiltmq.protocol.frames import CONTENT_HEADER
from kiltmq.protocol.spec import BasicProperties

__all__ = ["CountedEntry", "QuorumQueue", "counted_header"]

log = logging.getLogger("kiltmq.broker.queue")

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
    headers = kept_headers(message.raw_properties)
    fields["headers"] = {**headers, "x-delivery-count": Long(delivery_count)}
    raw = BasicProperties(**fields).encode()
    return CONTENT_HEADER.pack(60, 0, message.size) + raw


class QuorumQueue(Queue):
    """A durable queue with delivery counting, as RabbitMQ's quorum queues."""

    type = "quorum"
    stores_transient = True
    #: at-least-once or at-most-once, as in effect.
    dead_letter_strategy = "at-most-once"

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
        strategy = self._strategy(args.get("x-dead-letter-strategy"), reject)
        # reject-publish is this class's own (see publish); the base class only drops
        self._cap: Limits | None = self._limits if reject else None
        if reject:
            self._limits = None
        if not hasattr(self, "_rejecting"):
            self._rejecting = False
            self._return_seq = _RETURNS_BASE
            vhost = self.vhost
            #: Dead messages waiting for their dead-letter queues (at-least-once).
            self.discards = Discards(self._forward, self._moved, vhost.call_at, vhost.now)
        elif self.dead_letter_strategy == "at-least-once" and strategy != "at-least-once":
            self._drop_discards()
        self.dead_letter_strategy = strategy

    def _strategy(self, asked: object, reject: bool) -> str:
        """The dead-letter strategy in effect, with RabbitMQ's warnings where it is not
        the one asked for."""
        what = f"queue '{self.name}' in vhost '{self.vhost.name}'"
        if self.dead_letter_exchange is None:
            if asked is not None:
                log.warning(
                    "Disabling dead-lettering for %s despite configured dead-letter-strategy "
                    "'%s' because dead-letter-exchange is not configured.", what, asked,
                )
            elif self.dead_letter_routing_key is not None:
                log.warning(
                    "Disabling dead-lettering for %s despite configured "
                    "dead-letter-routing-key '%s' because dead-letter-exchange is not "
                    "configured.", what, self.dead_letter_routing_key,
                )
            return "at-most-once"
        if asked != "at-least-once":
            return "at-most-once"
        if not reject:
            log.warning(
                "Falling back to dead-letter-strategy at-most-once for %s because configured "
                "dead-letter-strategy at-least-once is incompatible with effective overflow "
                "strategy drop-head. To enable dead-letter-strategy at-least-once, set "
                "overflow strategy to reject-publish.", what,
            )
            return "at-most-once"
        return "at-least-once"

    def publish(self, message: Message) -> bool:
        cap = self._cap
        if cap is None:
            return super().publish(message)
        if self._rejecting:
            if not self._below_low_limit(cap):
                return False
            self._rejecting = False
        accepted = super().publish(message)
        discards = self.discards
        if cap.exceeded(len(self.ready) + len(discards), self.ready_bytes + discards.bytes):
            self._rejecting = True
        return accepted

    def _below_low_limit(self, cap: Limits) -> bool:
        """At or below 80 % of the limits, dead messages waiting here included."""
        discards = self.discards
        length = len(self.ready) + len(discards)
        if cap.max_length is not None and length > int(cap.max_length * _LOW_LIMIT):
            return False
        return cap.max_length_bytes is None or self.ready_bytes + discards.bytes <= int(
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
                self._seq_not_published += 1
                seq = self._seq
            back.append(CountedEntry(entry.message, seq, entry.expires, count))
            self.ready_bytes += entry.message.size
            if self._persist:
                self._store.message_returned(self.vhost.name, self.name, entry.message, count)
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

    # -- dead-lettering at least once -----------------------------------------------------

    def _dead_letter(self, entry: Entry, reason: str) -> None:
        if self.dead_letter_strategy != "at-least-once" or self.deleted:
            super()._dead_letter(entry, reason)
            return
        if entry.message.paged:  # its body goes on: read it back
            self._pager.dropped(entry, keep=True)
        message = entry.message
        cast(DeadLetterOwner, self.vhost).count_dead_letter(self, reason)
        if not self.discards.add(message, reason) and self._persist:
            self._store.message_dead(self.vhost.name, self.name, message, reason)

    def _forward(self, discard: Discard) -> bool:
        if discard.message.paged:  # recovered from the store
            (discard.message,) = self._store.load(self.vhost.name, self.name, [discard.message])
        owner = cast(DeadLetterOwner, self.vhost)
        return owner.forward_dead_letter(self, discard.message, discard.reason, discard.held)

    def _moved(self, discard: Discard) -> None:
        if self._persist and not self.deleted:
            self._store.message_removed(self.vhost.name, self.name, discard.message)

    def _drop_discards(self) -> None:
        """Dead-lettering is no longer at least once: the dead messages waiting go, as
        in RabbitMQ."""
        size = self.discards.bytes
        gone = self.discards.clear()
        if not gone:
            return
        if self._persist:
            self._store.queue_purged(self.vhost.name, self.name, gone)
        log.info(
            "Deleted %d dead-lettered messages (with total messages size of %d bytes) in "
            "queue '%s' in vhost '%s'", len(gone), size, self.name, self.vhost.name,
        )

    def held_in_memory(self) -> tuple[int, int]:
        return self.discards.in_memory()

    # -- recovery, timers, deletion --------------------------------------------------------

    def restore_stored(
        self,
        message: Message,
        redelivered: bool,
        expires_at: float | None,
        delivery_count: int,
        dead: str | None,
    ) -> None:
        """Append a message recovered with its delivery count, or keep it among the dead
        messages waiting for their dead-letter queues (``dead``: the reason it died)."""
        if dead is not None:
            self.discards.restore(Discard(message, dead))
            return
        entry: Entry
        if delivery_count:
            entry = CountedEntry(message, 0, None, delivery_count)
        else:
            entry = Entry(message, 0, redelivered)
        self.restore(entry, expires_at)

    def start_timers(self) -> None:
        super().start_timers()
        if self.deleted:
            return
        if self.dead_letter_strategy == "at-least-once":
            self.discards.start()
        else:
            self._drop_discards()

    def stop_timers(self) -> None:
        super().stop_timers()
        self.discards.stop()

    def destroy(self) -> int:
        gone = self.discards.clear()
        if gone and self._persist and not self.deleted:
            self._store.queue_purged(self.vhost.name, self.name, gone)
        self.discards.release()
        return super().destroy()
