"""Consumers: one basic.consume subscription each.

A :class:`Consumer` is an async iterator of :class:`~kiltmq.client.message.Message`::

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
from typing import TYPE_CHECKING, Any, Literal, Protocol

from kiltmq.client.errors import ChannelClosed, ConnectionClosed
from kiltmq.client.message import ACK, NACK, REJECT, Message
from kiltmq.protocol.codec import FieldTable

if TYPE_CHECKING:
    import logging
    from types import TracebackType

__all__ = [
    "ACK",
    "NACK",
    "REJECT",
    "Consumer",
    "ConsumerChannel",
    "ConsumerState",
    "Message",
    "MessageCallback",
    "OnCancel",
]

#: A consumer callback: an ``async def`` function (run in the event loop) or a plain
#: function (run in a worker thread, so a slow handler cannot stall heartbeats).
MessageCallback = Callable[["Message"], Awaitable[Any]] | Callable[["Message"], Any]
OnCancel = Literal["stop", "resubscribe"]


class ConsumerConnection(Protocol):
    """What a consumer needs of its channel's connection."""

    logger: logging.Logger

    def current_name(self, queue: str) -> str: ...


class ConsumerChannel(Protocol):
    """What a consumer needs of its channel."""

    number: int
    loop: asyncio.AbstractEventLoop

    @property
    def connection(self) -> ConsumerConnection: ...

    @property
    def is_open(self) -> bool: ...

    async def _start_consumer(self, consumer: Consumer, timeout: float | None) -> None: ...

    async def basic_cancel(self, consumer_tag: str, *, timeout: float | None = None) -> None: ...


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
        channel: ConsumerChannel,
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
        self._loop = channel.loop
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
