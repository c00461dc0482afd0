"""basic.publish and publisher confirms.

``publish`` looks the exchange up (cached with its permission check for the last name
used, and the user's topic permission for it: a routing key its write pattern does not
match is refused with 403, as RabbitMQ's topic authorisation does), builds one
:class:`~kiltmq.broker.message.Message`, routes it and hands it to each queue (or, in a
transaction, buffers it until tx.commit). In confirm mode each publish gets a sequence
number, acked once every queue took the message (and the store has it, for a persistent
message in a durable queue); confirms are collected and sent at flush time, coalesced
into one ``multiple`` basic.ack where possible (see
:meth:`~kiltmq.broker.channel.state.ChannelState.flush_confirms`).
"""

from __future__ import annotations

import logging
import re
import struct

from kiltmq.broker.channel.reply_to import DirectReplyTo
from kiltmq.broker.declaration import MAX_EXPIRY
from kiltmq.broker.message import FLAG_EXPIRATION, FLAG_REPLY_TO, FLAG_USER_ID, Message
from kiltmq.broker.reply_target import REPLY_PREFIX, REPLY_TO, Target
from kiltmq.protocol import spec
from kiltmq.protocol.codec import encode_shortstr
from kiltmq.protocol.errors import (
    AccessRefused,
    AMQPNotImplemented,
    InternalError,
    PreconditionFailed,
)

__all__ = ["Publishing"]

log = logging.getLogger("kiltmq.broker")

_INTEGER_PREFIX = re.compile(r"[+-]?[0-9]+")


class Publishing(DirectReplyTo):
    """basic.publish, mandatory returns and confirm mode."""

    __slots__ = ()

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
            self._pub_topic = self._topic_permission(exchange)
            self._tails = {}
        if m.immediate:
            raise AMQPNotImplemented("NOT_IMPLEMENTED - immediate=true", 60, 40)
        routing_key = m.routing_key
        topic = self._pub_topic
        if topic is not None and not topic.allows("write", routing_key):
            raise self._topic_refused(name, routing_key)
        tail = self._tails.get(routing_key)
        if tail is None:
            if len(self._tails) > 256:
                self._tails = {}
            tail = self._tails[routing_key] = encode_shortstr(name) + encode_shortstr(routing_key)
        message = Message(name, routing_key, raw_properties, body, tail)
        try:
            message.check()
            if message.flags & FLAG_REPLY_TO and message.shortstr(FLAG_REPLY_TO) == REPLY_TO:
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
        self.published += 1
        exchange.publish_in += 1
        if not queues:
            exchange.unrouted += 1
        if self.session.blocked_by_alarm:
            self.session.publishing_while_blocked()
        if self.tx is not None:
            self.tx.publishes.append((queues, message, m.mandatory))
            self.tx.size += message.size
            return
        self._enqueue(queues, message, m.mandatory)

    @staticmethod
    def _check_expiration(message: Message) -> None:
        """RabbitMQ refuses a publish whose expiration is not a non-negative integer."""
        text = message.shortstr(FLAG_EXPIRATION) or ""
        number = _INTEGER_PREFIX.match(text)
        if number is None:
            reason = "no_integer"
        elif number.end() < len(text):
            reason = f'{{leftover_string,"{text[number.end():]}"}}'
        elif int(text) < 0:
            reason = f"{{value_negative,{int(text)}}}"
        elif int(text) > MAX_EXPIRY:
            reason = f"{{value_too_large,{int(text)}}}"
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
            else:
                self.dropped += 1
            return
        self.publish_seq = seq = self.publish_seq + 1
        if not queues:
            if mandatory:
                self._return(message)
            else:
                self.dropped += 1
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
        if (
            store.defers_confirms
            and message.persistent
            and (queues[0].durable if len(queues) == 1 else any(q.durable for q in queues))
        ):
            self._unconfirmed.add(seq)
            store.confirm_after_commit(self, seq)
        else:
            self._confirmed(seq)

    def _return(self, message: Message) -> None:
        self.returned += 1
        method = spec.BasicReturn(312, "NO_ROUTE", message.exchange, message.routing_key)
        self.out.send_raw(self._content(method.encode(), message))

    # -- confirms -------------------------------------------------------------------------

    def confirm_select(self, m: spec.ConfirmSelect) -> None:
        if self.tx is not None:
            raise PreconditionFailed("PRECONDITION_FAILED - cannot switch from tx to confirm mode")
        if not self.confirm:
            self.confirm = True
            self._unconfirmed = set()
        if not m.nowait:
            self.send(spec.ConfirmSelectOk())

    def _confirmed(self, seq: int) -> None:
        if not self._acks and not self._nacks:
            self.session.confirms_pending(self.flush_confirms)
        self._acks.append(seq)

    def _nacked(self, seq: int) -> None:
        if not self._acks and not self._nacks:
            self.session.confirms_pending(self.flush_confirms)
        self._nacks.append(seq)

    def commit_confirmed(self, seqs: list[int]) -> None:
        """The store committed the publishes numbered ``seqs``: basic.ack."""
        self._store_settled(seqs, self._acks)

    def commit_nacked(self, seqs: list[int]) -> None:
        """The store could not make these messages durable (it cannot write): basic.nack."""
        self._store_settled(seqs, self._nacks)

    def _store_settled(self, seqs: list[int], settled: list[int]) -> None:
        """Queue the store's verdict on ``seqs`` (``settled``: the acks or the nacks)."""
        if self.closed:
            return
        self._unconfirmed.difference_update(seqs)
        if not self._acks and not self._nacks:
            self.session.confirms_pending(self.flush_confirms)
        settled += seqs
        self.out.want_flush()
