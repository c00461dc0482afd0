"""Queue: ready messages, the consumers they go to, and the per-queue policies.

A queue holds :class:`~kiltmq.broker.queue.entry.Entry` objects in ``ready``, in delivery
order. Delivered-but-unacknowledged entries are not kept here: they live in the consuming
channel's unacked map until it settles them with :meth:`Queue.ack`,
:meth:`Queue.requeue` (back to their original positions, marked redelivered, as in
RabbitMQ) or :meth:`Queue.reject`.

:meth:`Queue.drain` is the delivery loop: it hands ready entries to the consumer picked
by the dispatch strategy until nobody can take one. It runs whenever something may have
changed: a publish, a new consumer, an ack, a qos change, a connection's output
draining. A publish with an empty backlog goes straight to the picked consumer.

Dead messages (expired, rejected, over a length limit) go to the owner's
:meth:`QueueOwner.dead_letter`, which republishes them through x-dead-letter-exchange.
This module also declares what the queue needs from outside: :class:`QueueOwner` (its
virtual host) and :class:`ConsumerChannel` (the channel of each consumer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from kiltmq.broker.message import FLAG_EXPIRATION, Message
from kiltmq.broker.policy import Policy, merge_definitions, resolve_queue_arguments
from kiltmq.broker.queue.dispatch import Lineup
from kiltmq.broker.queue.entry import Entry, seq_of
from kiltmq.broker.queue.expiry import Deadline, QueueExpiry, message_ttl
from kiltmq.broker.queue.limits import Limits
from kiltmq.broker.queue.paging import Pager
from kiltmq.broker.queue.ready import FifoReady, PriorityReady, Ready, priority_level
from kiltmq.broker.store import Store
from kiltmq.protocol.codec import FieldTable

__all__ = ["Consumer", "ConsumerChannel", "Queue", "QueueOwner"]


class QueueOwner(Protocol):
    """What a queue needs from the virtual host it lives in."""

    @property
    def name(self) -> str: ...

    @property
    def store(self) -> Store: ...

    def now(self) -> float:
        """The broker's monotonic clock."""

    def wall(self) -> float:
        """The broker's wall clock (seconds since the epoch)."""

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """Run ``callback`` at ``when`` (the broker's monotonic clock)."""

    def dead_letter(self, queue: Queue, message: Message, reason: str) -> None:
        """Count ``message``, dead in ``queue``, and republish it to the queue's dead-letter
        exchange if it has one."""

    def delete_queue(
        self, queue: Queue, *, if_unused: bool = False, if_empty: bool = False
    ) -> int:
        """Delete ``queue`` (auto-delete, x-expires)."""


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
        "__weakref__",
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

    #: The queue type (x-queue-type), as RabbitMQ names it.
    type = "classic"
    #: A durable queue of this type stores transient messages too (quorum queues do).
    stores_transient = False

    def __init__(
        self,
        vhost: QueueOwner,
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
        # the client's arguments (validated by the vhost before creation)
        args: dict[str, Any] = dict(arguments or {})
        self.arguments = args
        #: The policy and operator policy that apply, their effective definition.
        self.policy: Policy | None = None
        self.operator_policy: Policy | None = None
        self.effective_policy_definition: dict[str, Any] = {}
        self.max_priority: int | None = args.get("x-max-priority")
        self._settings(args)
        #: x-single-active-consumer: one consumer gets the messages (see
        #: :class:`~kiltmq.broker.queue.dispatch.SingleActive`).
        self.single_active = args.get("x-single-active-consumer") is True

        self.ready: Ready = PriorityReady(self.max_priority) if self.max_priority else FifoReady()
        self.ready_bytes = 0
        self._lineup: Lineup[Consumer] = Lineup(self.single_active)
        #: In dispatch order (see :class:`~kiltmq.broker.queue.dispatch.Lineup`).
        self.consumers = self._lineup.consumers
        #: Messages acknowledged (or delivered to a no-ack consumer) since the queue was
        #: created: what tests wait for (see :mod:`kiltmq.testing`).
        self.acked = 0
        #: Counters for monitoring (plain increments): messages delivered to consumers,
        #: taken by basic.get (and gets that found it empty), the deliveries and gets of
        #: those without acknowledgement, and redeliveries; the messages published to
        #: the queue are counted by their sequence numbers (see :attr:`published`).
        self.delivered = 0
        self.got = 0
        self.got_empty = 0
        self.no_ack_delivered = 0
        self.no_ack_got = 0
        self.redelivered = 0
        self.had_consumer = False
        self.exclusive_consumer: Consumer | None = None
        self.deleted = False
        self._seq = 0
        #: Sequence numbers given to entries restored from the store or requeued at the
        #: back, not to publishes.
        self._seq_not_published = 0
        self._store = store = vhost.store
        self._persist = durable
        #: Messages of every delivery mode go to the store.
        self._persist_all = durable and self.stores_transient
        self._pager = Pager(store, vhost.name, name, durable, self.drain)
        self._ttl = Deadline(vhost.call_at, self._expire_head)
        self._expiry: QueueExpiry | None = None
        self._set_expiry()
        #: Callbacks run when the queue is deleted (the vhost's bookkeeping).
        self.on_delete: list[Callable[[Queue], None]] = []

    def _settings(self, args: dict[str, Any]) -> None:
        """TTL, expiry, length limits and dead-lettering from (policy-resolved) x-args."""
        self.message_ttl: int | None = args.get("x-message-ttl")
        self.expires: int | None = args.get("x-expires")
        self.max_length: int | None = args.get("x-max-length")
        self.max_length_bytes: int | None = args.get("x-max-length-bytes")
        self.overflow: str = args.get("x-overflow", "drop-head")
        self.dead_letter_exchange: str | None = args.get("x-dead-letter-exchange")
        self.dead_letter_routing_key: str | None = args.get("x-dead-letter-routing-key")
        self._limits = Limits.of(args)

    def _set_expiry(self) -> None:
        old = self._expiry
        if old is not None and old.expires != self.expires:
            old.cancel()
        if self.expires is not None and (old is None or old.expires != self.expires):
            vhost = self.vhost
            self._expiry = QueueExpiry(
                self.expires, vhost.now, vhost.call_at, self._in_use, self._expired
            )
        elif self.expires is None:
            self._expiry = None

    def apply_policy(self, policy: Policy | None, operator_policy: Policy | None) -> None:
        """Combine ``policy`` and ``operator_policy`` with the x-arguments, as RabbitMQ:
        a lower length limit drops the oldest messages now, a new TTL counts for
        messages enqueued from now on."""
        self.policy, self.operator_policy = policy, operator_policy
        definition = self.effective_policy_definition = merge_definitions(policy, operator_policy)
        self._settings(resolve_queue_arguments(self.arguments, definition))
        if self.deleted:
            return
        self._set_expiry()
        self.touch()
        if self._limits is not None:
            self._enforce_limits()

    # -- introspection ----------------------------------------------------------------

    @property
    def exclusive(self) -> bool:
        return self.owner is not None

    @property
    def message_count(self) -> int:
        return len(self.ready)

    @property
    def consumer_count(self) -> int:
        """The consumer count queue.declare-ok reports."""
        return len(self.consumers)

    @property
    def paged_bytes(self) -> int:
        """Bytes of ready bodies paged out to the store (counted in ``ready_bytes`` but
        not in memory)."""
        return self._pager.paged_bytes

    def held_in_memory(self) -> tuple[int, int]:
        """Messages held in memory besides the ready ones (a stream's log, dead messages
        waiting for their dead-letter queues), and the bytes of their bodies."""
        return 0, 0

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

    @property
    def published(self) -> int:
        """Messages published to the queue (refused ones included, as RabbitMQ counts
        them): one sequence number each."""
        return self._seq - self._seq_not_published

    def publish(self, message: Message) -> bool:
        """Enqueue ``message``; False if the queue refused it (x-overflow reject-publish)."""
        if self.deleted:
            return True
        self._seq += 1
        expires: float | None = None
        ttl: int | None = None
        if self.message_ttl is not None or message.flags & FLAG_EXPIRATION:
            ttl = message_ttl(message, self.message_ttl)
            if ttl is not None:
                expires = self.vhost.now() + ttl / 1000.0
        limits = self._limits
        if (
            limits is not None
            and not limits.drop_head
            and limits.full(len(self.ready), self.ready_bytes, message.size)
        ):
            if limits.overflow == "reject-publish-dlx" and self.dead_letter_exchange is not None:
                self.vhost.dead_letter(self, message, "maxlen")
            return False
        entry = Entry(message, self._seq, False, expires)
        if self.max_priority:
            entry.priority = priority_level(message, self.max_priority)
        if self._persist and (message.persistent or self._persist_all):
            self._store.message_enqueued(self.vhost.name, self.name, message)
            if ttl is not None:  # the deadline survives a restart
                self._store.message_expires(
                    self.vhost.name, self.name, message, self.vhost.wall() + ttl / 1000.0
                )
        ready = self.ready
        if not ready and self.consumers:
            consumer = self._lineup.pick()
            if consumer is not None:
                consumer.channel.deliver(consumer, entry)
                self.delivered += 1
                return True
        if ttl == 0 and not ready:
            # a zero TTL message at the head expires at once unless a consumer took it
            self._dead_letter(entry, "expired")
            return True
        ready.append(entry)
        self.ready_bytes += message.size
        pager = self._pager
        if pager.active and message.persistent and pager.over(len(ready), self.ready_bytes):
            pager.page_out(entry)
        if limits is not None:
            self._enforce_limits()
        if expires is not None:
            self._ttl.schedule(expires)
        return True

    def restore(self, entry: Entry, expires_at: float | None = None) -> None:
        """Append a recovered entry (at start, from the store). ``expires_at``: its
        deadline as stored (seconds since the epoch); without one, a message with a TTL
        starts its countdown again (a store of an older format)."""
        self._seq += 1
        self._seq_not_published += 1
        entry.seq = self._seq
        message = entry.message
        if self.max_priority:
            entry.priority = priority_level(message, self.max_priority)
        if expires_at is not None:
            entry.expires = self.vhost.now() + (expires_at - self.vhost.wall())
        elif self.message_ttl is not None or message.flags & FLAG_EXPIRATION:
            ttl = message_ttl(message, self.message_ttl)
            if ttl is not None:
                entry.expires = self.vhost.now() + ttl / 1000.0
        self.ready.append(entry)
        self.ready_bytes += message.size
        self._pager.restored(message)
        if entry.expires is not None:
            self._ttl.schedule(entry.expires)

    def _enforce_limits(self) -> None:
        """x-overflow drop-head: drop (dead-letter) the oldest entries while over a
        limit."""
        limits = self._limits
        if limits is None or not limits.drop_head:
            return
        ready = self.ready
        while ready and limits.exceeded(len(ready), self.ready_bytes):
            entry = ready.popleft()
            self.ready_bytes -= entry.message.size
            self._dead_letter(entry, "maxlen")

    # -- delivery ---------------------------------------------------------------------

    def drain(self) -> None:
        """Deliver ready entries to consumers that can take them."""
        ready = self.ready
        if not ready or not self.consumers:
            return
        pick = self._lineup.pick
        delivered = 0
        pager = self._pager
        trigger = pager.trigger
        while ready:
            if ready[0].message.paged and not pager.wait(ready):
                break  # its body is being read: drain runs again once it is in
            consumer = pick()
            if consumer is None:
                break
            entry = ready.popleft()
            if entry is trigger:
                pager.prefetch(ready)  # read the next bodies while these are delivered
                trigger = None
            self.ready_bytes -= entry.message.size
            expires = entry.expires
            if expires is not None and expires <= self.vhost.now():
                self._dead_letter(entry, "expired")
                continue
            consumer.channel.deliver(consumer, entry)
            delivered += 1
        self.delivered += delivered
        if ready and not self._ttl.armed:
            head_expires = ready[0].expires
            if head_expires is not None:
                self._ttl.schedule(head_expires)

    def get(self) -> Entry | None:
        """Take the head entry for basic.get (None when empty)."""
        self.touch()
        ready = self.ready
        if ready and ready[0].expires is not None:
            self._expire_head()
        if not ready:
            self.got_empty += 1
            return None
        self.got += 1
        entry = ready.popleft()
        self.ready_bytes -= entry.message.size
        if entry.message.paged:
            self._pager.page_in(entry, ready)
        return entry

    # -- settlement -------------------------------------------------------------------

    def ack(self, entry: Entry) -> None:
        """The entry was acknowledged (or delivered with no-ack): it is gone for good."""
        self.acked += 1
        message = entry.message
        if self._persist and (message.persistent or self._persist_all) and not self.deleted:
            self._store.message_removed(self.vhost.name, self.name, message)

    def requeue(self, entries: Iterable[Entry]) -> None:
        """Put entries back at their original positions, marked redelivered."""
        if self.deleted:
            return
        back = sorted(entries, key=seq_of)
        if not back:
            return
        for entry in back:
            entry.redelivered = True
            self.ready_bytes += entry.message.size
        ready = self.ready
        ready.put_back(back)
        if self._limits is not None:
            self._enforce_limits()
        head = ready[0] if ready else None
        if head is not None and head.expires is not None:
            self._ttl.schedule(head.expires)
        self.drain()

    def check_consumer(
        self,
        no_ack: bool,
        prefetch: int,
        global_prefetch: int,
        arguments: FieldTable | None,
        describe: str,
    ) -> None:
        """Refuse a basic.consume the queue's type does not take (``prefetch``: the
        consumer's own, ``global_prefetch``: its channel's; ``describe``: the queue as
        reply texts name it)."""

    def release(self, entries: Iterable[Entry]) -> None:
        """Entries of a channel that closed come back: as :meth:`requeue` here."""
        self.requeue(entries)

    def reject(self, entry: Entry, requeue: bool) -> None:
        if requeue:
            self.requeue((entry,))
        else:
            self._dead_letter(entry, "rejected")

    def _dead_letter(self, entry: Entry, reason: str) -> None:
        """``entry`` died (expired, rejected, maxlen): it leaves the queue for good, to
        the dead-letter exchange if the queue has one."""
        republish = self.dead_letter_exchange is not None
        if entry.message.paged:  # it left ready without being read back
            self._pager.dropped(entry, keep=republish)
        message = entry.message
        if self._persist and (message.persistent or self._persist_all) and not self.deleted:
            self._store.message_removed(self.vhost.name, self.name, message)
        self.vhost.dead_letter(self, message, reason)  # counted; republished if it may be

    # -- consumers --------------------------------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        self._lineup.add(consumer)
        self.had_consumer = True
        if consumer.exclusive:
            self.exclusive_consumer = consumer
        if self._expiry is not None:
            self._expiry.cancel()
        self.drain()

    def remove_consumer(self, consumer: Consumer) -> None:
        """Remove a consumer; an auto-delete queue goes when its last consumer does."""
        if self.detach_consumer(consumer):
            self.consumer_gone()

    def detach_consumer(self, consumer: Consumer) -> bool:
        """Remove a consumer without the auto-delete check (see :meth:`consumer_gone`)."""
        if not self._lineup.remove(consumer):
            return False
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
            self.drain()  # another consumer may be the active one now

    # -- purge and delete ---------------------------------------------------------------

    def purge(self) -> int:
        count = len(self.ready)
        self._forget_ready()
        return count

    def destroy(self) -> int:
        """Called by the vhost on deletion: cancel consumers (notifying their channels),
        drop ready messages, stop timers. Returns the number of ready messages dropped."""
        count = len(self.ready)
        self._forget_ready()  # the rows of persistent ones go now, not at the next start
        self.deleted = True
        self.stop_timers()
        for consumer in self._lineup.clear():
            consumer.channel.consumer_cancelled(consumer)
        callbacks, self.on_delete = self.on_delete, []
        for callback in callbacks:
            callback(self)
        # the timers' callbacks are the queue's methods: drop them, so that reference
        # counting frees a deleted queue
        self._ttl.release()
        self._expiry = None
        return count

    def _forget_ready(self) -> None:
        """Drop every ready entry (purge, delete)."""
        if self._persist:
            every = self._persist_all
            persistent = [e.message for e in self.ready if every or e.message.persistent]
            if persistent:
                self._store.queue_purged(self.vhost.name, self.name, persistent)
        self.ready.clear()
        self.ready_bytes = 0
        self._pager.forget()
        self._ttl.cancel()

    # -- timers: message TTL and queue expiry -------------------------------------------

    def start_timers(self) -> None:
        """Arm the TTL timer of the head and the x-expires countdown (the broker starts:
        after recovery, or again after a stop)."""
        if self.deleted:
            return
        ready = self.ready
        if ready and ready[0].expires is not None:
            self._ttl.schedule(ready[0].expires)
        if not self.consumers:
            self.touch()

    def stop_timers(self) -> None:
        """Cancel the timers (the broker stops: nothing expires while its store is
        closed)."""
        self._ttl.cancel()
        if self._expiry is not None:
            self._expiry.cancel()

    def _expire_head(self) -> None:
        """Dead-letter the expired entries at the head; arm the timer for the next."""
        ready = self.ready
        now = self.vhost.now()
        while ready:
            head = ready[0]
            if head.expires is None:
                break
            if head.expires > now:
                self._ttl.reschedule(head.expires)
                return
            ready.popleft()
            self.ready_bytes -= head.message.size
            self._dead_letter(head, "expired")
        self._ttl.cancel()

    def touch(self) -> None:
        """The queue was used: restart its x-expires countdown."""
        expiry = self._expiry
        if expiry is None or self.deleted:
            return
        expiry.touch(not self.consumers)

    def _in_use(self) -> bool:
        return self.deleted or bool(self.consumers)

    def _expired(self) -> None:
        self.vhost.delete_queue(self)
