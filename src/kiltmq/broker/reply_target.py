"""Where a routed message goes: a queue, or a channel's direct reply-to consumer
(:class:`ReplyTarget`), which routing treats like a queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kiltmq.broker.queue import Queue

if TYPE_CHECKING:
    from kiltmq.broker.message import Message

__all__ = ["REPLY_PREFIX", "REPLY_TO", "ReplyChannel", "ReplyTarget", "Target"]

#: Direct reply-to: the pseudo-queue a requester consumes its replies from, and the
#: prefix of the routing keys replies are published with.
REPLY_TO = "amq.rabbitmq.reply-to"
REPLY_PREFIX = "amq.rabbitmq.reply-to."


class ReplyChannel(Protocol):
    """What a reply target needs from the channel whose reply consumer it feeds."""

    @property
    def closed(self) -> bool: ...

    @property
    def reply_tag(self) -> str | None: ...

    def deliver_reply(self, message: Message) -> None: ...


class ReplyTarget:
    """Where replies for one channel's direct reply-to consumer go. Routing treats it
    like a queue: :meth:`publish` delivers straight to the consumer, bypassing queues
    (as RabbitMQ does)."""

    __slots__ = ("channel",)
    durable = False

    def __init__(self, channel: ReplyChannel) -> None:
        self.channel = channel

    @property
    def deleted(self) -> bool:
        return self.channel.closed or self.channel.reply_tag is None

    def publish(self, message: Message) -> bool:
        if not self.deleted:
            self.channel.deliver_reply(message)
        return True


Target = Queue | ReplyTarget
