"""One open channel on the broker side: the parts for each AMQP class put together,
the dispatch of a method to its handler, channel.flow, and the release of everything on
close."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kiltmq.broker.channel.declarations import Declarations
from kiltmq.broker.channel.settlement import requeue
from kiltmq.broker.channel.transactions import Transactions
from kiltmq.protocol import spec, spec08
from kiltmq.protocol.errors import AMQPNotImplemented

if TYPE_CHECKING:
    from kiltmq.broker.channel.owner import ChannelSession

__all__ = ["Channel"]


class Channel(Declarations, Transactions):
    """Broker-side state of one open channel and the handlers of the class 40-90
    methods (exchange, queue, basic, confirm, tx) and channel.flow."""

    def __init__(self, session: ChannelSession, number: int) -> None:
        super().__init__(session, number)
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
            # AMQP 0-8's methods of their own
            spec08.AccessRequest: self.access_request,
            spec08.BasicConsume: self.basic_consume_0_8,
        }

    def handle(self, method: spec.Method) -> None:
        handler = self._handlers.get(type(method))
        if handler is None:
            raise AMQPNotImplemented(
                f"NOT_IMPLEMENTED - {method.NAME} is not handled by this broker",
                method.CLASS_ID,
                method.METHOD_ID,
            )
        handler(method)

    def ack_overdue(self, now: float, timeout: float) -> bool:
        """Whether the oldest unacked delivery is older than ``timeout`` seconds (see
        :mod:`kiltmq.broker.channel.ack_timeout`); called by the periodic check."""
        unacked = self.unacked
        oldest = next(iter(unacked)) if unacked else None
        return self.ack_clock.overdue(now, timeout, oldest, self.delivery_tag)

    def channel_flow(self, m: spec.ChannelFlow) -> None:
        if not m.active:
            raise AMQPNotImplemented("NOT_IMPLEMENTED - active=false", 20, 20)
        self.send(spec.ChannelFlowOk(True))

    def access_request(self, m: spec08.AccessRequest) -> None:
        """AMQP 0-8: RabbitMQ grants ticket 1 for any realm, and ignores tickets after."""
        self.send(spec08.AccessRequestOk(1))

    def basic_consume_0_8(self, m: spec08.BasicConsume) -> None:
        """AMQP 0-8's basic.consume: 0-9-1's without the arguments table."""
        self.basic_consume(
            spec.BasicConsume(
                queue=m.queue,
                consumer_tag=m.consumer_tag,
                no_local=m.no_local,
                no_ack=m.no_ack,
                exclusive=m.exclusive,
                no_wait=m.nowait,
            )
        )

    def close(self) -> None:
        """Release everything: cancel consumers, requeue unacked deliveries (including
        those settled in a transaction that was never committed)."""
        if self.closed:
            return
        self.closed = True
        totals = self.vhost.closed_channel_counts
        for name in self.COUNTERS:
            totals[name] = totals.get(name, 0) + getattr(self, name)
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
        requeue(records)
        for consumer in consumers:
            consumer.queue.consumer_gone()
