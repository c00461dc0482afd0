"""Messages and consumers.

A :class:`Message` is what :meth:`Channel.basic_get` returns and what a consumer yields:
body, properties (decoded on first use), routing information and the delivery tag, with
``ack()``, ``nack()`` and ``reject()``. Those send their frame at once (acks have no
reply in AMQP), so ``await message.ack()`` never waits on the broker; they may be called
without ``await`` and from any thread.

A :class:`Consumer` is one basic.consume subscription. It is an async iterator::

    async with ch.consume("jobs") as consumer:
        async for message in consumer:
            ...
            await message.ack()

or, without the ``async with``, ``async for message in ch.consume("jobs")``: the
subscription starts with the iteration, but leaving the loop (``break``, an exception)
does not end it; ``await consumer.cancel()`` or closing the channel does. Iteration
ends cleanly (``StopAsyncIteration``) when the consumer is
cancelled, by :meth:`Consumer.cancel` or by the broker's basic.cancel notification (the
queue was deleted), or when the application closes the channel or connection. It raises
:class:`~kiltmq.client.errors.ChannelClosed` or the channel error when the channel is
closed by an error, and :class:`~kiltmq.client.errors.ConnectionLost` when the
connection is lost for good.

Connection recovery: messages delivered but not yet taken from the consumer when the
connection drops are discarded if they need an acknowledgement (the broker requeues them
and delivers them again after recovery); iteration then continues with the deliveries
on the recovered connection. Acknowledging a message that came before the drop does
nothing: its delivery tag belonged to the old connection.

The broker's basic.cancel (queue deleted, failover) is handled by the consumer's
``on_cancel`` policy: ``"stop"`` (the default) ends the iteration; ``"resubscribe"``
declares the queue again (with its recorded arguments and bindings, if the queue was
declared on this connection) and consumes from it again, so iteration goes on; if the
queue was not declared on this connection the iteration ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Literal

from kiltmq.client.errors import ChannelClosed, ConnectionClosed
from kiltmq.protocol.codec import FieldTable
from kiltmq.protocol.spec import BasicProperties

if TYPE_CHECKING:
    from types import TracebackType

    from kiltmq.client.channel import Channel

__all__ = ["Consumer", "Message", "MessageCallback", "OnCancel"]

#: A consumer callback: an ``async def`` function (run in the event loop) or a plain
#: function (run in a worker thread, so a slow handler cannot stall heartbeats).
MessageCallback = Callable[["Message"], Awaitable[Any]] | Callable[["Message"], Any]
OnCancel = Literal["stop", "resubscribe"]


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
        channel: Channel | None = None,
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
    def channel(self) -> Channel | None:
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


class ConsumerState(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    ACTIVE = "active"
    ENDED = "ended"


class Consumer:
    """One subscription (basic.consume) on a channel; see the module docstring.

    Made by :meth:`Channel.consume` (iterator form) or :meth:`Channel.basic_consume`
    (callback form).
    """

    def __init__(
        self,
        channel: Channel,
        queue: str,
        *,
        consumer_tag: str,
        no_ack: bool = False,
        exclusive: bool = False,
        no_local: bool = False,
        arguments: FieldTable | None = None,
        callback: MessageCallback | None = None,
        on_cancel: OnCancel = "stop",
        run_sync_in_thread: bool = True,
    ) -> None:
        if on_cancel not in ("stop", "resubscribe"):
            raise ValueError("on_cancel must be 'stop' or 'resubscribe'")
        self.channel = channel
        #: The queue as the application named it (see :attr:`current_queue`).
        self.queue = queue
        self.consumer_tag = consumer_tag
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.no_local = no_local
        self.arguments = dict(arguments) if arguments else None
        self.on_cancel: OnCancel = on_cancel
        self.state = ConsumerState.NEW
        #: Why iteration ended with an error (None: it ended cleanly or goes on).
        self.error: BaseException | None = None
        #: Times the consumer subscribed again after the broker cancelled it.
        self.resubscriptions = 0
        self._loop = channel.connection.loop
        self._buffer: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._callback = callback
        self._callback_is_async = asyncio.iscoroutinefunction(callback)
        self._run_sync_in_thread = run_sync_in_thread
        self._worker: asyncio.Task[None] | None = None
        #: Set for the blocking facade: receives every message instead of the buffer.
        self._sink: Callable[[Message | None], None] | None = None

    # -- starting and stopping --

    @property
    def current_queue(self) -> str:
        """The queue's current name (differs from :attr:`queue` after a server-named queue
        was declared again by connection recovery)."""
        return self.channel.connection.current_name(self.queue)

    @property
    def active(self) -> bool:
        """Subscribed now (basic.consume-ok received, not cancelled)."""
        return self.state is ConsumerState.ACTIVE

    async def start(self, timeout: float | None = None) -> Consumer:
        """Send basic.consume (once); return self."""
        if self.state is ConsumerState.NEW:
            self.state = ConsumerState.STARTING
            try:
                await self.channel._start_consumer(self, timeout)
            except BaseException:
                self.state = ConsumerState.ENDED
                raise
            if self.state is ConsumerState.STARTING:
                self.state = ConsumerState.ACTIVE
                if self._callback is not None:
                    self._worker = self._loop.create_task(self._dispatch())
        return self

    async def cancel(self, timeout: float | None = None) -> None:
        """basic.cancel: stop the subscription. Messages already received stay
        available to the iterator (if they were delivered with no_ack, or can still be
        acked on this channel); then iteration ends."""
        if self.state in (ConsumerState.ACTIVE, ConsumerState.STARTING):
            await self.channel.basic_cancel(self.consumer_tag, timeout=timeout)
        elif self.state is ConsumerState.NEW:
            self._end(None)

    async def __aenter__(self) -> Consumer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.state is ConsumerState.ACTIVE and self.channel.is_open:
            with contextlib.suppress(ChannelClosed, ConnectionClosed, TimeoutError):
                await self.cancel()

    def __await__(self) -> Generator[Any, None, Consumer]:
        return self.start().__await__()

    # -- iteration --

    def __aiter__(self) -> AsyncIterator[Message]:
        if self._callback is not None:
            raise TypeError("a consumer with a callback cannot be iterated")
        return self

    async def __anext__(self) -> Message:
        buffer = self._buffer
        if buffer:
            return buffer.popleft()
        if self.state is ConsumerState.NEW:
            await self.start()
        while True:
            if buffer:
                return buffer.popleft()
            if self.state is ConsumerState.ENDED:
                if self.error is not None:
                    raise self.error
                raise StopAsyncIteration
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- called by the channel (in the event loop) --

    def _deliver(self, message: Message) -> None:
        sink = self._sink
        if sink is not None:
            sink(message)
            return
        self._buffer.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self, error: BaseException | None) -> None:
        """The subscription is over: cancelled (error None) or failed."""
        if self.state is ConsumerState.ENDED:
            return
        self.state = ConsumerState.ENDED
        self.error = error
        if error is not None and not self.no_ack:
            # unacked messages can no longer be acknowledged: the broker requeues them
            self._buffer.clear()
        if self._sink is not None:
            self._sink(None)
        self._wake()

    def _connection_lost(self) -> None:
        """The connection dropped and will be recovered: forget deliveries that the
        broker will send again."""
        if not self.no_ack:
            self._buffer.clear()

    # -- callback form --

    async def _dispatch(self) -> None:
        """Feed the callback one message at a time, in order."""
        callback = self._callback
        assert callback is not None
        loop = self._loop
        log = self.channel.connection.logger
        while True:
            try:
                message = await self.__anext__()
            except StopAsyncIteration:
                return
            except BaseException:
                return
            try:
                if self._callback_is_async:
                    await callback(message)
                elif self._run_sync_in_thread:
                    await loop.run_in_executor(None, callback, message)
                else:
                    callback(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("consumer %s callback failed on %r", self.consumer_tag, message)
                if not message._settled:
                    with contextlib.suppress(Exception):  # channel gone: nothing to settle
                        message.nack(requeue=False)

    def __repr__(self) -> str:
        return (
            f"<Consumer {self.consumer_tag!r} queue={self.queue!r} state={self.state.value} "
            f"channel={self.channel.number}>"
        )
