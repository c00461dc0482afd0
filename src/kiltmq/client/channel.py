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

Publishing (:mod:`kiltmq.client.publisher`): :meth:`Channel.basic_publish` queues the
message frames at once. On a channel in confirm mode (:meth:`Channel.confirm_select`) it
then waits for the broker's basic.ack and raises
:class:`~kiltmq.client.errors.PublishNacked` on basic.nack, or
:class:`~kiltmq.client.errors.Unroutable` when a ``mandatory`` message came back with
basic.return. :meth:`Channel.publish_nowait` returns that outcome as a future instead,
so any number of publishes can be in flight (``asyncio.gather`` of ``basic_publish``
calls works too). Returned messages are also passed to every callback in
:attr:`Channel.on_return`; with neither confirms nor callbacks they are logged.

Consuming, basic.get and acknowledgements are in :mod:`kiltmq.client.dispatch`, the
synchronous-method machinery in :mod:`kiltmq.client.rpc`.

Threading: a channel belongs to its connection's event loop; only
:meth:`Message.ack`-style settlement may be called from other threads. The synchronous
facade :mod:`kiltmq.client.blocking` makes the rest thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiltmq.client.dispatch import ConsumingChannel
from kiltmq.client.errors import ClientError
from kiltmq.client.publisher import PublishingChannel
from kiltmq.client.rpc import ChannelConnection
from kiltmq.client.state import ChannelState
from kiltmq.client.topology import BindingRecord
from kiltmq.protocol import spec
from kiltmq.protocol.codec import FieldTable
from kiltmq.protocol.connection import ContentReceived
from kiltmq.protocol.errors import AMQPError, error_for
from kiltmq.protocol.spec import Method

__all__ = ["Channel", "ChannelState", "QueueDeclareOk"]


_BIND_OK: dict[tuple[str, bool], tuple[type[Method], ...]] = {
    ("exchange", True): (spec.ExchangeBindOk,),
    ("exchange", False): (spec.ExchangeUnbindOk,),
    ("queue", True): (spec.QueueBindOk,),
    ("queue", False): (spec.QueueUnbindOk,),
}


@dataclass(frozen=True, slots=True)
class QueueDeclareOk:
    """The result of :meth:`Channel.queue_declare`."""

    queue: str
    message_count: int
    consumer_count: int


class Channel(PublishingChannel, ConsumingChannel):
    """An AMQP channel. Made by :meth:`Connection.channel`; see the module docstring."""

    def __init__(self, connection: ChannelConnection, number: int) -> None:
        super().__init__(connection, number)
        self._tx = False

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- incoming --

    def _on_method(self, method: Method) -> None:
        kind = type(method)
        if kind is spec.BasicAck:
            assert isinstance(method, spec.BasicAck)
            self._confirms.on_confirm(method.delivery_tag, method.multiple, False)
        elif kind is spec.BasicNack:
            assert isinstance(method, spec.BasicNack)
            self._confirms.on_confirm(method.delivery_tag, method.multiple, True)
        elif kind is spec.BasicCancel:
            assert isinstance(method, spec.BasicCancel)
            self._on_server_cancel(method.consumer_tag)
        elif kind is spec.ChannelClose:
            assert isinstance(method, spec.ChannelClose)
            self._on_server_close(method)
        elif kind is spec.ChannelFlow:
            assert isinstance(method, spec.ChannelFlow)
            self._on_flow(method.active)
        else:
            self._on_reply(method)

    def _on_content(self, event: ContentReceived) -> None:
        method = event.method
        kind = type(method)
        if kind is spec.BasicDeliver:
            assert isinstance(method, spec.BasicDeliver)
            self._on_deliver(event, method)
        elif kind is spec.BasicReturn:
            assert isinstance(method, spec.BasicReturn)
            self._on_return(event, method)
        else:  # basic.get-ok
            self._on_reply(event)

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
        self._end_consumers(reason)
        self._flow_event.set()
        self.connection._channel_closed(self)

    def _fail_pending(self, error: BaseException) -> None:
        self._fail_waiters(error)
        self._confirms.fail(error)

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
        self._confirms.next_seq = 1
        for consumer in self._consumers.values():
            consumer._connection_lost()

    async def _reopen(self) -> None:
        """Open the channel again on the recovered connection, with its settings."""
        await self._rpc(spec.ChannelOpen(), (spec.ChannelOpenOk,), recovering=True)
        self._set_flow(True)
        await self._restore_qos()
        if self._confirm:
            await self._rpc(spec.ConfirmSelect(), (spec.ConfirmSelectOk,), recovering=True)
            self._confirms.next_seq = 1
        if self._tx:
            await self._rpc(spec.TxSelect(), (spec.TxSelectOk,), recovering=True)

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
            self.connection._topology.record_exchange(
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
        self.connection._topology.forget_exchange(exchange)

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
        await self._bind(True, "exchange", destination, source, routing_key, arguments, timeout)

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
        await self._bind(False, "exchange", destination, source, routing_key, arguments, timeout)

    async def _bind(
        self,
        bind: bool,
        kind: str,
        destination: str,
        source: str,
        routing_key: str,
        arguments: FieldTable | None,
        timeout: float | None,
    ) -> None:
        """queue.bind / unbind (``kind`` "queue") or exchange.bind / unbind, recorded for
        recovery."""
        current = self.connection.current_name

        def method() -> Method:
            if kind == "exchange":
                if bind:
                    return spec.ExchangeBind(destination, source, routing_key, False, arguments)
                return spec.ExchangeUnbind(destination, source, routing_key, False, arguments)
            if bind:
                return spec.QueueBind(current(destination), source, routing_key, False, arguments)
            return spec.QueueUnbind(current(destination), source, routing_key, arguments)

        await self._rpc(method, _BIND_OK[kind, bind], timeout)
        binding = BindingRecord(
            kind, destination, source, routing_key, dict(arguments) if arguments else None
        )
        if bind:
            self.connection._topology.record_binding(binding)
        else:
            self.connection._topology.forget_binding(binding)

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
            self.connection._topology.record_queue(
                queue or ok.queue, not queue, durable, exclusive, auto_delete, arguments
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
        await self._bind(True, "queue", queue, exchange, routing_key, arguments, timeout)

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
        await self._bind(False, "queue", queue, exchange, routing_key, arguments, timeout)

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
        self.connection._topology.forget_queue(queue)
        return ok.message_count

    # -- tx class --

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
