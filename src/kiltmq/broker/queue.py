"""Queues: ready messages, consumers served round-robin within their prefetch, and the
per-queue policies (message TTL, queue expiry, length limits, dead-lettering).

Theory of operation
-------------------
A queue holds :class:`Entry` objects (a shared :class:`~kiltmq.broker.message.Message`
plus this queue's sequence number and redelivered flag) in ``ready``, a deque in
publication order. Delivered-but-unacknowledged entries are not kept here: they live in
the consuming channel's unacked map until it settles them with :meth:`Queue.ack`,
:meth:`Queue.requeue` or :meth:`Queue.reject`.

:meth:`Queue.drain` hands ready entries to consumers in round-robin order, skipping a
consumer whose prefetch is used up or whose connection cannot take more output (the
consumer's channel reports that); it stops when no consumer can take a message. It runs
whenever something may have changed: a publish, a new consumer, an ack, a qos change, a
connection's output draining. A publish with an empty backlog goes straight to a
consumer without touching the deque.

Requeued entries go back to their original position (ordered by sequence number), as in
RabbitMQ, and are marked redelivered.

Time (TTL, expiry) comes from the event loop's monotonic clock; timers are set only
when a queue has something that can expire.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

from kiltmq.broker.message import FLAG_EXPIRATION, Message
from kiltmq.protocol.codec import FieldTable

if TYPE_CHECKING:
    from kiltmq.broker.vhost import VirtualHost

__all__ = ["Consumer", "ConsumerChannel", "Entry", "Queue"]

#: Paged-out messages read back from the store in one go when delivery reaches them.
PAGE_IN_BATCH = 256


class Entry:
    """A message's place in one queue."""

    __slots__ = ("message", "seq", "redelivered", "expires", "priority")

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


class Ready(Protocol):
    """The ready entries of a queue in delivery order (a deque, or :class:`PriorityReady`)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Entry]: ...

    def __getitem__(self, index: int) -> Entry: ...

    def append(self, entry: Entry) -> None: ...

    def popleft(self) -> Entry: ...

    def clear(self) -> None: ...


def _put_back(ready: deque[Entry], back: list[Entry]) -> None:
    """Merge ``back`` (sorted by seq) into ``ready`` by sequence number."""
    if not ready or back[-1].seq < ready[0].seq:
        ready.extendleft(reversed(back))
    else:
        merged = sorted([*back, *ready], key=_seq_of)
        ready.clear()
        ready.extend(merged)


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
            _put_back(self.levels[priority], entries)
        self.count += len(back)


class ConsumerChannel(Protocol):
    """What a queue needs from the channel a consumer belongs to."""

    def can_deliver(self, consumer: Consumer) -> bool: ...

    def deliver(self, consumer: Consumer, entry: Entry) -> None: ...

    def consumer_cancelled(self, consumer: Consumer) -> None: ...


class Consumer:
    """A subscription of one channel to one queue."""

    __slots__ = (
        "tag",
        "queue",
        "channel",
        "no_ack",
        "exclusive",
        "prefetch",
        "unacked",
        "arguments",
        "deliver_prefix",
        "priority",
    )

    def __init__(
        self,
        tag: str,
        queue: Queue,
        channel: ConsumerChannel,
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        prefetch: int = 0,
        arguments: FieldTable | None = None,
        deliver_prefix: bytes = b"",
        priority: int = 0,
    ) -> None:
        self.tag = tag
        self.queue = queue
        self.channel = channel
        self.no_ack = no_ack
        self.exclusive = exclusive
        #: Unacknowledged deliveries this consumer may have (0: no limit).
        self.prefetch = prefetch
        self.unacked = 0
        self.arguments = arguments
        #: basic.deliver payload up to the delivery tag (method ids and consumer tag).
        self.deliver_prefix = deliver_prefix
        #: x-priority: consumers of higher priority get messages first (RabbitMQ's
        #: consumer priorities); equal ones share round-robin.
        self.priority = priority

    def __repr__(self) -> str:
        return f"Consumer({self.tag!r} on {self.queue.name!r})"


class Queue:
    """One queue in a virtual host. Created and deleted through the vhost."""

    def __init__(
        self,
        vhost: VirtualHost,
        name: str,
        *,
        durable: bool = False,
        auto_delete: bool = False,
        owner: object | None = None,
        arguments: FieldTable | None = None,
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        #: The session an exclusive queue belongs to (None: not exclusive).
        self.owner = owner
        self.arguments: dict[str, Any] = dict(arguments or {})
        self.max_priority: int | None = arguments.get("x-max-priority") if arguments else None
        self.ready: Ready = PriorityReady(self.max_priority) if self.max_priority else deque()
        self.ready_bytes = 0
        #: Bytes of ready bodies paged out to the store (counted in ``ready_bytes`` but
        #: not in memory).
        self.paged_bytes = 0
        self.consumers: list[Consumer] = []
        #: Messages acknowledged (or delivered to a no-ack consumer) since the queue was
        #: created: what tests wait for (see :mod:`kiltmq.testing`).
        self.acked = 0
        self.had_consumer = False
        self.exclusive_consumer: Consumer | None = None
        self.deleted = False
        self._rr = 0
        self._seq = 0
        #: Whether some consumer ever had an x-priority (then consumers stay sorted).
        self._prioritized = False
        self._group_rr: dict[int, int] = {}
        self._store = store = vhost.store
        self._persist = durable
        # paging: bodies of persistent messages beyond these limits stay in the store only
        self._page_messages = store.page_messages if durable else None
        self._page_bytes = store.page_bytes if durable else None
        self._paging = self._page_messages is not None or self._page_bytes is not None
        # policies from arguments (validated by the vhost before creation)
        args = self.arguments
        self.message_ttl: int | None = args.get("x-message-ttl")
        self.expires: int | None = args.get("x-expires")
        self.max_length: int | None = args.get("x-max-length")
        self.max_length_bytes: int | None = args.get("x-max-length-bytes")
        self.overflow: str = args.get("x-overflow", "drop-head")
        self.dead_letter_exchange: str | None = args.get("x-dead-letter-exchange")
        self.dead_letter_routing_key: str | None = args.get("x-dead-letter-routing-key")
        #: x-single-active-consumer: only the first registered consumer gets messages;
        #: the next one takes over when it goes.
        self.single_active = args.get("x-single-active-consumer") is True
        self._limited = self.max_length is not None or self.max_length_bytes is not None
        self._ttl_timer: asyncio.TimerHandle | None = None
        self._ttl_at = 0.0
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._last_used = 0.0
        #: Callbacks run when the queue is deleted (the vhost's bookkeeping).
        self.on_delete: list[Callable[[Queue], None]] = []

    # -- introspection ----------------------------------------------------------------

    @property
    def exclusive(self) -> bool:
        return self.owner is not None

    @property
    def message_count(self) -> int:
        return len(self.ready)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "durable": self.durable,
            "auto_delete": self.auto_delete,
            "arguments": dict(self.arguments),
        }

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, ready={len(self.ready)}, consumers={len(self.consumers)})"

    # -- publishing -------------------------------------------------------------------

    def publish(self, message: Message) -> bool:
        """Enqueue ``message``; False if the queue refused it (x-overflow reject-publish)."""
        if self.deleted:
            return True
        self._seq += 1
        expires: float | None = None
        ttl: int | None = None
        if self.message_ttl is not None or message.flags & FLAG_EXPIRATION:
            ttl = self._ttl_of(message)
            if ttl is not None:
                expires = self.vhost.now() + ttl / 1000.0
        if self._limited and self.overflow != "drop-head" and self._full(message.size):
            if self.overflow == "reject-publish-dlx" and self.dead_letter_exchange is not None:
                self.vhost.dead_letter(self, message, "maxlen")
            return False
        entry = Entry(message, self._seq, False, expires)
        if self.max_priority:
            entry.priority = self._priority_of(message)
        if self._persist and message.persistent:
            self._store.message_enqueued(self.vhost.name, self.name, message)
            if ttl is not None:  # the deadline survives a restart
                self._store.message_expires(
                    self.vhost.name, self.name, message, time.time() + ttl / 1000.0
                )
        if not self.ready and self.consumers and self._deliver_now(entry):
            return True
        if ttl == 0:
            # a zero TTL message expires at once unless a consumer took it right away
            self._dead_letter(entry, "expired")
            return True
        self.ready.append(entry)
        self.ready_bytes += message.size
        if self._paging and message.persistent and self._over_page_limit():
            entry.message = paged = self._store.page_out(self.vhost.name, self.name, message)
            if paged.paged:
                self.paged_bytes += paged.size
        if self._limited:
            self._enforce_limits()
        if expires is not None and (self._ttl_timer is None or expires < self._ttl_at):
            self._schedule_ttl(expires)
        return True

    def restore(self, entry: Entry, expires_at: float | None = None) -> None:
        """Append a recovered entry (at start, from the store). ``expires_at``: its
        deadline as stored (seconds since the epoch); without one, a message with a TTL
        starts its countdown again (a store of an older format)."""
        self._seq += 1
        entry.seq = self._seq
        message = entry.message
        if self.max_priority:
            entry.priority = self._priority_of(message)
        if expires_at is not None:
            entry.expires = self.vhost.now() + (expires_at - time.time())
        elif self.message_ttl is not None or message.flags & FLAG_EXPIRATION:
            ttl = self._ttl_of(message)
            if ttl is not None:
                entry.expires = self.vhost.now() + ttl / 1000.0
        self.ready.append(entry)
        self.ready_bytes += message.size
        if message.paged:
            self.paged_bytes += message.size
        if entry.expires is not None:
            self._schedule_ttl(entry.expires)

    def _over_page_limit(self) -> bool:
        limit = self._page_messages
        if limit is not None and len(self.ready) > limit:
            return True
        limit = self._page_bytes
        return limit is not None and self.ready_bytes > limit

    def _page_in(self, entry: Entry) -> None:
        """Read back the body of ``entry`` (just taken from ``ready``) and those of the
        next paged-out entries, with one store read."""
        batch = [entry]
        for other in islice(self.ready, PAGE_IN_BATCH):
            if other.message.paged:
                batch.append(other)
        loaded = self._store.load(self.vhost.name, self.name, [e.message for e in batch])
        for paged, message in zip(batch, loaded, strict=True):
            self.paged_bytes -= paged.message.size
            paged.message = message

    def _priority_of(self, message: Message) -> int:
        try:
            priority = message.properties.priority
        except (ValueError, IndexError):
            return 0
        assert self.max_priority is not None
        return min(priority or 0, self.max_priority)

    def _ttl_of(self, message: Message) -> int | None:
        ttl = self.message_ttl
        try:
            per_message = message.expiration_ms()
        except (ValueError, IndexError):
            per_message = None
        if per_message is not None and (ttl is None or per_message < ttl):
            ttl = per_message
        return ttl

    def _pick_by_priority(self) -> Consumer | None:
        """The consumer to serve next when consumers have priorities: the first of the
        highest priority group that can take a message, round-robin within the group
        (``consumers`` is kept sorted by priority, highest first)."""
        consumers = self.consumers
        n = len(consumers)
        i = 0
        while i < n:
            priority = consumers[i].priority
            j = i + 1
            while j < n and consumers[j].priority == priority:
                j += 1
            size = j - i
            start = self._group_rr.get(priority, 0)
            for k in range(size):
                consumer = consumers[i + (start + k) % size]
                if consumer.channel.can_deliver(consumer):
                    self._group_rr[priority] = (start + k + 1) % size
                    return consumer
            i = j
        return None

    def _deliver_now(self, entry: Entry) -> bool:
        consumers = self.consumers
        n = len(consumers)
        if not n:
            return False
        if self._prioritized and not self.single_active:
            chosen = self._pick_by_priority()
            if chosen is None:
                return False
            chosen.channel.deliver(chosen, entry)
            return True
        if self.single_active:
            n = 1
            self._rr = 0
        rr = self._rr
        for i in range(n):
            idx = (rr + i) % n
            consumer = consumers[idx]
            if consumer.channel.can_deliver(consumer):
                self._rr = idx + 1
                consumer.channel.deliver(consumer, entry)
                return True
        return False

    def _full(self, size: int) -> bool:
        if self.max_length is not None and len(self.ready) >= self.max_length:
            return True
        return (
            self.max_length_bytes is not None
            and self.ready_bytes + size > self.max_length_bytes
        )

    def _enforce_limits(self) -> None:
        ready = self.ready
        if self.overflow != "drop-head":
            return
        while ready and (
            (self.max_length is not None and len(ready) > self.max_length)
            or (self.max_length_bytes is not None and self.ready_bytes > self.max_length_bytes)
        ):
            entry = ready.popleft()
            self.ready_bytes -= entry.message.size
            self._dead_letter(entry, "maxlen")

    # -- delivery ---------------------------------------------------------------------

    def drain(self) -> None:
        """Deliver ready entries to consumers that can take them."""
        ready = self.ready
        consumers = self.consumers
        if not ready or not consumers:
            return
        if self._prioritized and not self.single_active:
            self._drain_by_priority()
            return
        n = len(consumers)
        if self.single_active:
            n = 1
            self._rr = 0
        rr = self._rr
        while ready:
            for i in range(n):
                idx = (rr + i) % n
                consumer = consumers[idx]
                if consumer.channel.can_deliver(consumer):
                    break
            else:
                break
            rr = idx + 1
            entry = ready.popleft()
            self.ready_bytes -= entry.message.size
            expires = entry.expires
            if expires is not None and expires <= self.vhost.now():
                self._dead_letter(entry, "expired")
                continue
            if entry.message.paged:
                self._page_in(entry)
            consumer.channel.deliver(consumer, entry)
        self._rr = rr
        if ready and self._ttl_timer is None:
            head_expires = ready[0].expires
            if head_expires is not None:
                self._schedule_ttl(head_expires)

    def _drain_by_priority(self) -> None:
        ready = self.ready
        while ready:
            consumer = self._pick_by_priority()
            if consumer is None:
                break
            entry = ready.popleft()
            self.ready_bytes -= entry.message.size
            expires = entry.expires
            if expires is not None and expires <= self.vhost.now():
                self._dead_letter(entry, "expired")
                continue
            if entry.message.paged:
                self._page_in(entry)
            consumer.channel.deliver(consumer, entry)

    def get(self) -> Entry | None:
        """Take the head entry for basic.get (None when empty)."""
        self.touch()
        ready = self.ready
        if ready and ready[0].expires is not None:
            self._expire_head()
        if not ready:
            return None
        entry = ready.popleft()
        self.ready_bytes -= entry.message.size
        if entry.message.paged:
            self._page_in(entry)
        return entry

    # -- settlement -------------------------------------------------------------------

    def ack(self, entry: Entry) -> None:
        """The entry was acknowledged (or delivered with no-ack): it is gone for good."""
        self.acked += 1
        if self._persist and entry.message.persistent and not self.deleted:
            self._store.message_removed(self.vhost.name, self.name, entry.message)

    def requeue(self, entries: Iterable[Entry]) -> None:
        """Put entries back at their original positions, marked redelivered."""
        if self.deleted:
            return
        back = sorted(entries, key=_seq_of)
        if not back:
            return
        ready = self.ready
        for entry in back:
            entry.redelivered = True
            self.ready_bytes += entry.message.size
        if isinstance(ready, PriorityReady):
            ready.put_back(back)
        else:
            assert isinstance(ready, deque)
            _put_back(ready, back)
        if self._limited:
            self._enforce_limits()
        head = ready[0] if ready else None
        if head is not None and head.expires is not None:
            self._schedule_ttl(head.expires)
        self.drain()

    def reject(self, entry: Entry, requeue: bool) -> None:
        if requeue:
            self.requeue((entry,))
        else:
            self._dead_letter(entry, "rejected")

    def _dead_letter(self, entry: Entry, reason: str) -> None:
        message = entry.message
        if message.paged:  # it left ready without being read back
            self.paged_bytes -= message.size
            if self.dead_letter_exchange is not None:
                (message,) = self._store.load(self.vhost.name, self.name, [message])
                entry.message = message
        if self._persist and message.persistent and not self.deleted:
            self._store.message_removed(self.vhost.name, self.name, message)
        if self.dead_letter_exchange is not None:
            self.vhost.dead_letter(self, message, reason)

    # -- consumers --------------------------------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        if consumer.priority or self._prioritized:
            self._prioritized = True
            # keep consumers sorted by priority, highest first, in arrival order
            consumers = self.consumers
            at = len(consumers)
            while at and consumers[at - 1].priority < consumer.priority:
                at -= 1
            consumers.insert(at, consumer)
        else:
            self.consumers.append(consumer)
        self.had_consumer = True
        if consumer.exclusive:
            self.exclusive_consumer = consumer
        self._cancel_expiry()
        self.drain()

    def remove_consumer(self, consumer: Consumer) -> None:
        """Remove a consumer; an auto-delete queue goes when its last consumer does."""
        if self.detach_consumer(consumer):
            self.consumer_gone()

    def detach_consumer(self, consumer: Consumer) -> bool:
        """Remove a consumer without the auto-delete check (see :meth:`consumer_gone`)."""
        try:
            idx = self.consumers.index(consumer)
        except ValueError:
            return False
        del self.consumers[idx]
        if idx < self._rr:
            self._rr -= 1
        if self.exclusive_consumer is consumer:
            self.exclusive_consumer = None
        return True

    def consumer_gone(self) -> None:
        """After consumers left: delete an auto-delete queue that has none any more."""
        if self.deleted:
            return
        if not self.consumers:
            if self.auto_delete and self.had_consumer:
                self.vhost.delete_queue(self)
            else:
                self.touch()
        elif self.single_active:
            self.drain()  # the next consumer is the active one now

    # -- purge and delete ---------------------------------------------------------------

    def purge(self) -> int:
        count = len(self.ready)
        if self._persist:
            persistent = [e.message for e in self.ready if e.message.persistent]
            if persistent:
                self._store.queue_purged(self.vhost.name, self.name, persistent)
        self.ready.clear()
        self.ready_bytes = 0
        self.paged_bytes = 0
        self._cancel_ttl()
        return count

    def destroy(self) -> int:
        """Called by the vhost on deletion: cancel consumers (notifying their channels),
        drop ready messages, stop timers. Returns the number of ready messages dropped."""
        count = len(self.ready)
        if self._persist:
            persistent = [e.message for e in self.ready if e.message.persistent]
            if persistent:  # their rows go now, not at the next start
                self._store.queue_purged(self.vhost.name, self.name, persistent)
        self.deleted = True
        self.ready.clear()
        self.ready_bytes = 0
        self.paged_bytes = 0
        self._cancel_ttl()
        self._cancel_expiry()
        consumers, self.consumers = self.consumers, []
        for consumer in consumers:
            consumer.channel.consumer_cancelled(consumer)
        for callback in self.on_delete:
            callback(self)
        return count

    # -- timers: message TTL and queue expiry -------------------------------------------

    def start_timers(self) -> None:
        """Arm the TTL timer of the head and the x-expires countdown (the broker starts:
        after recovery, or again after a stop)."""
        if self.deleted:
            return
        ready = self.ready
        if ready and ready[0].expires is not None:
            self._schedule_ttl(ready[0].expires)
        if not self.consumers:
            self.touch()

    def stop_timers(self) -> None:
        """Cancel the timers (the broker stops: nothing expires while its store is
        closed)."""
        self._cancel_ttl()
        self._cancel_expiry()

    def _schedule_ttl(self, when: float) -> None:
        if self._ttl_timer is not None:
            if self._ttl_at <= when:
                return
            self._ttl_timer.cancel()
        self._ttl_at = when
        self._ttl_timer = self.vhost.call_at(when, self._on_ttl_timer)

    def _cancel_ttl(self) -> None:
        if self._ttl_timer is not None:
            self._ttl_timer.cancel()
            self._ttl_timer = None

    def _on_ttl_timer(self) -> None:
        self._ttl_timer = None
        self._expire_head()

    def _expire_head(self) -> None:
        ready = self.ready
        now = self.vhost.now()
        while ready:
            head = ready[0]
            if head.expires is None:
                break
            if head.expires > now:
                self._cancel_ttl()
                self._schedule_ttl(head.expires)
                return
            ready.popleft()
            self.ready_bytes -= head.message.size
            self._dead_letter(head, "expired")
        self._cancel_ttl()

    def touch(self) -> None:
        """The queue was used: restart its x-expires countdown."""
        if self.expires is None or self.deleted:
            return
        self._last_used = self.vhost.now()
        if self._expiry_timer is None and not self.consumers:
            self._expiry_timer = self.vhost.call_at(
                self._last_used + self.expires / 1000.0, self._on_expiry_timer
            )

    def _cancel_expiry(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None

    def _on_expiry_timer(self) -> None:
        self._expiry_timer = None
        if self.deleted or self.consumers or self.expires is None:
            return
        due = self._last_used + self.expires / 1000.0
        if self.vhost.now() >= due:
            self.vhost.delete_queue(self)
        else:
            self._expiry_timer = self.vhost.call_at(due, self._on_expiry_timer)


def _seq_of(entry: Entry) -> int:
    return entry.seq
