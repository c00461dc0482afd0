"""Consuming on a channel: consumers, deliveries, basic.get, acknowledgements and the
broker's basic.cancel notification (see :mod:`kiltmq.client.consumer`)."""

from __future__ import annotations

import threading

from kiltmq.client.consumer import (
    ACK,
    NACK,
    Consumer,
    ConsumerState,
    Message,
    MessageCallback,
    OnCancel,
)
from kiltmq.client.errors import ChannelClosed, ClientError, ConnectionClosed, ConnectionLost
from kiltmq.client.rpc import ChannelConnection, RpcChannel
from kiltmq.client.state import ChannelState
from kiltmq.protocol import spec
from kiltmq.protocol.codec import FieldTable
from kiltmq.protocol.connection import ContentReceived
from kiltmq.protocol.errors import AMQPError
from kiltmq.protocol.frames import SETTLE_FRAME
from kiltmq.protocol.spec import FRAME_END, Method

__all__ = ["ConsumingChannel"]

# basic.ack / basic.nack / basic.reject frames packed in one go: frame type, channel,
# size, class id, method id, delivery tag, flag bits, frame end.
_SETTLE = SETTLE_FRAME
_ACK, _NACK, _REJECT = spec.BasicAck.METHOD_ID, spec.BasicNack.METHOD_ID, spec.BasicReject.METHOD_ID


class ConsumingChannel(RpcChannel):
    """The consuming half of a :class:`~kiltmq.client.Channel`."""

    def __init__(self, connection: ChannelConnection, number: int) -> None:
        super().__init__(connection, number)
        self._consumers: dict[str, Consumer] = {}
        #: basic.qos settings by ``global_``, set again by recovery
        self._qos: dict[bool, tuple[int, int]] = {}

    # -- from the broker --

    def _on_deliver(self, event: ContentReceived, method: spec.BasicDeliver) -> None:
        consumer = self._consumers.get(method.consumer_tag)
        if consumer is None:
            self.connection.logger.warning(
                "channel %d: delivery for unknown consumer %r",
                self.number,
                method.consumer_tag,
            )
            return
        consumer._deliver(self._received(event, method, method.consumer_tag, consumer.no_ack))

    def _received(
        self,
        event: ContentReceived,
        method: spec.BasicDeliver | spec.BasicGetOk,
        consumer_tag: str,
        no_ack: bool,
    ) -> Message:
        """The message of a basic.deliver or basic.get-ok."""
        return Message(
            event.body,
            event.raw_properties,
            exchange=method.exchange,
            routing_key=method.routing_key,
            delivery_tag=method.delivery_tag,
            redelivered=method.redelivered,
            consumer_tag=consumer_tag,
            channel=self,
            epoch=self._epoch,
            no_ack=no_ack,
        )

    def _on_server_cancel(self, tag: str) -> None:
        consumer = self._consumers.get(tag)
        if consumer is None:
            return
        topology = self.connection._topology
        if consumer.on_cancel == "resubscribe" and consumer.queue in topology.queues:
            self.loop.create_task(self._resubscribe(consumer))
            return
        del self._consumers[tag]
        self.connection._forget_consumer(consumer)
        consumer._end(None)

    async def _resubscribe(self, consumer: Consumer) -> None:
        async def attempt(
            what: str, method: Method, responses: tuple[type[Method], ...]
        ) -> Method:
            return await self._rpc(method, responses)

        try:
            await self.connection._topology.redeclare_queue(consumer.queue, attempt)
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

    # -- the channel closes or recovers --

    def _end_consumers(self, reason: BaseException | None) -> None:
        """The channel closed for good: end every consumer (``reason`` None: the
        application closed the channel)."""
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

    async def _restore_qos(self) -> None:
        for global_, (size, count) in self._qos.items():
            await self._rpc(
                spec.BasicQos(size, count, global_), (spec.BasicQosOk,), recovering=True
            )

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
        return self._consumer(queue, no_ack, exclusive, no_local, consumer_tag, arguments,
                              on_cancel, None, True)

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
        consumer = self._consumer(queue, no_ack, exclusive, no_local, consumer_tag, arguments,
                                  on_cancel, callback, run_sync_in_thread)
        await consumer.start(timeout)
        return consumer.consumer_tag

    def _consumer(
        self,
        queue: str,
        no_ack: bool,
        exclusive: bool,
        no_local: bool,
        consumer_tag: str,
        arguments: FieldTable | None,
        on_cancel: OnCancel,
        callback: MessageCallback | None,
        run_sync_in_thread: bool,
    ) -> Consumer:
        self._check_usable()
        return Consumer(
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
        message = self._received(reply, method, "", no_ack)
        message.message_count = method.message_count
        return message

    # -- acknowledgements --

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
        bits: int
        if kind == ACK:
            method_id, bits = _ACK, multiple
        elif kind == NACK:
            method_id, bits = _NACK, multiple | requeue << 1
        else:
            method_id, bits = _REJECT, requeue
        conn._send_frames(
            _SETTLE.pack(1, self.number, 13, 60, method_id, message.delivery_tag, bits, FRAME_END)
        )

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """basic.ack by delivery tag (prefer :meth:`Message.ack`)."""
        self._send_settle(_ACK, delivery_tag, multiple)

    async def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True
    ) -> None:
        """basic.nack by delivery tag (prefer :meth:`Message.nack`)."""
        self._send_settle(_NACK, delivery_tag, multiple | requeue << 1)

    async def basic_reject(self, delivery_tag: int, requeue: bool = True) -> None:
        """basic.reject by delivery tag (prefer :meth:`Message.reject`)."""
        self._send_settle(_REJECT, delivery_tag, requeue)

    def _send_settle(self, method_id: int, delivery_tag: int, bits: int) -> None:
        if self.state is not ChannelState.OPEN:
            raise self._closed_error()
        self.connection._send_frames(
            _SETTLE.pack(1, self.number, 13, 60, method_id, delivery_tag, bits, FRAME_END)
        )

    async def basic_recover(self, requeue: bool = True, *, timeout: float | None = None) -> None:
        """basic.recover: redeliver this channel's unacked messages."""
        await self._rpc(spec.BasicRecover(requeue), (spec.BasicRecoverOk,), timeout)
