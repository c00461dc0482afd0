"""Messages received from the broker.

A :class:`Message` is what :meth:`Channel.basic_get` returns, what a consumer yields and
what a basic.return carries: body, properties (decoded on first use), routing
information and the delivery tag, with ``ack()``, ``nack()`` and ``reject()``. Those send
their frame at once (acks have no reply in AMQP), so ``await message.ack()`` never waits
on the broker; they may be called without ``await`` and from any thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from typing import Any, Protocol

from kiltmq.client.errors import ChannelClosed
from kiltmq.protocol.codec import FieldTable
from kiltmq.protocol.spec import BasicProperties

__all__ = ["ACK", "NACK", "REJECT", "Message", "MessageChannel"]


class MessageChannel(Protocol):
    """What a message needs of the channel it came on."""

    number: int
    #: bumped on every connection recovery: older delivery tags are void
    _epoch: int

    def _settle(self, message: Message, kind: int, multiple: bool, requeue: bool) -> None: ...


class _Done:
    """An awaitable that is already complete: what ack/nack/reject return."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover - makes this a generator


_DONE = _Done()

# settle kinds
ACK = 0
NACK = 1
REJECT = 2


class Message:
    """A message received from the broker (basic.deliver, basic.get-ok or basic.return)."""

    __slots__ = (
        "_channel",
        "_epoch",
        "_properties",
        "_raw_properties",
        "_settled",
        "body",
        "consumer_tag",
        "delivery_tag",
        "exchange",
        "message_count",
        "no_ack",
        "redelivered",
        "reply_code",
        "reply_text",
        "routing_key",
    )

    body: bytes
    exchange: str
    routing_key: str
    #: Delivery tag on the channel (0 for returned messages).
    delivery_tag: int
    redelivered: bool
    #: The consumer it was delivered to ("" for basic.get and returns).
    consumer_tag: str
    #: basic.get only: messages left in the queue.
    message_count: int | None
    #: basic.return only: why the message came back.
    reply_code: int | None
    reply_text: str | None
    #: True when the broker counts the message as acknowledged already.
    no_ack: bool

    def __init__(
        self,
        body: bytes,
        raw_properties: bytes | BasicProperties = b"\x00\x00",
        *,
        exchange: str = "",
        routing_key: str = "",
        delivery_tag: int = 0,
        redelivered: bool = False,
        consumer_tag: str = "",
        channel: MessageChannel | None = None,
        epoch: int = 0,
        no_ack: bool = True,
    ) -> None:
        self.body = body
        if isinstance(raw_properties, BasicProperties):
            self._properties: BasicProperties | None = raw_properties
            self._raw_properties = b""
        else:
            self._properties = None
            self._raw_properties = raw_properties
        self.exchange = exchange
        self.routing_key = routing_key
        self.delivery_tag = delivery_tag
        self.redelivered = redelivered
        self.consumer_tag = consumer_tag
        self._channel = channel
        self._epoch = epoch
        self.no_ack = no_ack
        self._settled = no_ack
        self.message_count = None
        self.reply_code = None
        self.reply_text = None

    @property
    def properties(self) -> BasicProperties:
        """The content-header properties (decoded on first access)."""
        props = self._properties
        if props is None:
            props = self._properties = BasicProperties.decode(self._raw_properties)
        return props

    @property
    def headers(self) -> FieldTable:
        """``properties.headers``, or an empty dict."""
        return self.properties.headers or {}

    @property
    def channel(self) -> MessageChannel | None:
        """The channel the message came on."""
        return self._channel

    @property
    def settled(self) -> bool:
        """True once acked, nacked or rejected through this object (or if no_ack)."""
        return self._settled

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text."""
        return self.body.decode(encoding)

    def _settle(self, kind: int, multiple: bool, requeue: bool) -> _Done:
        channel = self._channel
        if channel is None:
            raise ChannelClosed("this message was not delivered on a channel: nothing to settle")
        if self.no_ack:
            raise ValueError("the message was delivered with no_ack=True: nothing to settle")
        if self._settled and not multiple:
            return _DONE  # settling twice is a no-op, not a channel error
        channel._settle(self, kind, multiple, requeue)
        self._settled = True
        return _DONE

    def ack(self, multiple: bool = False) -> Awaitable[None]:
        """basic.ack: the message (and with ``multiple`` every earlier unacked one on the
        channel) is done. Returns at once; awaiting the result is optional."""
        return self._settle(ACK, multiple, False)

    def nack(self, requeue: bool = True, multiple: bool = False) -> Awaitable[None]:
        """basic.nack: give the message back (``requeue``) or drop / dead-letter it."""
        return self._settle(NACK, multiple, requeue)

    def reject(self, requeue: bool = False) -> Awaitable[None]:
        """basic.reject: refuse the message; requeue it or drop / dead-letter it."""
        return self._settle(REJECT, False, requeue)

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 40 else self.body[:40] + b"..."
        return (
            f"<Message exchange={self.exchange!r} routing_key={self.routing_key!r} "
            f"delivery_tag={self.delivery_tag} body={body!r}>"
        )
