"""Direct reply-to (RabbitMQ's ``amq.rabbitmq.reply-to``): a requester consumes from the
pseudo-queue without acknowledging, its requests go out with a routing key that reaches
that consumer in their reply-to property, and replies published to that key are
delivered to it straight away, bypassing queues."""

from __future__ import annotations

from kiltmq.broker.channel.state import DELIVER_IDS, ChannelState, pack_QB
from kiltmq.broker.message import Message
from kiltmq.broker.reply_target import REPLY_PREFIX, REPLY_TO, ReplyTarget
from kiltmq.broker.vhost import generate_name
from kiltmq.protocol import spec
from kiltmq.protocol.codec import encode_shortstr
from kiltmq.protocol.errors import PreconditionFailed

__all__ = ["DirectReplyTo"]


class DirectReplyTo(ChannelState):
    """A channel's direct reply-to consumer and the requests that name it."""

    __slots__ = ()

    def _declare_reply_queue(self, m: spec.QueueDeclare) -> None:
        """Passive declare of the direct reply-to pseudo-queue, or of a reply key."""
        if m.queue != REPLY_TO and m.queue not in self.vhost.reply_targets:
            raise self.vhost.not_found("queue", m.queue)
        if not m.no_wait:
            self.send(spec.QueueDeclareOk(m.queue, 0, 1))  # RabbitMQ says 1 consumer

    def _consume_replies(self, m: spec.BasicConsume) -> None:
        if not m.no_ack:
            raise PreconditionFailed("PRECONDITION_FAILED - reply consumer cannot acknowledge")
        if self.reply_tag is not None:
            raise PreconditionFailed("PRECONDITION_FAILED - reply consumer already set")
        tag = self._consumer_tag(m.consumer_tag)
        self.reply_tag = tag
        self.reply_prefix = DELIVER_IDS + encode_shortstr(tag)
        self.reply_key = generate_name(REPLY_PREFIX)
        self.vhost.reply_targets[self.reply_key] = ReplyTarget(self)
        if not m.no_wait:
            self.send(spec.BasicConsumeOk(tag))

    def _stop_replies(self) -> None:
        if self.reply_tag is not None:
            self.reply_tag = None
            self.vhost.reply_targets.pop(self.reply_key, None)

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

    def deliver_reply(self, message: Message) -> None:
        """A direct reply-to reply: straight to this channel's reply consumer (no-ack)."""
        self.delivery_tag = tag = self.delivery_tag + 1
        self.out.send_delivery(
            self._content(self.reply_prefix + pack_QB(tag, False) + message.deliver_tail, message)
        )
