"""One open channel on the broker side: the parts for each AMQP class put together,
the dispatch of a method to its handler, channel.flow, and the release of everything on
close."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiltmq.broker.channel.declarations import Declarations
from kiltmq.broker.channel.settlement import requeue
from kiltmq.broker.channel.transactions import Transactions
from kiltmq.protocol import spec, spec08
from kiltmq.protocol.errors import AMQPNotImplemented

__all__ = ["Channel"]


class Channel(Declarations, Transactions):
    """Broker-side state of one open channel and the handlers of the class 40-90
    methods (exchange, queue, basic, confirm, tx) and channel.flow."""

    __slots__ = ()

    def handle(self, method: spec.Method) -> None:
        handler = _HANDLERS.get(type(method))
        if handler is None:
            raise AMQPNotImplemented(
                f"NOT_IMPLEMENTED - {method.NAME} is not handled by this broker",
                method.CLASS_ID,
                method.METHOD_ID,
            )
        handler(self, method)

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
        self.vhost.churn.channel_closed += 1
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
        self.unacked_bytes = 0
        if tx is not None:
            for _kind, settled in tx.settles:
                records.extend(settled)
        requeue(records, released=True)
        for consumer in consumers:
            consumer.queue.consumer_gone()


#: The handler of each method (functions, not bound methods: a channel holds no
#: reference to itself, so reference counting frees it once it is closed).
_HANDLERS: dict[type[spec.Method], Callable[[Channel, Any], None]] = {
    spec.ExchangeDeclare: Channel.exchange_declare,
    spec.ExchangeDelete: Channel.exchange_delete,
    spec.ExchangeBind: Channel.exchange_bind,
    spec.ExchangeUnbind: Channel.exchange_unbind,
    spec.QueueDeclare: Channel.queue_declare,
    spec.QueueBind: Channel.queue_bind,
    spec.QueueUnbind: Channel.queue_unbind,
    spec.QueuePurge: Channel.queue_purge,
    spec.QueueDelete: Channel.queue_delete,
    spec.BasicQos: Channel.basic_qos,
    spec.BasicConsume: Channel.basic_consume,
    spec.BasicCancel: Channel.basic_cancel,
    spec.BasicGet: Channel.basic_get,
    spec.BasicAck: Channel.basic_ack,
    spec.BasicReject: Channel.basic_reject,
    spec.BasicNack: Channel.basic_nack,
    spec.BasicRecoverAsync: Channel.basic_recover_async,
    spec.BasicRecover: Channel.basic_recover,
    spec.ConfirmSelect: Channel.confirm_select,
    spec.TxSelect: Channel.tx_select,
    spec.TxCommit: Channel.tx_commit,
    spec.TxRollback: Channel.tx_rollback,
    spec.ChannelFlow: Channel.channel_flow,
    # AMQP 0-8's methods of their own
    spec08.AccessRequest: Channel.access_request,
    spec08.BasicConsume: Channel.basic_consume_0_8,
}
