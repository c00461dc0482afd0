"""The state of one open channel and the plumbing every part of it shares: replies
(sent after the publisher confirms collected so far), permission checks, the "last
declared queue" default, and replies that wait for the store."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from kiltmq.broker.auth import topic_refused
from kiltmq.broker.channel.ack_timeout import AckClock
from kiltmq.broker.queue import Consumer, Entry, Queue
from kiltmq.broker.vhost import generate_name
from kiltmq.protocol import spec
from kiltmq.protocol.errors import AccessRefused, NotAllowed, NotFound
from kiltmq.protocol.frames import content_frames

if TYPE_CHECKING:
    from kiltmq.broker.auth import Permission, TopicPermission
    from kiltmq.broker.channel.owner import ChannelConnection, ChannelSession
    from kiltmq.broker.exchange import Exchange
    from kiltmq.broker.message import Message
    from kiltmq.broker.reply_target import Target
    from kiltmq.protocol.connection import Event

__all__ = ["DELIVER_IDS", "ChannelState", "Tx", "Unacked", "pack_QB"]

#: basic.deliver's class and method ids, the start of its payload.
DELIVER_IDS = struct.pack(">HH", 60, 60)
#: Packs a delivery tag and the redelivered flag.
pack_QB = struct.Struct(">QB").pack

# An unacked delivery: the queue, the entry, and the consumer (None for basic.get).
Unacked = tuple[Queue, Entry, "Consumer | None"]


class Tx:
    """Work buffered in a transaction until tx.commit."""

    __slots__ = ("publishes", "settles", "size")

    def __init__(self) -> None:
        self.publishes: list[tuple[tuple[Target, ...], Message, bool]] = []
        #: Bytes of the bodies in ``publishes``.
        self.size = 0
        # ("ack" | "requeue" | "discard", records)
        self.settles: list[tuple[str, list[tuple[int, Unacked]]]] = []


_NOT_CONFIRMING: set[int] = set()


class ChannelState:
    """Broker-side state of one open channel."""

    # Slots keep an idle channel small; __dict__ (made only when used) and __weakref__
    # stay for the testing faults, which replace methods of a channel and map channels
    # weakly.
    __slots__ = (
        "_acks", "_nacks", "_pub_exchange", "_pub_name", "_pub_topic", "_tails",
        "_unconfirmed", "topics",
        "ack_clock", "acked", "body_max", "closed", "confirm", "confirmed",
        "consumer_unacked", "consumers", "delivery_tag", "dropped", "got", "got_empty",
        "held", "last_queue", "no_ack_delivered", "no_ack_got", "number", "out",
        "permission", "prefetch", "prefetch_global", "publish_seq", "published",
        "redelivered", "reply_key", "reply_prefix", "reply_tag", "returned", "session",
        "tx", "unacked", "unacked_bytes", "user", "vhost", "__dict__", "__weakref__",
    )

    #: The message counters (see ``__init__``; ``publish_seq``: the publishes received
    #: in confirm mode), added to the vhost's ``closed_channel_counts`` when the channel
    #: closes.
    COUNTERS = (
        "published", "delivery_tag", "got", "got_empty", "no_ack_delivered", "no_ack_got",
        "acked", "redelivered", "confirmed", "returned", "dropped", "publish_seq",
    )

    def __init__(self, session: ChannelSession, number: int) -> None:
        self.session = session
        self.number = number
        self.out: ChannelConnection = session.conn
        self.vhost = session.vhost
        self.permission = session.permission
        #: The user's topic permissions by exchange (None: none, nothing to check).
        self.topics = session.topic_permissions
        self.user = session.username
        self.consumers: dict[str, Consumer] = {}
        self.unacked: dict[int, Unacked] = {}
        #: Bytes of the bodies of unsettled deliveries (in ``unacked`` or settled in a
        #: transaction not yet committed): what the memory alarm counts.
        self.unacked_bytes = 0
        self.delivery_tag = 0
        #: When unacked deliveries went out, as far as the consumer timeout needs it.
        self.ack_clock = AckClock()
        #: basic.qos global=false: prefetch of consumers created from now on.
        self.prefetch = 0
        #: basic.qos global=true: limit shared by the channel's consumers (0: none).
        self.prefetch_global = 0
        #: Unacked consumer deliveries (counted against ``prefetch_global``).
        self.consumer_unacked = 0
        self.confirm = False
        self.publish_seq = 0
        self.tx: Tx | None = None
        self.closed = False
        #: Counters for monitoring (plain increments): publishes, basic.get answered with
        #: a message or empty, deliveries and gets without acknowledgement, acks,
        #: redeliveries, confirms, mandatory returns and unroutable messages dropped.
        #: Deliveries and gets together are ``delivery_tag``.
        self.published = 0
        self.got = 0
        self.got_empty = 0
        self.no_ack_delivered = 0
        self.no_ack_got = 0
        self.acked = 0
        self.redelivered = 0
        self.confirmed = 0
        self.returned = 0
        self.dropped = 0
        #: Events received while a reply waits for the store (tx.commit-ok, the
        #: declare-ok of a durable queue...): replayed after it, so replies on the channel
        #: keep the order of the requests.
        self.held: list[Event] | None = None
        self.last_queue = ""
        # direct reply-to: the consumer tag, its basic.deliver prefix, and the routing key
        # that reaches it
        self.reply_tag: str | None = None
        self.reply_prefix = b""
        self.reply_key = ""
        # confirms waiting for the flush: sequence numbers acked / nacked
        self._acks: list[int] = []
        self._nacks: list[int] = []
        # (the empty set that every channel shares until confirm.select: never added to)
        self._unconfirmed: set[int] = _NOT_CONFIRMING
        # publish cache: last exchange name -> exchange, its permission already checked,
        # and the encoded basic.deliver tails of its recent routing keys
        self._pub_name: str | None = None
        self._pub_exchange: Exchange | None = None
        #: The user's topic permission for the cached exchange if it is a topic exchange
        #: that has one (None: every routing key is allowed).
        self._pub_topic: TopicPermission | None = None
        self._tails: dict[str, bytes] = {}
        #: Largest body that fits one body frame (frame_max is fixed once tuned).
        self.body_max = (self.out.core.frame_max or 0xFFFFFFFF + 8) - 8

    # -- output -----------------------------------------------------------------------

    def send(self, method: spec.Method) -> None:
        if self._acks or self._nacks:
            self.flush_confirms()
        self.out.send_method(self.number, method)

    def flush_confirms(self) -> None:
        """Send the collected publisher confirms: one ``multiple`` ack when no earlier
        message is still waiting, otherwise one ack/nack per message."""
        acks, nacks = self._acks, self._nacks
        if not acks and not nacks:
            return
        self._acks = []
        self._nacks = []
        self.confirmed += len(acks)
        if self.closed:
            return
        out = self.out
        number = self.number
        top = acks[-1] if acks else 0
        if not nacks and (not self._unconfirmed or min(self._unconfirmed) > top):
            out.send_method(number, spec.BasicAck(top, len(acks) > 1))
            return
        for seq, is_ack in sorted([(s, True) for s in acks] + [(s, False) for s in nacks]):
            if is_ack:
                out.send_method(number, spec.BasicAck(seq, False))
            else:
                out.send_method(number, spec.BasicNack(seq, False, False))

    def _content(self, payload: bytes, message: Message, header: bytes | None = None) -> bytes:
        """The frames of a content-carrying method (``payload``) with ``message`` (and
        ``header`` instead of its own content header if given)."""
        return content_frames(
            self.number,
            payload,
            header or message.header_payload,
            message.body,
            self.out.core.frame_max,
        )

    def _reply_stored(self, reply: spec.Method, durable: bool) -> None:
        """Send the reply to a declaration, binding or deletion. For a durable object,
        once its definition is on disk: a client told that a durable queue exists may
        rely on it after a crash (memory-only brokers never wait)."""
        store = self.vhost.store
        if durable and store.defers_confirms and store.definitions_pending():
            self._reply_after_commit(reply)
        else:
            self.send(reply)

    def _reply_after_commit(self, reply: spec.Method) -> None:
        """Send ``reply`` once the store has committed what was reported so far; the
        channel's next methods wait for it (see Session.handle), so replies keep the
        order of the requests."""
        self.held = []
        self.vhost.store.after_commit(lambda: self._committed(reply))

    def _committed(self, reply: spec.Method) -> None:
        held, self.held = self.held, None
        if self.closed:
            held = None  # what the client sent after the request no longer matters
        else:
            self.send(reply)
        self.session.replay(self.number, held or [])

    # -- permissions and names ----------------------------------------------------------

    def set_permission(self, permission: Permission | None) -> None:
        """Check ``permission`` from now on (see :meth:`Session.set_permission`)."""
        self.permission = permission
        self._pub_name = None  # the publish cache holds an exchange checked already

    def set_topic_permissions(self, topics: dict[str, TopicPermission] | None) -> None:
        """Check routing keys against ``topics`` from now on."""
        self.topics = topics
        self._pub_name = None

    def _topic_permission(self, exchange: Exchange) -> TopicPermission | None:
        """The user's topic permission for ``exchange`` if it is a topic exchange that
        has one (RabbitMQ checks topic exchanges only)."""
        topics = self.topics
        if topics is None or exchange.TYPE != "topic":
            return None
        return topics.get(exchange.name)

    def _check_topic(self, exchange: Exchange, action: str, routing_key: str) -> None:
        """403 unless the user's topic permission for ``exchange`` (if any) allows
        ``action`` ("write" or "read") with ``routing_key``."""
        topic = self._topic_permission(exchange)
        if topic is not None and not topic.allows(action, routing_key):
            raise self._topic_refused(exchange.name, routing_key)

    def _topic_refused(self, exchange: str, routing_key: str) -> AccessRefused:
        return AccessRefused(topic_refused(routing_key, exchange, self.vhost.name, self.user))

    def _check(self, action: str, kind: str, name: str) -> None:
        permission = self.permission
        if permission is None or not permission.allows(action, name):
            raise AccessRefused(
                f"ACCESS_REFUSED - access to {kind} '{name}' in vhost '{self.vhost.name}' "
                f"refused for user '{self.user}'"
            )

    def _queue_name(self, name: str) -> str:
        if name:
            return name
        if not self.last_queue:
            raise NotFound("NOT_FOUND - no previously declared queue")
        return self.last_queue

    def _consumer_tag(self, tag: str) -> str:
        """The tag asked for in basic.consume, or a new one if empty; 530 if in use."""
        tag = tag or generate_name("amq.ctag-")
        if tag in self.consumers:
            raise NotAllowed(f"NOT_ALLOWED - attempt to reuse consumer tag '{tag}'", 60, 20)
        return tag
