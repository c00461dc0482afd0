"""Channels: every AMQP 0-9-1 method of the spec, named as in the spec.

``ch = await conn.channel()`` gives a :class:`Channel`. Synchronous methods
(``queue_declare``, ``basic_qos``, ...) send the method and wait for the reply, at most
``timeout`` seconds (default: the connection's ``rpc_timeout``); the broker answers them
in order, one at a time per channel.

Errors: when the broker closes the channel (channel.close, a soft error such as 404
NOT_FOUND or 406 PRECONDITION_FAILED), the call that was waiting raises the matching
:mod:`kiltmq.protocol.errors` class (``NotFound``, ...), as do other calls and publishes
pending on the channel; the channel is then closed and any further use raises
:class:`~kiltmq.client.errors.ChannelClosed` (whose ``reason`` is that error). Other
channels and the connection go on.

Publishing: :meth:`Channel.basic_publish` queues the message frames at once. On a
channel in confirm mode (:meth:`Channel.confirm_select`) it then waits for the broker's
basic.ack and raises :class:`~kiltmq.client.errors.PublishNacked` on basic.nack, or
:class:`~kiltmq.client.errors.Unroutable` when a ``mandatory`` message came back with
basic.return. :meth:`Channel.publish_nowait` returns that outcome as a future instead,
so any number of publishes can be in flight (``asyncio.gather`` of ``basic_publish``
calls works too). Returned messages are also passed to every callback in
:attr:`Channel.on_return`; with neither confirms nor callbacks they are logged.

Threading: a channel belongs to its connection's event loop; only
:meth:`Message.ack`-style settlement may be called from other threads. The synchronous
facade :mod:`kiltmq.client.blocking` makes the rest thread-safe.
"""

from __future__ import annotations

import asyncio
import enum
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kiltmq.client.consumer import (
    ACK,
    NACK,
    Consumer,
    ConsumerState,
    Message,
    MessageCallback,
    OnCancel,
)
from kiltmq.client.errors import (
    ChannelClosed,
    ClientError,
    ConnectionClosed,
    ConnectionLost,
    PublishNacked,
    Unroutable,
)
from kiltmq.protocol import spec
from kiltmq.protocol.codec import FieldTable
from kiltmq.protocol.connection import ContentReceived
from kiltmq.protocol.errors import AMQPError, error_for
from kiltmq.protocol.frames import content_frames
from kiltmq.protocol.spec import BasicProperties, Method

if TYPE_CHECKING:
    from kiltmq.client.connection import Connection

__all__ = ["Channel", "ChannelState", "QueueDeclareOk"]

M = TypeVar("M", bound=Method)

# basic.ack / basic.nack / basic.reject frames packed in one go: frame type, channel,
# size, class id, method id, delivery tag, flag bits, frame end.
_SETTLE = struct.Struct(">BHIHHQBB")
_HEADER = struct.Struct(">HHQ")
_NO_PROPERTIES = b"\x00\x00"


class ChannelState(enum.Enum):
    OPENING = "opening"
    OPEN = "open"
    #: the connection dropped; waiting for it to be recovered
    RECOVERING = "recovering"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class QueueDeclareOk:
    """The result of :meth:`Channel.queue_declare`."""

    queue: str
    message_count: int
    consumer_count: int


class Channel:
    """An AMQP channel. Made by :meth:`Connection.channel`; see the module docstring."""

    def __init__(self, connection: Connection, number: int) -> None:
        self.connection = connection
        self.number = number
        self.loop = connection.loop
        self.state = ChannelState.OPENING
        #: Why the channel closed (None while open, or when the application closed it).
        self.close_reason: BaseException | None = None
        #: Callbacks for messages returned by the broker (mandatory publishes).
        self.on_return: list[Callable[[Message], Any]] = []
        self._rpc_lock = asyncio.Lock()
        self._waiters: deque[tuple[tuple[type[Method], ...], asyncio.Future[Any]]] = deque()
        self._consumers: dict[str, Consumer] = {}
        #: incremented on every recovery: messages of an older epoch are stale
        self._epoch = 0
        self._confirm = False
        self._tx = False
        self._next_seq = 1
        self._unconfirmed: dict[int, asyncio.Future[None]] = {}
        self._unconfirmed_order: deque[int] = deque()
        self._mandatory: deque[tuple[int, str, str, bytes]] = deque()
        self._returned: dict[int, Unroutable] = {}
        self._qos: dict[bool, tuple[int, int]] = {}
        self._flow_active = True
        self._flow_event = asyncio.Event()
        self._flow_event.set()
        self._publish_cache: dict[tuple[str, str, bool, bool], bytes] = {}
        self._publish_waiting = 0
        self._done: asyncio.Future[None] | None = None

    # -- state --

    @property
    def is_open(self) -> bool:
        """Open and usable now (False while it waits for a connection recovery)."""
        return self.state is ChannelState.OPEN

    @property
    def is_closed(self) -> bool:
        """Closed for good; ``close_reason`` says why."""
        return self.state is ChannelState.CLOSED

    @property
    def confirm_mode(self) -> bool:
        """Whether :meth:`confirm_select` put the channel in publisher-confirm mode."""
        return self._confirm

    @property
    def unconfirmed_count(self) -> int:
        """Publishes waiting for the broker's confirmation."""
        return len(self._unconfirmed)

    def __repr__(self) -> str:
        return f"<Channel {self.number} {self.state.value}>"

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _closed_error(self) -> ChannelClosed:
        reason = self.close_reason
        if reason is None and self.connection.is_closed:
            reason = self.connection.close_reason
        text = f"channel {self.number} is closed"
        if reason is not None:
            text += f": {reason}"
        return ChannelClosed(text, reason)

    async def _ready(self) -> None:
        """Wait while the connection is being recovered; raise if closed."""
        while self.state is not ChannelState.OPEN:
            if self.state is ChannelState.RECOVERING:
                await self.connection._wait_recovered()
            elif self.state is ChannelState.OPENING:
                await asyncio.sleep(0)
            else:
                raise self._closed_error()

    def _check_usable(self) -> None:
        if self.state is ChannelState.CLOSED or self.state is ChannelState.CLOSING:
            raise self._closed_error()

    # -- RPC --

    async def _rpc(
        self,
        method: Method | Callable[[], Method],
        responses: tuple[type[M], ...],
        timeout: float | None = None,
        *,
        recovering: bool = False,
    ) -> M:
        """Send a synchronous method and wait for its reply.

        ``method`` may be a function making the method, called once the channel is open:
        queue names are translated then, after any connection recovery.
        """
        if timeout is None:
            timeout = self.connection.rpc_timeout
        if not recovering:
            self._check_usable()
        try:
            async with asyncio.timeout(timeout):
                if recovering:
                    return await self._send_rpc(method, responses)
                while True:
                    await self._ready()
                    async with self._rpc_lock:
                        if self.state is ChannelState.RECOVERING:
                            continue
                        if self.state is not ChannelState.OPEN:
                            raise self._closed_error()
                        return await self._send_rpc(method, responses)
        except TimeoutError:
            name = responses[0].NAME.replace("-ok", "").replace("-empty", "")
            raise TimeoutError(
                f"{name} on channel {self.number}: no reply within {timeout} s"
            ) from None

    def _send_rpc(
        self, method: Method | Callable[[], Method], responses: tuple[type[M], ...]
    ) -> asyncio.Future[M]:
        if not isinstance(method, Method):
            method = method()
        future: asyncio.Future[M] = self.loop.create_future()
        self._waiters.append((responses, future))
        self.connection._send_method(self.number, method)
        return future

    # -- incoming --

    def _on_method(self, method: Method) -> None:
        kind = type(method)
        if kind is spec.BasicAck:
            assert isinstance(method, spec.BasicAck)
            self._on_confirm(method.delivery_tag, method.multiple, False)
        elif kind is spec.BasicNack:
            assert isinstance(method, spec.BasicNack)
            self._on_confirm(method.delivery_tag, method.multiple, True)
        elif kind is spec.BasicCancel:
            assert isinstance(method, spec.BasicCancel)
            self._on_server_cancel(method.consumer_tag)
        elif kind is spec.ChannelClose:
            assert isinstance(method, spec.ChannelClose)
            self._on_server_close(method)
        elif kind is spec.ChannelFlow:
            assert isinstance(method, spec.ChannelFlow)
            self._flow_active = method.active
            if method.active:
                self._flow_event.set()
            else:
                self._flow_event.clear()
            self.connection._send_method(self.number, spec.ChannelFlowOk(method.active))
        else:
            self._on_reply(method)

    def _on_reply(self, reply: Any) -> None:
        if not self._waiters:
            self.connection.logger.warning(
                "channel %d: unexpected %s", self.number, getattr(reply, "NAME", reply)
            )
            return
        responses, future = self._waiters.popleft()
        if future.done():
            return  # the caller gave up waiting (timeout or cancellation)
        method = reply.method if isinstance(reply, ContentReceived) else reply
        if isinstance(method, responses):
            future.set_result(reply)
        else:
            future.set_exception(
                ClientError(
                    f"channel {self.number}: got {method.NAME}, expected "
                    + " or ".join(r.NAME for r in responses)
                )
            )

    def _on_content(self, event: ContentReceived) -> None:
        method = event.method
        kind = type(method)
        if kind is spec.BasicDeliver:
            assert isinstance(method, spec.BasicDeliver)
            consumer = self._consumers.get(method.consumer_tag)
            if consumer is None:
                self.connection.logger.warning(
                    "channel %d: delivery for unknown consumer %r",
                    self.number,
                    method.consumer_tag,
                )
                return
            consumer._deliver(
                Message(
                    event.body,
                    event.raw_properties,
                    exchange=method.exchange,
                    routing_key=method.routing_key,
                    delivery_tag=method.delivery_tag,
                    redelivered=method.redelivered,
                    consumer_tag=method.consumer_tag,
                    channel=self,
                    epoch=self._epoch,
                    no_ack=consumer.no_ack,
                )
            )
        elif kind is spec.BasicReturn:
            assert isinstance(method, spec.BasicReturn)
            self._on_return(event, method)
        else:  # basic.get-ok
            self._on_reply(event)

    def _on_return(self, event: ContentReceived, method: spec.BasicReturn) -> None:
        message = Message(
            event.body,
            event.raw_properties,
            exchange=method.exchange,
            routing_key=method.routing_key,
        )
        message.reply_code = method.reply_code
        message.reply_text = method.reply_text
        if self._confirm:
            # Returns come in publish order, before the basic.ack of the same message:
            # the returned message is the oldest unconfirmed mandatory one that matches.
            mandatory = self._mandatory
            while mandatory:
                seq, exchange, routing_key, body = mandatory.popleft()
                if (
                    exchange == method.exchange
                    and routing_key == method.routing_key
                    and body == event.body
                ):
                    self._returned[seq] = Unroutable(message, method.reply_code, method.reply_text)
                    break
        for callback in list(self.on_return):
            try:
                callback(message)
            except Exception:
                self.connection.logger.exception("on_return callback failed")
        if not self.on_return and not self._confirm:
            self.connection.logger.warning(
                "message returned (%d %s), exchange %r routing key %r; set Channel.on_return "
                "or use confirm mode to handle returns",
                method.reply_code,
                method.reply_text,
                method.exchange,
                method.routing_key,
            )

    def _on_confirm(self, tag: int, multiple: bool, nack: bool) -> None:
        unconfirmed = self._unconfirmed
        order = self._unconfirmed_order
        if multiple:
            while order and order[0] <= tag:
                seq = order.popleft()
                future = unconfirmed.pop(seq, None)
                if future is not None:
                    self._settle_publish(seq, future, nack)
        else:
            future = unconfirmed.pop(tag, None)
            if future is not None:
                self._settle_publish(tag, future, nack)
            while order and order[0] not in unconfirmed:
                order.popleft()
        mandatory = self._mandatory
        while mandatory and mandatory[0][0] not in unconfirmed:
            mandatory.popleft()

    def _settle_publish(self, seq: int, future: asyncio.Future[None], nack: bool) -> None:
        returned = self._returned.pop(seq, None) if self._returned else None
        if future.done():
            return
        if returned is not None:
            future.set_exception(returned)
        elif nack:
            future.set_exception(PublishNacked(seq))
        else:
            future.set_result(None)

    def _on_server_cancel(self, tag: str) -> None:
        consumer = self._consumers.get(tag)
        if consumer is None:
            return
        if consumer.on_cancel == "resubscribe" and self.connection._can_redeclare(consumer.queue):
            self.loop.create_task(self._resubscribe(consumer))
            return
        del self._consumers[tag]
        self.connection._forget_consumer(consumer)
        consumer._end(None)

    async def _resubscribe(self, consumer: Consumer) -> None:
        try:
            await self.connection._redeclare_queue(self, consumer.queue)
            await self._rpc(lambda: self._consume_method(consumer), (spec.BasicConsumeOk,))
            consumer.resubscriptions += 1
        except (AMQPError, ClientError, TimeoutError) as exc:
            self.connection.logger.warning(
                "consumer %s could not resubscribe to %r: %s", consumer.consumer_tag,
                consumer.queue, exc,
            )
            if self._consumers.pop(consumer.consumer_tag, None) is not None:
                self.connection._forget_consumer(consumer)
                consumer._end(exc if self.state is ChannelState.CLOSED else None)

    def _on_server_close(self, method: spec.ChannelClose) -> None:
        error = error_for(
            method.reply_code, method.reply_text, method.class_id, method.method_id,
            scope="channel",
        )
        self.connection._send_method(self.number, spec.ChannelCloseOk())
        self._closed(error)

    # -- closing and recovery (called by the connection) --

    def _closed(self, reason: BaseException | None) -> None:
        """The channel is gone for good. ``reason`` None: the application closed it."""
        if self.state is ChannelState.CLOSED:
            return
        self.state = ChannelState.CLOSED
        self.close_reason = reason
        error: BaseException = reason if reason is not None else self._closed_error()
        self._fail_pending(error)
        consumers = list(self._consumers.values())
        self._consumers.clear()
        for consumer in consumers:
            self.connection._forget_consumer(consumer)
            if reason is None or (
                isinstance(reason, ConnectionClosed) and not isinstance(reason, ConnectionLost)
            ):
                consumer._end(None)  # the application closed the channel or connection
            elif isinstance(reason, ConnectionClosed) or (
                isinstance(reason, AMQPError) and reason.hard
            ):
                consumer._end(reason)
            else:
                consumer._end(ChannelClosed(f"channel {self.number} closed: {reason}", reason))
        self._flow_event.set()
        self.connection._channel_closed(self)

    def _fail_pending(self, error: BaseException) -> None:
        waiters = self._waiters
        self._waiters = deque()
        for _, future in waiters:
            if not future.done():
                future.set_exception(error)
        unconfirmed = self._unconfirmed
        self._unconfirmed = {}
        self._unconfirmed_order.clear()
        self._mandatory.clear()
        self._returned.clear()
        for future in unconfirmed.values():
            if not future.done():
                future.set_exception(error)

    def _suspend(self, error: BaseException) -> None:
        """The connection dropped and will be recovered."""
        if self.state is ChannelState.CLOSED:
            return
        if self.state is ChannelState.CLOSING:
            self._closed(None)
            return
        self.state = ChannelState.RECOVERING
        self._epoch += 1
        self._fail_pending(error)
        self._next_seq = 1
        for consumer in self._consumers.values():
            consumer._connection_lost()

    async def _reopen(self) -> None:
        """Open the channel again on the recovered connection, with its settings."""
        await self._rpc(spec.ChannelOpen(), (spec.ChannelOpenOk,), recovering=True)
        self._flow_active = True
        self._flow_event.set()
        for global_, (size, count) in self._qos.items():
            await self._rpc(
                spec.BasicQos(size, count, global_), (spec.BasicQosOk,), recovering=True
            )
        if self._confirm:
            await self._rpc(spec.ConfirmSelect(), (spec.ConfirmSelectOk,), recovering=True)
            self._next_seq = 1
        if self._tx:
            await self._rpc(spec.TxSelect(), (spec.TxSelectOk,), recovering=True)

    async def _recover_consumers(self) -> None:
        for consumer in list(self._consumers.values()):
            if consumer.state is ConsumerState.ENDED:
                continue
            try:
                await self._rpc(
                    self._consume_method(consumer), (spec.BasicConsumeOk,), recovering=True
                )
            except AMQPError as exc:
                self.connection.logger.warning(
                    "could not recover consumer %s on %r: %s",
                    consumer.consumer_tag, consumer.queue, exc,
                )
                raise

    # -- channel class --

    async def _open(self, timeout: float | None = None) -> None:
        await self._rpc(spec.ChannelOpen(), (spec.ChannelOpenOk,), timeout, recovering=True)
        self.state = ChannelState.OPEN

    async def channel_flow(self, active: bool, *, timeout: float | None = None) -> bool:
        """channel.flow: ask the broker to stop (False) or restart (True) deliveries.
        Returns the broker's answer. (RabbitMQ refuses ``active=False``.)"""
        ok = await self._rpc(spec.ChannelFlow(active), (spec.ChannelFlowOk,), timeout)
        return ok.active

    flow = channel_flow

    async def close(
        self, reply_code: int = 200, reply_text: str = "bye", *, timeout: float | None = None
    ) -> None:
        """channel.close. Closing a closed channel does nothing."""
        if self.state in (ChannelState.CLOSED, ChannelState.CLOSING):
            return
        if self.state is ChannelState.RECOVERING or not self.connection.is_open:
            self._closed(None)
            return
        self.state = ChannelState.CLOSING
        try:
            await self._rpc(
                spec.ChannelClose(reply_code, reply_text, 0, 0),
                (spec.ChannelCloseOk,),
                timeout,
                recovering=True,
            )
        except (AMQPError, ClientError, TimeoutError):
            pass
        finally:
            self._closed(None)

    # -- exchange class --

    async def exchange_declare(
        self,
        exchange: str,
        type: str = "direct",
        *,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: FieldTable | None = None,
        timeout: float | None = None,
    ) -> None:
        """exchange.declare (``passive``: only check that it exists; 404 otherwise)."""
        await self._rpc(
            spec.ExchangeDeclare(
                exchange, type, passive, durable, auto_delete, internal, False, arguments
            ),
            (spec.ExchangeDeclareOk,),
            timeout,
        )
        if not passive:
            self.connection._record_exchange(
                exchange, type, durable, auto_delete, internal, arguments
            )

    async def exchange_delete(
        self, exchange: str, *, if_unused: bool = False, timeout: float | None = None
    ) -> None:
        """exchange.delete."""
        await self._rpc(
            spec.ExchangeDelete(exchange, if_unused, False),
            (spec.ExchangeDeleteOk,),
            timeout,
        )
        self.connection._forget_exchange(exchange)

    async def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        *,
        arguments: FieldTable | None = None,
        timeout: float | None = None,
    ) -> None:
        """exchange.bind (RabbitMQ extension): route from ``source`` to ``destination``."""
        await self._rpc(
            spec.ExchangeBind(destination, source, routing_key, False, arguments),
            (spec.ExchangeBindOk,),
            timeout,
        )
        self.connection._record_binding("exchange", destination, source, routing_key, arguments)

    async def exchange_unbind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        *,
        arguments: FieldTable | None = None,
        timeout: float | None = None,
    ) -> None:
        """exchange.unbind."""
        await self._rpc(
            spec.ExchangeUnbind(destination, source, routing_key, False, arguments),
            (spec.ExchangeUnbindOk,),
            timeout,
        )
        self.connection._forget_binding("exchange", destination, source, routing_key, arguments)

    # -- queue class --

    async def queue_declare(
        self,
        queue: str = "",
        *,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: FieldTable | None = None,
        timeout: float | None = None,
    ) -> QueueDeclareOk:
        """queue.declare. ``queue=""`` asks the broker to name it (see the result's
        ``queue``)."""
        current = self.connection.current_name
        ok = await self._rpc(
            lambda: spec.QueueDeclare(
                current(queue), passive, durable, exclusive, auto_delete, False, arguments
            ),
            (spec.QueueDeclareOk,),
            timeout,
        )
        if not passive:
            self.connection._record_queue(
                queue or ok.queue, ok.queue, not queue, durable, exclusive, auto_delete, arguments
            )
        return QueueDeclareOk(queue or ok.queue, ok.message_count, ok.consumer_count)

    async def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        *,
        arguments: FieldTable | None = None,
        timeout: float | None = None,
    ) -> None:
        """queue.bind."""
        await self._rpc(
            lambda: spec.QueueBind(
                self.connection.current_name(queue), exchange, routing_key, False, arguments
            ),
            (spec.QueueBindOk,),
            timeout,
        )
        self.connection._record_binding("queue", queue, exchange, routing_key, arguments)

    async def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        *,
        arguments: FieldTable | None = None,
        timeout: float | None = None,
    ) -> None:
        """queue.unbind."""
        await self._rpc(
            lambda: spec.QueueUnbind(
                self.connection.current_name(queue), exchange, routing_key, arguments
            ),
            (spec.QueueUnbindOk,),
            timeout,
        )
        self.connection._forget_binding("queue", queue, exchange, routing_key, arguments)

    async def queue_purge(self, queue: str, *, timeout: float | None = None) -> int:
        """queue.purge; returns the number of messages removed."""
        ok = await self._rpc(
            lambda: spec.QueuePurge(self.connection.current_name(queue), False),
            (spec.QueuePurgeOk,),
            timeout,
        )
        return ok.message_count

    async def queue_delete(
        self,
        queue: str,
        *,
        if_unused: bool = False,
        if_empty: bool = False,
        timeout: float | None = None,
    ) -> int:
        """queue.delete; returns the number of messages deleted with it."""
        ok = await self._rpc(
            lambda: spec.QueueDelete(
                self.connection.current_name(queue), if_unused, if_empty, False
            ),
            (spec.QueueDeleteOk,),
            timeout,
        )
        self.connection._forget_queue(queue)
        return ok.message_count

    # -- basic class --

    async def basic_qos(
        self,
        prefetch_count: int = 0,
        prefetch_size: int = 0,
        *,
        global_: bool = False,
        timeout: float | None = None,
    ) -> None:
        """basic.qos: at most ``prefetch_count`` unacked deliveries per consumer (RabbitMQ;
        with ``global_`` per channel)."""
        await self._rpc(
            spec.BasicQos(prefetch_size, prefetch_count, global_), (spec.BasicQosOk,), timeout
        )
        self._qos[global_] = (prefetch_size, prefetch_count)

    def consume(
        self,
        queue: str,
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        no_local: bool = False,
        consumer_tag: str = "",
        arguments: FieldTable | None = None,
        on_cancel: OnCancel = "stop",
    ) -> Consumer:
        """A consumer of ``queue`` to iterate over with ``async for`` (see
        :mod:`kiltmq.client.consumer`). basic.consume is sent when iteration starts (or
        on ``await`` / ``async with``)."""
        self._check_usable()
        return Consumer(
            self,
            queue,
            consumer_tag=consumer_tag or self.connection._new_consumer_tag(),
            no_ack=no_ack,
            exclusive=exclusive,
            no_local=no_local,
            arguments=arguments,
            on_cancel=on_cancel,
        )

    async def basic_consume(
        self,
        queue: str,
        callback: MessageCallback,
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        no_local: bool = False,
        consumer_tag: str = "",
        arguments: FieldTable | None = None,
        on_cancel: OnCancel = "stop",
        run_sync_in_thread: bool = True,
        timeout: float | None = None,
    ) -> str:
        """basic.consume with a callback; returns the consumer tag.

        ``callback(message)`` is called for each message, one at a time in order. An
        ``async def`` callback runs in the event loop; a plain function runs in the
        loop's default executor (a worker thread) unless ``run_sync_in_thread`` is false,
        so a long synchronous handler cannot starve heartbeats. A callback that raises
        is logged and its message, if still unsettled, is nacked without requeue.
        """
        self._check_usable()
        consumer = Consumer(
            self,
            queue,
            consumer_tag=consumer_tag or self.connection._new_consumer_tag(),
            no_ack=no_ack,
            exclusive=exclusive,
            no_local=no_local,
            arguments=arguments,
            callback=callback,
            on_cancel=on_cancel,
            run_sync_in_thread=run_sync_in_thread,
        )
        await consumer.start(timeout)
        return consumer.consumer_tag

    def _consume_method(self, consumer: Consumer) -> spec.BasicConsume:
        return spec.BasicConsume(
            self.connection.current_name(consumer.queue),
            consumer.consumer_tag,
            consumer.no_local,
            consumer.no_ack,
            consumer.exclusive,
            False,
            consumer.arguments,
        )

    async def _start_consumer(self, consumer: Consumer, timeout: float | None) -> None:
        tag = consumer.consumer_tag
        if tag in self._consumers:
            raise ValueError(f"consumer tag {tag!r} is already used on this channel")
        # Registered before consume-ok: deliveries may follow it in the same read.
        self._consumers[tag] = consumer
        try:
            await self._rpc(
                lambda: self._consume_method(consumer), (spec.BasicConsumeOk,), timeout
            )
        except BaseException:
            if self._consumers.get(tag) is consumer:
                del self._consumers[tag]
            raise
        self.connection._record_consumer(consumer)

    def consumer(self, consumer_tag: str) -> Consumer | None:
        """The active consumer with this tag."""
        return self._consumers.get(consumer_tag)

    async def basic_cancel(self, consumer_tag: str, *, timeout: float | None = None) -> None:
        """basic.cancel: end a subscription; its iterator stops (StopAsyncIteration)."""
        consumer = self._consumers.get(consumer_tag)
        try:
            await self._rpc(spec.BasicCancel(consumer_tag, False), (spec.BasicCancelOk,), timeout)
        finally:
            if consumer is not None and self._consumers.get(consumer_tag) is consumer:
                del self._consumers[consumer_tag]
                self.connection._forget_consumer(consumer, cancelled=True)
                consumer._end(None)

    async def basic_get(
        self, queue: str, *, no_ack: bool = False, timeout: float | None = None
    ) -> Message | None:
        """basic.get: one message from ``queue``, or None if it is empty."""
        reply = await self._rpc(
            lambda: spec.BasicGet(self.connection.current_name(queue), no_ack),
            (spec.BasicGetOk, spec.BasicGetEmpty),
            timeout,
        )
        if not isinstance(reply, ContentReceived):
            return None
        method = reply.method
        assert isinstance(method, spec.BasicGetOk)
        message = Message(
            reply.body,
            reply.raw_properties,
            exchange=method.exchange,
            routing_key=method.routing_key,
            delivery_tag=method.delivery_tag,
            redelivered=method.redelivered,
            channel=self,
            epoch=self._epoch,
            no_ack=no_ack,
        )
        message.message_count = method.message_count
        return message

    def _settle(self, message: Message, kind: int, multiple: bool, requeue: bool) -> None:
        """Send basic.ack / nack / reject for ``message`` (any thread)."""
        if message._epoch != self._epoch:
            return  # delivered before a connection recovery: the broker redelivers it
        conn = self.connection
        if threading.get_ident() != conn._loop_thread:
            if self.state is ChannelState.CLOSED:
                raise self._closed_error()
            self.loop.call_soon_threadsafe(self._settle, message, kind, multiple, requeue)
            return
        if self.state is not ChannelState.OPEN:
            if self.state is ChannelState.RECOVERING:
                return
            raise self._closed_error()
        if kind == ACK:
            frame = _SETTLE.pack(1, self.number, 13, 60, 80, message.delivery_tag, multiple, 206)
        elif kind == NACK:
            frame = _SETTLE.pack(
                1, self.number, 13, 60, 120, message.delivery_tag, multiple | requeue << 1, 206
            )
        else:
            frame = _SETTLE.pack(1, self.number, 13, 60, 90, message.delivery_tag, requeue, 206)
        conn._send_frames(frame)

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """basic.ack by delivery tag (prefer :meth:`Message.ack`)."""
        self._send_settle(80, delivery_tag, multiple)

    async def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True
    ) -> None:
        """basic.nack by delivery tag (prefer :meth:`Message.nack`)."""
        self._send_settle(120, delivery_tag, multiple | requeue << 1)

    async def basic_reject(self, delivery_tag: int, requeue: bool = True) -> None:
        """basic.reject by delivery tag (prefer :meth:`Message.reject`)."""
        self._send_settle(90, delivery_tag, requeue)

    def _send_settle(self, method_id: int, delivery_tag: int, bits: int) -> None:
        if self.state is not ChannelState.OPEN:
            raise self._closed_error()
        self.connection._send_frames(
            _SETTLE.pack(1, self.number, 13, 60, method_id, delivery_tag, bits, 206)
        )

    async def basic_recover(self, requeue: bool = True, *, timeout: float | None = None) -> None:
        """basic.recover: redeliver this channel's unacked messages."""
        await self._rpc(spec.BasicRecover(requeue), (spec.BasicRecoverOk,), timeout)

    # -- publishing --

    async def basic_publish(
        self,
        body: bytes | str,
        exchange: str = "",
        routing_key: str = "",
        properties: BasicProperties | None = None,
        *,
        mandatory: bool = False,
        immediate: bool = False,
        timeout: float | None = None,
    ) -> None:
        """basic.publish. In confirm mode, returns once the broker confirmed the message
        (raising :class:`PublishNacked` or :class:`Unroutable`); otherwise as soon as the
        frames are queued. While the broker has blocked the connection
        (connection.blocked) this waits, at most the connection's ``blocked_timeout``."""
        if (
            self.state is not ChannelState.OPEN
            or self._publish_waiting
            or self.connection._publish_paused
        ):
            await self._publish_gate()
        future = self._send_publish(body, exchange, routing_key, properties, mandatory, immediate)
        if future is not None:
            if timeout is None:
                timeout = self.connection.rpc_timeout
            try:
                async with asyncio.timeout(timeout):
                    await future
            except TimeoutError:
                raise TimeoutError(
                    f"basic.publish on channel {self.number}: not confirmed within {timeout} s"
                ) from None

    def publish_nowait(
        self,
        body: bytes | str,
        exchange: str = "",
        routing_key: str = "",
        properties: BasicProperties | None = None,
        *,
        mandatory: bool = False,
        immediate: bool = False,
    ) -> asyncio.Future[None]:
        """Publish without waiting; return a future for the outcome.

        In confirm mode the future resolves when the broker confirms the message (or
        fails as :meth:`basic_publish` would raise); otherwise it is already done. When
        the message cannot be sent at once (connection blocked, writing paused,
        recovering) it is sent by a task in order with other publishes.
        """
        if (
            self.state is not ChannelState.OPEN
            or self._publish_waiting
            or self.connection._publish_paused
        ):
            self._check_usable()
            return self.loop.create_task(
                self._publish_later(body, exchange, routing_key, properties, mandatory, immediate)
            )
        future = self._send_publish(body, exchange, routing_key, properties, mandatory, immediate)
        if future is None:
            done = self._done
            if done is None:
                done = self._done = self.loop.create_future()
                done.set_result(None)
            return done
        return future

    async def _publish_later(
        self,
        body: bytes | str,
        exchange: str,
        routing_key: str,
        properties: BasicProperties | None,
        mandatory: bool,
        immediate: bool,
    ) -> None:
        await self._publish_gate()
        future = self._send_publish(body, exchange, routing_key, properties, mandatory, immediate)
        if future is not None:
            await future

    async def _publish_gate(self) -> None:
        """Wait until publishing may go on: channel open (recovered), connection not
        blocked, transport accepting writes. Waiting publishers keep their order."""
        self._publish_waiting += 1
        try:
            conn = self.connection
            async with asyncio.timeout(conn.rpc_timeout):
                await self._ready()
            await conn._wait_publishable()
            if not self._flow_active:
                async with asyncio.timeout(conn.rpc_timeout):
                    await self._flow_event.wait()
            self._check_usable()
        finally:
            self._publish_waiting -= 1

    def _send_publish(
        self,
        body: bytes | str,
        exchange: str,
        routing_key: str,
        properties: BasicProperties | None,
        mandatory: bool,
        immediate: bool,
    ) -> asyncio.Future[None] | None:
        if self.state is not ChannelState.OPEN:
            raise self._closed_error()
        if type(body) is not bytes:
            body = body.encode() if isinstance(body, str) else bytes(body)
        conn = self.connection
        if not exchange and conn._names:
            routing_key = conn._names.get(routing_key, routing_key)
        key = (exchange, routing_key, mandatory, immediate)
        payload = self._publish_cache.get(key)
        if payload is None:
            payload = spec.BasicPublish(exchange, routing_key, mandatory, immediate).encode()
            if len(self._publish_cache) >= 256:
                self._publish_cache.clear()
            self._publish_cache[key] = payload
        raw = _NO_PROPERTIES if properties is None else properties.encode()
        conn._send_frames(
            content_frames(
                self.number,
                payload,
                _HEADER.pack(60, 0, len(body)) + raw,
                body,
                conn._frame_max,
            )
        )
        if not self._confirm:
            return None
        seq = self._next_seq
        self._next_seq = seq + 1
        future: asyncio.Future[None] = self.loop.create_future()
        self._unconfirmed[seq] = future
        self._unconfirmed_order.append(seq)
        if mandatory:
            self._mandatory.append((seq, exchange, routing_key, body))
        return future

    async def wait_for_confirms(self, timeout: float | None = None) -> None:
        """Wait until every publish so far is confirmed; raise the first failure."""
        futures = list(self._unconfirmed.values())
        if not futures:
            return
        async with asyncio.timeout(timeout if timeout is not None else self.connection.rpc_timeout):
            results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # -- confirm and tx classes --

    async def confirm_select(self, *, timeout: float | None = None) -> None:
        """confirm.select: publisher confirms on this channel (see :meth:`basic_publish`)."""
        if self._confirm:
            return
        await self._rpc(spec.ConfirmSelect(False), (spec.ConfirmSelectOk,), timeout)
        self._confirm = True
        self._next_seq = 1

    async def tx_select(self, *, timeout: float | None = None) -> None:
        """tx.select: publishes and acks on this channel become transactional."""
        await self._rpc(spec.TxSelect(), (spec.TxSelectOk,), timeout)
        self._tx = True

    async def tx_commit(self, *, timeout: float | None = None) -> None:
        """tx.commit."""
        await self._rpc(spec.TxCommit(), (spec.TxCommitOk,), timeout)

    async def tx_rollback(self, *, timeout: float | None = None) -> None:
        """tx.rollback."""
        await self._rpc(spec.TxRollback(), (spec.TxRollbackOk,), timeout)

