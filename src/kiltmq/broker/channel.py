"""One AMQP channel on the broker side: its consumers, unacknowledged deliveries,
prefetch, publisher confirms and transactions, and the handlers of the class 40-90
methods (exchange, queue, basic, confirm, tx).

Handlers raise :mod:`kiltmq.protocol.errors` exceptions; the session turns a soft error
into channel.close and a hard one into connection.close (see :mod:`.session`).

Hot path
--------
``publish`` looks the exchange up (cached with its permission check for the last name
used), builds one :class:`~kiltmq.broker.message.Message`, routes it and hands it to each
queue. ``deliver`` encodes basic.deliver + header + body straight into the consuming
connection's output buffer; the connection writes its buffer once per loop iteration.
Publisher confirms are collected and sent at flush time, coalesced into one
``multiple`` basic.ack where possible.
"""

from __future__ import annotations

import logging
import re
import struct
from typing import TYPE_CHECKING, Any

from kiltmq.broker.exchange import Exchange
from kiltmq.broker.message import FLAG_EXPIRATION, FLAG_USER_ID, Message
from kiltmq.broker.queue import Consumer, Entry, Queue
from kiltmq.broker.vhost import generate_name
from kiltmq.protocol import spec
from kiltmq.protocol.codec import encode_shortstr
from kiltmq.protocol.errors import (
    AccessRefused,
    AMQPNotImplemented,
    InternalError,
    NotAllowed,
    NotFound,
    PreconditionFailed,
)
from kiltmq.protocol.frames import content_frames

if TYPE_CHECKING:
    from collections.abc import Callable

    from kiltmq.broker.auth import Permission
    from kiltmq.broker.server import ServerConnection
    from kiltmq.broker.session import Session
    from kiltmq.protocol.connection import Event

__all__ = ["Channel"]

log = logging.getLogger("kiltmq.broker")

_S_QB = struct.Struct(">QB")
_pack_QB = _S_QB.pack
_pack_frame = struct.Struct(">BHI").pack
_join = b"".join
_INTEGER_PREFIX = re.compile(r"[+-]?[0-9]+")
_DELIVER_IDS = struct.pack(">HH", 60, 60)
_GET_OK_IDS = struct.pack(">HH", 60, 71)

# An unacked delivery: the queue, the entry, and the consumer (None for basic.get).
Unacked = tuple[Queue, Entry, "Consumer | None"]

#: Direct reply-to: the pseudo-queue a requester consumes its replies from, and the
#: prefix of the routing keys replies are published with.
REPLY_TO = "amq.rabbitmq.reply-to"
REPLY_PREFIX = "amq.rabbitmq.reply-to."
_FLAG_REPLY_TO = 0x0200


class ReplyTarget:
    """Where replies for one channel's direct reply-to consumer go. Routing treats it
    like a queue: :meth:`publish` delivers straight to the consumer, bypassing queues
    (as RabbitMQ does)."""

    __slots__ = ("channel",)
    durable = False

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    @property
    def deleted(self) -> bool:
        return self.channel.closed or self.channel.reply_tag is None

    def publish(self, message: Message) -> bool:
        if not self.deleted:
            self.channel.deliver_reply(message)
        return True


Target = Queue | ReplyTarget


class _Tx:
    """Work buffered in a transaction until tx.commit."""

    __slots__ = ("publishes", "settles")

    def __init__(self) -> None:
        self.publishes: list[tuple[tuple[Target, ...], Message, bool]] = []
        # ("ack" | "requeue" | "discard", records)
        self.settles: list[tuple[str, list[tuple[int, Unacked]]]] = []


class Channel:
    """Broker-side state of one open channel."""

    def __init__(self, session: Session, number: int) -> None:
        self.session = session
        self.number = number
        self.out: ServerConnection = session.conn
        self.vhost = session.vhost
        self.permission = session.permission
        self.user = session.username
        self.consumers: dict[str, Consumer] = {}
        self.unacked: dict[int, Unacked] = {}
        self.delivery_tag = 0
        #: basic.qos global=false: prefetch of consumers created from now on.
        self.prefetch = 0
        #: basic.qos global=true: limit shared by the channel's consumers (0: none).
        self.prefetch_global = 0
        #: Unacked consumer deliveries (counted against ``prefetch_global``).
        self.consumer_unacked = 0
        self.confirm = False
        self.publish_seq = 0
        self.tx: _Tx | None = None
        self.closed = False
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
        self._unconfirmed: set[int] = set()
        # publish cache: last exchange name -> exchange, its permission already checked,
        # and the encoded basic.deliver tails of its recent routing keys
        self._pub_name: str | None = None
        self._pub_exchange: Exchange | None = None
        self._tails: dict[str, bytes] = {}
        #: Largest body that fits one body frame (frame_max is fixed once tuned).
        self.body_max = (session.core.frame_max or 0xFFFFFFFF + 8) - 8
        self._handlers: dict[type[spec.Method], Callable[[Any], None]] = {
            spec.ExchangeDeclare: self.exchange_declare,
            spec.ExchangeDelete: self.exchange_delete,
            spec.ExchangeBind: self.exchange_bind,
            spec.ExchangeUnbind: self.exchange_unbind,
            spec.QueueDeclare: self.queue_declare,
            spec.QueueBind: self.queue_bind,
            spec.QueueUnbind: self.queue_unbind,
            spec.QueuePurge: self.queue_purge,
            spec.QueueDelete: self.queue_delete,
            spec.BasicQos: self.basic_qos,
            spec.BasicConsume: self.basic_consume,
            spec.BasicCancel: self.basic_cancel,
            spec.BasicGet: self.basic_get,
            spec.BasicAck: self.basic_ack,
            spec.BasicReject: self.basic_reject,
            spec.BasicNack: self.basic_nack,
            spec.BasicRecoverAsync: self.basic_recover_async,
            spec.BasicRecover: self.basic_recover,
            spec.ConfirmSelect: self.confirm_select,
            spec.TxSelect: self.tx_select,
            spec.TxCommit: self.tx_commit,
            spec.TxRollback: self.tx_rollback,
            spec.ChannelFlow: self.channel_flow,
        }

    # -- plumbing ---------------------------------------------------------------------

    def handle(self, method: spec.Method) -> None:
        handler = self._handlers.get(type(method))
        if handler is None:
            raise AMQPNotImplemented(
                f"NOT_IMPLEMENTED - {method.NAME} is not handled by this broker",
                method.CLASS_ID,
                method.METHOD_ID,
            )
        handler(method)

    def send(self, method: spec.Method) -> None:
        if self._acks or self._nacks:
            self.flush_confirms()
        self.out.send_method(self.number, method)

    def set_permission(self, permission: Permission | None) -> None:
        """Check ``permission`` from now on (see :meth:`Session.set_permission`)."""
        self.permission = permission
        self._pub_name = None  # the publish cache holds an exchange checked already

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

    def _queue(self, name: str) -> Queue:
        return self.vhost.get_queue(self._queue_name(name), self.session)

    # -- exchange class -----------------------------------------------------------------

    def exchange_declare(self, m: spec.ExchangeDeclare) -> None:
        vhost = self.vhost
        if m.passive:
            exchange = vhost.get_exchange(m.exchange)
        else:
            vhost.check_exchange_type(m.type)
            if m.exchange == "":
                vhost.get_exchange("")  # 403 for the default exchange
            self._check("configure", "exchange", m.exchange)
            alternate = (m.arguments or {}).get("alternate-exchange")
            if isinstance(alternate, str) and m.exchange not in vhost.exchanges:
                self._check("write", "exchange", alternate)
            exchange = vhost.declare_exchange(
                m.exchange,
                m.type,
                durable=m.durable,
                auto_delete=m.auto_delete,
                internal=m.internal,
                arguments=m.arguments,
            )
        if not m.no_wait:
            self._reply_stored(spec.ExchangeDeclareOk(), exchange.durable)

    def exchange_delete(self, m: spec.ExchangeDelete) -> None:
        if m.exchange and not m.exchange.startswith("amq."):
            self._check("configure", "exchange", m.exchange)
        exchange = self.vhost.exchanges.get(m.exchange)
        self.vhost.delete_exchange(m.exchange, if_unused=m.if_unused)
        if not m.no_wait:
            self._reply_stored(spec.ExchangeDeleteOk(), exchange is not None and exchange.durable)

    def _exchange_pair(self, destination: str, source: str) -> tuple[Exchange, Exchange]:
        vhost = self.vhost
        if destination == "" or source == "":
            vhost.get_exchange("")
        self._check("write", "exchange", destination)
        self._check("read", "exchange", source)
        return vhost.get_exchange(destination), vhost.get_exchange(source)

    def exchange_bind(self, m: spec.ExchangeBind) -> None:
        vhost = self.vhost
        if m.destination == "" or m.source == "":
            vhost.get_exchange("")
        self._check("write", "exchange", m.destination)
        self._check("read", "exchange", m.source)
        source = vhost.get_exchange(m.source)
        destination = vhost.get_exchange(m.destination)
        vhost.bind(source, destination, m.routing_key, m.arguments)
        if not m.no_wait:
            self._reply_stored(spec.ExchangeBindOk(), source.durable and destination.durable)

    def exchange_unbind(self, m: spec.ExchangeUnbind) -> None:
        vhost = self.vhost
        if m.destination == "" or m.source == "":
            vhost.get_exchange("")
        self._check("write", "exchange", m.destination)
        self._check("read", "exchange", m.source)
        source = vhost.exchanges.get(m.source)
        destination = vhost.exchanges.get(m.destination)
        durable = False
        if source is not None and destination is not None:
            vhost.unbind(source, destination, m.routing_key, m.arguments)
            durable = source.durable and destination.durable
        if not m.no_wait:
            self._reply_stored(spec.ExchangeUnbindOk(), durable)

    # -- queue class ----------------------------------------------------------------------

    def queue_declare(self, m: spec.QueueDeclare) -> None:
        vhost = self.vhost
        session = self.session
        if m.passive and m.queue.startswith(REPLY_TO):
            self._declare_reply_queue(m)
            return
        if m.passive:
            # no "last declared queue" shortcut here, as in RabbitMQ
            queue = vhost.get_queue(m.queue, session)
        else:
            if m.queue:
                name = m.queue
                vhost.check_queue_name(name)
            else:
                name = generate_name("amq.gen-")
            self._check("configure", "queue", name)
            dlx = (m.arguments or {}).get("x-dead-letter-exchange")
            if isinstance(dlx, str) and name not in vhost.queues:
                self._check("read", "queue", name)
                self._check("write", "exchange", dlx)
            queue, created = vhost.declare_queue(
                name,
                durable=m.durable,
                exclusive=m.exclusive,
                auto_delete=m.auto_delete,
                arguments=m.arguments,
                owner=session,
            )
            if created and queue.owner is session:
                session.own_queue(queue)
        self.last_queue = queue.name
        if not m.no_wait:
            self._reply_stored(
                spec.QueueDeclareOk(queue.name, len(queue.ready), len(queue.consumers)),
                queue.durable,
            )

    def _declare_reply_queue(self, m: spec.QueueDeclare) -> None:
        """Passive declare of the direct reply-to pseudo-queue, or of a reply key."""
        if m.queue != REPLY_TO and m.queue not in self.vhost.reply_targets:
            raise self.vhost.not_found("queue", m.queue)
        if not m.no_wait:
            self.send(spec.QueueDeclareOk(m.queue, 0, 1))  # RabbitMQ says 1 consumer

    def queue_bind(self, m: spec.QueueBind) -> None:
        vhost = self.vhost
        name = self._queue_name(m.queue)
        routing_key = m.routing_key
        if not routing_key and not m.queue:
            routing_key = name
        if m.exchange == "":
            vhost.get_exchange("")
        self._check("write", "queue", name)
        self._check("read", "exchange", m.exchange)
        exchange = vhost.get_exchange(m.exchange)
        queue = vhost.get_queue(name, self.session)
        vhost.bind(exchange, queue, routing_key, m.arguments)
        if not m.no_wait:
            self._reply_stored(spec.QueueBindOk(), exchange.durable and queue.durable)

    def queue_unbind(self, m: spec.QueueUnbind) -> None:
        vhost = self.vhost
        name = self._queue_name(m.queue)
        if m.exchange == "":
            vhost.get_exchange("")
        self._check("write", "queue", name)
        self._check("read", "exchange", m.exchange)
        exchange = vhost.exchanges.get(m.exchange)
        queue = vhost.queues.get(name)
        durable = False
        if exchange is not None and queue is not None:
            if queue.owner is not None and queue.owner is not self.session:
                raise vhost.locked(name)
            vhost.unbind(exchange, queue, m.routing_key, m.arguments)
            durable = exchange.durable and queue.durable
        self._reply_stored(spec.QueueUnbindOk(), durable)

    def queue_purge(self, m: spec.QueuePurge) -> None:
        name = self._queue_name(m.queue)
        self._check("read", "queue", name)
        queue = self.vhost.get_queue(name, self.session)
        count = queue.purge()
        if not m.no_wait:
            self.send(spec.QueuePurgeOk(count))

    def queue_delete(self, m: spec.QueueDelete) -> None:
        name = self._queue_name(m.queue)
        self._check("configure", "queue", name)
        queue = self.vhost.queues.get(name)
        count = 0
        if queue is not None:
            if queue.owner is not None and queue.owner is not self.session:
                raise self.vhost.locked(name)
            count = self.vhost.delete_queue(queue, if_unused=m.if_unused, if_empty=m.if_empty)
        if not m.no_wait:
            self._reply_stored(spec.QueueDeleteOk(count), queue is not None and queue.durable)

    # -- basic: publishing ----------------------------------------------------------------

    def publish(self, m: spec.BasicPublish, raw_properties: bytes, body: bytes) -> None:
        name = m.exchange
        exchange = self._pub_exchange
        if name != self._pub_name or exchange is None or exchange.deleted:
            exchange = self.vhost.exchanges.get(name)
            if exchange is None:
                raise self.vhost.not_found("exchange", name)
            self._check("write", "exchange", name or "amq.default")
            if exchange.internal:
                raise AccessRefused(
                    f"ACCESS_REFUSED - cannot publish to internal "
                    f"{self.vhost.describe('exchange', name)}"
                )
            self._pub_name = name
            self._pub_exchange = exchange
            self._tails = {}
        if m.immediate:
            raise AMQPNotImplemented("NOT_IMPLEMENTED - immediate=true", 60, 40)
        routing_key = m.routing_key
        tail = self._tails.get(routing_key)
        if tail is None:
            if len(self._tails) > 256:
                self._tails = {}
            tail = self._tails[routing_key] = encode_shortstr(name) + encode_shortstr(routing_key)
        message = Message(name, routing_key, raw_properties, body, tail)
        try:
            message.check()
            if message.flags & _FLAG_REPLY_TO and message.properties.reply_to == REPLY_TO:
                message = self._with_reply_key(message)
            if message.flags & FLAG_EXPIRATION:
                self._check_expiration(message)
            if message.flags & FLAG_USER_ID:
                user_id = message.user_id()
                if user_id != self.user and "impersonator" not in self.session.user_tags:
                    raise PreconditionFailed(
                        f"PRECONDITION_FAILED - user_id property set to '{user_id}' but "
                        f"authenticated user was '{self.user}'"
                    )
            if not name and routing_key.startswith(REPLY_PREFIX):
                target = self.vhost.reply_targets.get(routing_key)
                queues: tuple[Target, ...] = (target,) if target is not None else ()
            else:
                queues = self.vhost.route(exchange, message)
        except (ValueError, IndexError, struct.error):
            # properties that do not decode: RabbitMQ closes the connection with 541
            log.info("%s: undecodable content properties", self.session.peer_name)
            raise InternalError("INTERNAL_ERROR") from None
        if self.session.blocked_by_alarm:
            self.session.publishing_while_blocked()
        if self.tx is not None:
            self.tx.publishes.append((queues, message, m.mandatory))
            return
        self._enqueue(queues, message, m.mandatory)

    def _with_reply_key(self, message: Message) -> Message:
        """Direct reply-to: the request goes out with the routing key of this channel's
        reply consumer in its reply-to property."""
        if self.reply_tag is None:
            raise PreconditionFailed("PRECONDITION_FAILED - fast reply consumer does not exist")
        props = message.properties
        changed = spec.BasicProperties(**{f: getattr(props, f) for f in props.FIELDS})
        changed.reply_to = self.reply_key
        return Message(
            message.exchange,
            message.routing_key,
            changed.encode(),
            message.body,
            message.deliver_tail,
        )

    @staticmethod
    def _check_expiration(message: Message) -> None:
        """RabbitMQ refuses a publish whose expiration is not a non-negative integer."""
        text = message.properties.expiration or ""
        number = _INTEGER_PREFIX.match(text)
        if number is None:
            reason = "no_integer"
        elif number.end() < len(text):
            reason = f'{{leftover_string,"{text[number.end():]}"}}'
        elif int(text) < 0:
            reason = f"{{value_negative,{int(text)}}}"
        else:
            return
        raise PreconditionFailed(f"PRECONDITION_FAILED - invalid expiration '{text}': {reason}")

    def _enqueue(self, queues: tuple[Target, ...], message: Message, mandatory: bool) -> None:
        if not self.confirm:
            if queues:
                for queue in queues:
                    queue.publish(message)
            elif mandatory:
                self._return(message)
            return
        self.publish_seq = seq = self.publish_seq + 1
        if not queues:
            if mandatory:
                self._return(message)
            self._confirmed(seq)
            return
        accepted = True
        for queue in queues:
            if not queue.publish(message):
                accepted = False
        if not accepted:
            self._nacked(seq)
            return
        store = self.vhost.store
        if store.defers_confirms and message.persistent and any(q.durable for q in queues):
            self._unconfirmed.add(seq)
            store.after_commit(lambda: self._commit_confirmed(seq))
        else:
            self._confirmed(seq)

    def _return(self, message: Message) -> None:
        method = spec.BasicReturn(312, "NO_ROUTE", message.exchange, message.routing_key)
        self.out.send_raw(
            content_frames(
                self.number,
                method.encode(),
                message.header_payload,
                message.body,
                self.out.core.frame_max,
            )
        )

    # -- confirms -------------------------------------------------------------------------

    def _confirmed(self, seq: int) -> None:
        if not self._acks and not self._nacks:
            self.session.confirms_pending(self)
        self._acks.append(seq)

    def _nacked(self, seq: int) -> None:
        if not self._acks and not self._nacks:
            self.session.confirms_pending(self)
        self._nacks.append(seq)

    def _commit_confirmed(self, seq: int) -> None:
        if self.closed:
            return
        self._unconfirmed.discard(seq)
        self._confirmed(seq)
        self.out.want_flush()

    def flush_confirms(self) -> None:
        """Send the collected confirms: one ``multiple`` ack when no earlier message is
        still waiting, otherwise one ack/nack per message."""
        acks, nacks = self._acks, self._nacks
        if not acks and not nacks:
            return
        self._acks = []
        self._nacks = []
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

    # -- basic: consuming -----------------------------------------------------------------

    def can_deliver(self, consumer: Consumer) -> bool:
        out = self.out
        if not out.can_send:
            out.starved = True
            return False
        prefetch = consumer.prefetch
        if prefetch and consumer.unacked >= prefetch:
            return False
        return not (self.prefetch_global and self.consumer_unacked >= self.prefetch_global)

    def deliver(self, consumer: Consumer, entry: Entry) -> None:
        self.delivery_tag = tag = self.delivery_tag + 1
        message = entry.message
        payload = consumer.deliver_prefix + _pack_QB(tag, entry.redelivered) + message.deliver_tail
        body = message.body
        size = len(body)
        if 0 < size <= self.body_max:
            # method, header and body frames in one join (the common case)
            number = self.number
            header = message.header_payload
            data = _join(
                (
                    _pack_frame(1, number, len(payload)),
                    payload,
                    b"\xce",
                    _pack_frame(2, number, len(header)),
                    header,
                    b"\xce",
                    _pack_frame(3, number, size),
                    body,
                    b"\xce",
                )
            )
        else:
            data = content_frames(
                self.number, payload, message.header_payload, body, self.out.core.frame_max
            )
        self.out.send_delivery(data)
        if consumer.no_ack:
            consumer.queue.ack(entry)
        else:
            self.unacked[tag] = (consumer.queue, entry, consumer)
            consumer.unacked += 1
            self.consumer_unacked += 1

    def deliver_reply(self, message: Message) -> None:
        """A direct reply-to reply: straight to this channel's reply consumer (no-ack)."""
        self.delivery_tag = tag = self.delivery_tag + 1
        self.out.send_delivery(
            content_frames(
                self.number,
                self.reply_prefix + _pack_QB(tag, False) + message.deliver_tail,
                message.header_payload,
                message.body,
                self.out.core.frame_max,
            )
        )

    def consumer_cancelled(self, consumer: Consumer) -> None:
        """The queue went away under ``consumer``: tell the client if it asked to know."""
        if self.consumers.get(consumer.tag) is consumer:
            del self.consumers[consumer.tag]
            if self.session.cancel_notify and not self.closed:
                self.send(spec.BasicCancel(consumer.tag, True))

    def basic_qos(self, m: spec.BasicQos) -> None:
        if m.prefetch_size:
            raise AMQPNotImplemented(
                f"NOT_IMPLEMENTED - prefetch_size!=0 ({m.prefetch_size})", 60, 10
            )
        if m.global_:
            self.prefetch_global = m.prefetch_count
        else:
            self.prefetch = m.prefetch_count
        self.send(spec.BasicQosOk())
        if m.global_:
            self._drain_consumers()

    def _drain_consumers(self) -> None:
        for queue in {c.queue for c in self.consumers.values()}:
            queue.drain()

    def basic_consume(self, m: spec.BasicConsume) -> None:
        if m.queue == REPLY_TO:
            self._consume_replies(m)
            return
        name = self._queue_name(m.queue)
        self._check("read", "queue", name)
        queue = self.vhost.get_queue(name, self.session)
        tag = m.consumer_tag or generate_name("amq.ctag-")
        if tag in self.consumers:
            raise NotAllowed(f"NOT_ALLOWED - attempt to reuse consumer tag '{tag}'", 60, 20)
        if queue.exclusive_consumer is not None or (m.exclusive and queue.consumers):
            raise AccessRefused(
                f"ACCESS_REFUSED - {self.vhost.describe('queue', name)} in exclusive use"
            )
        priority = (m.arguments or {}).get("x-priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            kind = "longstr" if isinstance(priority, str | bytes) else type(priority).__name__
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - invalid arg 'x-priority' for "
                f'{self.vhost.describe("queue", name)}: "expected integer, got {kind}"'
            )
        consumer = Consumer(
            tag,
            queue,
            self,
            priority=priority,
            no_ack=m.no_ack,
            exclusive=m.exclusive,
            prefetch=0 if m.no_ack else self.prefetch,
            arguments=m.arguments,
            deliver_prefix=_DELIVER_IDS + encode_shortstr(tag),
        )
        self.consumers[tag] = consumer
        if not m.no_wait:
            self.send(spec.BasicConsumeOk(tag))
        queue.add_consumer(consumer)

    def _consume_replies(self, m: spec.BasicConsume) -> None:
        if not m.no_ack:
            raise PreconditionFailed("PRECONDITION_FAILED - reply consumer cannot acknowledge")
        if self.reply_tag is not None:
            raise PreconditionFailed("PRECONDITION_FAILED - reply consumer already set")
        tag = m.consumer_tag or generate_name("amq.ctag-")
        if tag in self.consumers:
            raise NotAllowed(f"NOT_ALLOWED - attempt to reuse consumer tag '{tag}'", 60, 20)
        self.reply_tag = tag
        self.reply_prefix = _DELIVER_IDS + encode_shortstr(tag)
        self.reply_key = generate_name(REPLY_PREFIX)
        self.vhost.reply_targets[self.reply_key] = ReplyTarget(self)
        if not m.no_wait:
            self.send(spec.BasicConsumeOk(tag))

    def _stop_replies(self) -> None:
        if self.reply_tag is not None:
            self.reply_tag = None
            self.vhost.reply_targets.pop(self.reply_key, None)

    def basic_cancel(self, m: spec.BasicCancel) -> None:
        if m.consumer_tag == self.reply_tag:
            self._stop_replies()
        consumer = self.consumers.pop(m.consumer_tag, None)
        if not m.no_wait:
            self.send(spec.BasicCancelOk(m.consumer_tag))
        if consumer is not None:
            consumer.queue.remove_consumer(consumer)

    def basic_get(self, m: spec.BasicGet) -> None:
        name = self._queue_name(m.queue)
        self._check("read", "queue", name)
        queue = self.vhost.get_queue(name, self.session)
        entry = queue.get()
        if entry is None:
            self.send(spec.BasicGetEmpty())
            return
        self.delivery_tag = tag = self.delivery_tag + 1
        message = entry.message
        if self._acks or self._nacks:
            self.flush_confirms()
        payload = (
            _GET_OK_IDS
            + _pack_QB(tag, entry.redelivered)
            + message.deliver_tail
            + struct.pack(">I", len(queue.ready))
        )
        self.out.send_raw(
            content_frames(
                self.number, payload, message.header_payload, message.body, self.out.core.frame_max
            )
        )
        if m.no_ack:
            queue.ack(entry)
        else:
            self.unacked[tag] = (queue, entry, None)

    # -- basic: settlement ----------------------------------------------------------------

    def _collect(self, tag: int, multiple: bool) -> list[tuple[int, Unacked]]:
        unacked = self.unacked
        if multiple:
            if tag == 0:
                records = list(unacked.items())
                unacked.clear()
                return records
            if tag not in unacked:
                raise PreconditionFailed(f"PRECONDITION_FAILED - unknown delivery tag {tag}")
            tags = []
            for t in unacked:
                if t > tag:
                    break
                tags.append(t)
            return [(t, unacked.pop(t)) for t in tags]
        record = unacked.pop(tag, None)
        if record is None:
            raise PreconditionFailed(f"PRECONDITION_FAILED - unknown delivery tag {tag}")
        return [(tag, record)]

    def basic_ack(self, m: spec.BasicAck) -> None:
        unacked = self.unacked
        if not m.multiple and self.tx is None:
            # the common case, kept short
            record = unacked.pop(m.delivery_tag, None)
            if record is None:
                raise PreconditionFailed(
                    f"PRECONDITION_FAILED - unknown delivery tag {m.delivery_tag}"
                )
            queue, entry, consumer = record
            queue.ack(entry)
            if consumer is not None:
                consumer.unacked -= 1
                self.consumer_unacked -= 1
                if self.prefetch_global:
                    # the freed credit is the channel's: any of its queues may use it
                    self._drain_consumers()
                elif queue.ready:
                    queue.drain()
            return
        records = self._collect(m.delivery_tag, m.multiple)
        if self.tx is not None:
            self.tx.settles.append(("ack", records))
            return
        self._settle(records, "ack")

    def basic_nack(self, m: spec.BasicNack) -> None:
        records = self._collect(m.delivery_tag, m.multiple)
        self._reject(records, m.requeue)

    def basic_reject(self, m: spec.BasicReject) -> None:
        records = self._collect(m.delivery_tag, False)
        self._reject(records, m.requeue)

    def _reject(self, records: list[tuple[int, Unacked]], requeue: bool) -> None:
        kind = "requeue" if requeue else "discard"
        if self.tx is not None:
            self.tx.settles.append((kind, records))
            return
        self._settle(records, kind)

    def _settle(self, records: list[tuple[int, Unacked]], kind: str) -> None:
        """Ack, requeue or discard (dead-letter) settled deliveries."""
        to_requeue: dict[Queue, list[Entry]] = {}
        touched: dict[Queue, None] = {}
        for _tag, (queue, entry, consumer) in records:
            if consumer is not None:
                consumer.unacked -= 1
                self.consumer_unacked -= 1
            if kind == "ack":
                queue.ack(entry)
            elif kind == "requeue":
                to_requeue.setdefault(queue, []).append(entry)
            else:
                queue.reject(entry, False)
            touched[queue] = None
        for queue, entries in to_requeue.items():
            queue.requeue(entries)
        if self.prefetch_global:
            self._drain_consumers()
        else:
            for queue in touched:
                queue.drain()

    def basic_recover_async(self, m: spec.BasicRecoverAsync) -> None:
        if not m.requeue:
            raise AMQPNotImplemented("NOT_IMPLEMENTED - requeue=false", 60, 100)
        self._requeue_all()

    def basic_recover(self, m: spec.BasicRecover) -> None:
        if not m.requeue:
            raise AMQPNotImplemented("NOT_IMPLEMENTED - requeue=false", 60, 110)
        self._requeue_all()
        self.send(spec.BasicRecoverOk())

    def _requeue_all(self) -> None:
        records = list(self.unacked.items())
        self.unacked.clear()
        if records:
            self._settle(records, "requeue")

    # -- confirm and tx -------------------------------------------------------------------

    def confirm_select(self, m: spec.ConfirmSelect) -> None:
        if self.tx is not None:
            raise PreconditionFailed("PRECONDITION_FAILED - cannot switch from tx to confirm mode")
        self.confirm = True
        if not m.nowait:
            self.send(spec.ConfirmSelectOk())

    def tx_select(self, m: spec.TxSelect) -> None:
        if self.confirm:
            raise PreconditionFailed("PRECONDITION_FAILED - cannot switch from confirm to tx mode")
        if self.tx is None:
            self.tx = _Tx()
        self.send(spec.TxSelectOk())

    def tx_commit(self, m: spec.TxCommit) -> None:
        tx = self.tx
        if tx is None:
            raise PreconditionFailed("PRECONDITION_FAILED - channel is not transactional")
        self.tx = _Tx()
        for queues, message, mandatory in tx.publishes:
            live = tuple(q for q in queues if not q.deleted)
            self._enqueue(live, message, mandatory)
        for kind, records in tx.settles:
            self._settle(records, kind)
        store = self.vhost.store
        if store.defers_confirms and (tx.publishes or tx.settles):
            # commit-ok once the transaction's persistent messages and acks are on disk
            self._reply_after_commit(spec.TxCommitOk())
        else:
            self.send(spec.TxCommitOk())

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
        self.session.replay(self, held or [])

    def tx_rollback(self, m: spec.TxRollback) -> None:
        tx = self.tx
        if tx is None:
            raise PreconditionFailed("PRECONDITION_FAILED - channel is not transactional")
        self.tx = _Tx()
        if tx.settles:
            restored = dict(self.unacked)
            for _kind, records in tx.settles:
                restored.update(records)
            self.unacked = dict(sorted(restored.items()))
        self.send(spec.TxRollbackOk())

    # -- channel class --------------------------------------------------------------------

    def channel_flow(self, m: spec.ChannelFlow) -> None:
        if not m.active:
            raise AMQPNotImplemented("NOT_IMPLEMENTED - active=false", 20, 20)
        self.send(spec.ChannelFlowOk(True))

    def close(self) -> None:
        """Release everything: cancel consumers, requeue unacked deliveries (including
        those settled in a transaction that was never committed)."""
        if self.closed:
            return
        self.closed = True
        self._stop_replies()
        tx, self.tx = self.tx, None
        self._acks = []
        self._nacks = []
        consumers = list(self.consumers.values())
        self.consumers.clear()
        for consumer in consumers:
            consumer.queue.detach_consumer(consumer)
        records = list(self.unacked.items())
        self.unacked.clear()
        if tx is not None:
            for _kind, settled in tx.settles:
                records.extend(settled)
        if records:
            to_requeue: dict[Queue, list[Entry]] = {}
            for _tag, (queue, entry, _consumer) in records:
                to_requeue.setdefault(queue, []).append(entry)
            for queue, entries in to_requeue.items():
                queue.requeue(entries)
        for consumer in consumers:
            consumer.queue.consumer_gone()
