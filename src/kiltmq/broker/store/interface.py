"""The store interface: what the broker tells durable storage, and when.

The broker keeps everything in memory and tells a :class:`Store` about the parts that must
survive a restart; a store never drives routing or delivery. The calls:

* :meth:`Store.definition_added` / :meth:`Store.definition_removed`: a durable exchange,
  a durable queue, or a binding between durable ends was declared or deleted
  (definitions are plain dicts shaped like RabbitMQ's definitions export).
* :meth:`Store.message_enqueued`: a persistent message (delivery-mode 2) entered a durable
  queue; :meth:`Store.message_removed`: it left that queue for good (acked, dropped,
  expired, dead-lettered, purged, or the queue was deleted). Requeueing is not removal.
  :meth:`Store.message_expires` follows ``message_enqueued`` for a message with a TTL in
  that queue: its deadline, kept across a restart. Streams report
  :meth:`Store.message_arrived` after ``message_enqueued``: the message's arrival time.
* Quorum queues also report :meth:`Store.message_returned` (a delivery came back: the
  message's delivery count) and :meth:`Store.message_dead` (dead-lettered at least
  once: the message stays until its dead-letter queues hold it), both kept across a
  restart.
* :meth:`Store.after_commit`: the callback runs once everything reported so far is
  safely written (or, while the store cannot write, its failure path;
  :meth:`Store.set_alarm_handler` is told then, to block publishers). A store that
  batches writes (group commit) calls it after the batch commits. Replies to
  declarations of durable objects wait for it too while :meth:`Store.definitions_pending`.
  Publisher confirms of persistent messages wait with
  :meth:`Store.confirm_after_commit`: the same promise, told to a
  :class:`ConfirmWaiter` (a channel) with the sequence numbers of a whole batch at once
  (basic.ack; basic.nack while the store cannot write).
* :meth:`Store.recover`: at start, the definitions and messages to rebuild.

A store that keeps bodies on disk may page them out of memory: a durable queue holding
more than :attr:`Store.page_messages` ready messages (or :attr:`Store.page_bytes` bytes)
swaps the bodies of further persistent messages for stand-ins (:meth:`Store.page_out`) and
reads them back in batches ahead of delivery (:meth:`Store.load_later`; :meth:`Store.load`
where the answer is needed at once). Users, permissions, topic
permissions and vhosts are reported too (:meth:`Store.user_added`,
:meth:`Store.permission_set`, :meth:`Store.topic_permission_set`,
:meth:`Store.vhost_added`), and at a clean shutdown the broker reports which waiting
messages had been delivered before (:meth:`Store.mark_redelivered`).

Messages are shared by every queue they are in and never changed: a store that needs a
key for a message keeps it itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kiltmq.broker.auth import User
from kiltmq.broker.message import Message

__all__ = [
    "ConfirmWaiter",
    "Definition",
    "Recovered",
    "Store",
    "StoreDamaged",
    "StoreError",
    "StoredMessage",
]

Definition = dict[str, Any]
"""A definition: for ``kind == "exchange"`` keys name, type, durable, auto_delete,
internal, arguments; for ``"queue"`` name, durable, auto_delete, arguments; for
``"binding"`` source, destination, destination_type ("queue" or "exchange"),
routing_key, arguments."""


class StoreError(Exception):
    """The store cannot be used: locked by another broker, written by a newer version,
    damaged, or unreadable. The message is one line fit for the command line."""


class StoreDamaged(StoreError):
    """The store's files are damaged or lost committed data (a failed integrity check, a
    database behind its commit watermark, a missing write-ahead log): refused, and left
    exactly as found."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A persistent message waiting in a durable queue, as recovered at start."""

    vhost: str
    queue: str
    message: Message
    redelivered: bool = False
    #: When it expires in this queue (seconds since the epoch; None: no TTL, or a store
    #: that did not record it).
    expires_at: float | None = None
    #: Deliveries returned so far (quorum queues; 0: none, or not recorded).
    delivery_count: int = 0
    #: The reason it was dead-lettered for, while it waits in its queue for its
    #: dead-letter queues (at-least-once dead-lettering; None: it is not dead).
    dead: str | None = None
    #: When it arrived (streams; seconds since the epoch; None: not recorded).
    arrived_at: float | None = None


@dataclass(slots=True)
class Recovered:
    """What a store hands back at start: definitions in dependency order (exchanges and
    queues before the bindings between them) and the messages of durable queues in
    queue order."""

    vhosts: list[str] = field(default_factory=list)
    definitions: list[tuple[str, str, Definition]] = field(default_factory=list)
    messages: list[StoredMessage] = field(default_factory=list)
    #: Users as stored (the broker's configured users take precedence).
    users: list[User] = field(default_factory=list)
    #: (user, vhost, configure, write, read) as stored.
    permissions: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    #: (user, vhost, exchange, write, read) as stored.
    topic_permissions: list[tuple[str, str, str, str, str]] = field(default_factory=list)


class ConfirmWaiter(Protocol):
    """What waits for publisher confirms (a channel in confirm mode)."""

    def commit_confirmed(self, seqs: list[int]) -> None:
        """The publishes numbered ``seqs`` (ascending) are durable."""

    def commit_nacked(self, seqs: list[int]) -> None:
        """The publishes numbered ``seqs`` could not be made durable (the store cannot
        write)."""


class Store:
    """Base class and interface of broker storage. Every method is a no-op here."""

    #: True when confirms of persistent messages must wait for :meth:`after_commit`.
    defers_confirms: bool = False
    #: A durable queue pages out the bodies of persistent messages that arrive while it
    #: holds more than this many ready messages (None: never).
    page_messages: int | None = None
    #: ... or more than this many bytes of ready message bodies (None: never).
    page_bytes: int | None = None

    def open(self) -> None:
        """Prepare the storage (create files, tables)."""

    def close(self) -> None:
        """Flush and release the storage."""

    def recover(self) -> Recovered:
        """Definitions and messages to rebuild at start."""
        return Recovered()

    def vhost_added(self, vhost: str) -> None:
        """A virtual host was created."""

    def definition_added(self, vhost: str, kind: str, definition: Definition) -> None:
        """A durable exchange or queue, or a binding between durable ends, was created."""

    def definition_removed(self, vhost: str, kind: str, definition: Definition) -> None:
        """A durable definition was deleted (deleting a queue or exchange also reports its
        bindings)."""

    def message_enqueued(self, vhost: str, queue: str, message: Message) -> None:
        """A persistent message entered a durable queue."""

    def message_expires(self, vhost: str, queue: str, message: Message, at: float) -> None:
        """The persistent message just reported with :meth:`message_enqueued` expires in
        that queue at ``at`` (seconds since the epoch: per-message TTL or x-message-ttl),
        so that it keeps its deadline across a restart."""

    def message_arrived(self, vhost: str, queue: str, message: Message, at: float) -> None:
        """The message of a stream just reported with :meth:`message_enqueued` arrived at
        ``at`` (seconds since the epoch), so that time-based offsets and ``x-max-age``
        count from then after a restart."""

    def message_removed(self, vhost: str, queue: str, message: Message) -> None:
        """A persistent message left a durable queue for good."""

    def message_returned(
        self, vhost: str, queue: str, message: Message, delivery_count: int
    ) -> None:
        """A message of a durable quorum queue came back (reject, nack, recover, a
        closed channel): its ``delivery_count`` now."""

    def message_dead(self, vhost: str, queue: str, message: Message, reason: str) -> None:
        """A message of a durable queue died (``reason``: rejected, expired,
        delivery_limit) and stays there until the queues it is dead-lettered to hold it
        (then :meth:`message_removed`)."""

    def queue_purged(self, vhost: str, queue: str, messages: Iterable[Message]) -> None:
        """Many messages left a durable queue at once (purge, delete)."""
        for message in messages:
            self.message_removed(vhost, queue, message)

    def after_commit(
        self, callback: Callable[[], None], failed: Callable[[], None] | None = None
    ) -> None:
        """Run ``callback`` once everything reported so far is durable. ``failed``: run
        instead when that cannot be done now (the store cannot write); without it the
        callback waits until the store can write again."""
        callback()

    def confirm_after_commit(self, waiter: ConfirmWaiter, seq: int) -> None:
        """Tell ``waiter`` that publish ``seq`` is durable once everything reported so far
        is (:meth:`after_commit`'s promise); a store that batches writes tells it the
        numbers of a batch together."""
        self.after_commit(
            lambda: waiter.commit_confirmed([seq]), lambda: waiter.commit_nacked([seq])
        )

    def set_alarm_handler(self, handler: Callable[[bool, str], None] | None) -> None:
        """Tell ``handler(True, reason)`` when the store cannot write (publishers should
        be blocked) and ``handler(False, "")`` when it can again."""

    def definitions_pending(self) -> bool:
        """True while a reported definition (exchange, queue, binding, vhost, user,
        permission) is not yet durable: replies to declarations then wait for
        :meth:`after_commit`."""
        return False

    def vhost_removed(self, vhost: str) -> None:
        """A virtual host and everything in it was deleted."""

    def user_added(self, user: User) -> None:
        """A user was created or changed."""

    def user_removed(self, name: str) -> None:
        """A user was deleted."""

    def permission_set(
        self, user: str, vhost: str, configure: str, write: str, read: str
    ) -> None:
        """A user's permissions in a vhost were set."""

    def permission_removed(self, user: str, vhost: str) -> None:
        """A user's permissions in a vhost were cleared."""

    def topic_permission_set(
        self, user: str, vhost: str, exchange: str, write: str, read: str
    ) -> None:
        """A user's topic permission for an exchange in a vhost was set."""

    def topic_permission_removed(self, user: str, vhost: str, exchange: str | None) -> None:
        """A user's topic permission for ``exchange`` in a vhost (None: all of them
        there) was cleared."""

    def mark_redelivered(self, vhost: str, queue: str, messages: Iterable[Message]) -> None:
        """At a clean shutdown: these persistent messages waiting in a durable queue had
        been delivered before (they come back with redelivered=true)."""

    def page_out(self, vhost: str, queue: str, message: Message) -> Message:
        """A stand-in without the body for ``message`` (already reported with
        :meth:`message_enqueued`), or ``message`` itself when the store keeps no bodies.
        The queue keeps the stand-in in place of ``message`` from then on."""
        return message

    def load(self, vhost: str, queue: str, messages: Sequence[Message]) -> list[Message]:
        """The full messages for ``messages``, in order (stand-ins are read back from the
        store; other messages are returned as they are)."""
        return list(messages)

    def load_later(
        self,
        vhost: str,
        queue: str,
        messages: Sequence[Message],
        done: Callable[[list[Message] | None], None],
    ) -> None:
        """As :meth:`load`, but off the event loop where the store can: ``done`` gets the
        full messages on the loop, maybe later (None: they could not be read that way,
        :meth:`load` says why)."""
        done(self.load(vhost, queue, messages))
