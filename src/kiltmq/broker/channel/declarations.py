"""The exchange and queue classes: declarations, bindings, purges and deletions. The
reply to a change of a durable object waits until its definition is on disk."""

from __future__ import annotations

from kiltmq.broker.channel.reply_to import DirectReplyTo
from kiltmq.broker.declaration import refuse_server_named
from kiltmq.broker.reply_target import REPLY_TO
from kiltmq.broker.vhost import generate_name
from kiltmq.protocol import spec

__all__ = ["Declarations"]


class Declarations(DirectReplyTo):
    """Handlers of the exchange and queue classes."""

    __slots__ = ()

    def _check_binding(self, kind: str, destination: str, source: str) -> None:
        """Permissions to bind ``destination`` (a ``kind``) to exchange ``source``."""
        if destination == "" or source == "":
            self.vhost.get_exchange("")  # 403 for the default exchange
        self._check("write", kind, destination)
        self._check("read", "exchange", source)

    # -- exchange class -----------------------------------------------------------------

    def exchange_declare(self, m: spec.ExchangeDeclare) -> None:
        vhost = self.vhost
        if m.passive:
            exchange = vhost.get_exchange(m.exchange)
        else:
            vhost.check_exchange_type(m.type)
            if m.exchange == "":
                vhost.get_exchange("")  # 403 for the default exchange
            self._check("configure", "exchange", m.exchange)
            alternate = (m.arguments or {}).get("alternate-exchange")
            if isinstance(alternate, str) and m.exchange not in vhost.exchanges:
                self._check("write", "exchange", alternate)
            exchange = vhost.declare_exchange(
                m.exchange,
                m.type,
                durable=m.durable,
                auto_delete=m.auto_delete,
                internal=m.internal,
                arguments=m.arguments,
            )
        if not m.no_wait:
            self._reply_stored(spec.ExchangeDeclareOk(), exchange.durable)

    def exchange_delete(self, m: spec.ExchangeDelete) -> None:
        if m.exchange and not m.exchange.startswith("amq."):
            self._check("configure", "exchange", m.exchange)
        exchange = self.vhost.exchanges.get(m.exchange)
        self.vhost.delete_exchange(m.exchange, if_unused=m.if_unused)
        if not m.no_wait:
            self._reply_stored(spec.ExchangeDeleteOk(), exchange is not None and exchange.durable)

    def exchange_bind(self, m: spec.ExchangeBind) -> None:
        vhost = self.vhost
        self._check_binding("exchange", m.destination, m.source)
        source = vhost.get_exchange(m.source)
        self._check_topic(source, "read", m.routing_key)
        destination = vhost.get_exchange(m.destination)
        vhost.bind(source, destination, m.routing_key, m.arguments)
        if not m.no_wait:
            self._reply_stored(spec.ExchangeBindOk(), source.durable and destination.durable)

    def exchange_unbind(self, m: spec.ExchangeUnbind) -> None:
        vhost = self.vhost
        self._check_binding("exchange", m.destination, m.source)
        source = vhost.exchanges.get(m.source)
        if source is not None:
            self._check_topic(source, "read", m.routing_key)
        destination = vhost.exchanges.get(m.destination)
        durable = False
        if source is not None and destination is not None:
            vhost.unbind(source, destination, m.routing_key, m.arguments)
            durable = source.durable and destination.durable
        if not m.no_wait:
            self._reply_stored(spec.ExchangeUnbindOk(), durable)

    # -- queue class ----------------------------------------------------------------------

    def queue_declare(self, m: spec.QueueDeclare) -> None:
        vhost = self.vhost
        session = self.session
        if m.passive and m.queue.startswith(REPLY_TO):
            self._declare_reply_queue(m)
            return
        if m.passive:
            # no "last declared queue" shortcut here, as in RabbitMQ
            queue = vhost.get_queue(m.queue, session)
        else:
            if m.queue:
                name = m.queue
                vhost.check_queue_name(name)
            else:
                refuse_server_named(m.arguments)
                name = generate_name("amq.gen-")
            self._check("configure", "queue", name)
            dlx = (m.arguments or {}).get("x-dead-letter-exchange")
            if isinstance(dlx, str) and name not in vhost.queues:
                self._check("read", "queue", name)
                self._check("write", "exchange", dlx)
            queue, created = vhost.declare_queue(
                name,
                durable=m.durable,
                exclusive=m.exclusive,
                auto_delete=m.auto_delete,
                arguments=m.arguments,
                owner=session,
            )
            if created and queue.owner is session:
                session.own_queue(queue)
        self.last_queue = queue.name
        if not m.no_wait:
            self._reply_stored(
                spec.QueueDeclareOk(queue.name, len(queue.ready), queue.consumer_count),
                queue.durable,
            )

    def queue_bind(self, m: spec.QueueBind) -> None:
        vhost = self.vhost
        name = self._queue_name(m.queue)
        routing_key = m.routing_key
        if not routing_key and not m.queue:
            routing_key = name
        self._check_binding("queue", name, m.exchange)
        exchange = vhost.get_exchange(m.exchange)
        self._check_topic(exchange, "read", routing_key)
        queue = vhost.get_queue(name, self.session)
        vhost.bind(exchange, queue, routing_key, m.arguments)
        if not m.no_wait:
            self._reply_stored(spec.QueueBindOk(), exchange.durable and queue.durable)

    def queue_unbind(self, m: spec.QueueUnbind) -> None:
        vhost = self.vhost
        name = self._queue_name(m.queue)
        self._check_binding("queue", name, m.exchange)
        exchange = vhost.exchanges.get(m.exchange)
        if exchange is not None:
            self._check_topic(exchange, "read", m.routing_key)
        queue = vhost.queues.get(name)
        durable = False
        if exchange is not None and queue is not None:
            if queue.owner is not None and queue.owner is not self.session:
                raise vhost.locked(name)
            vhost.unbind(exchange, queue, m.routing_key, m.arguments)
            durable = exchange.durable and queue.durable
        self._reply_stored(spec.QueueUnbindOk(), durable)

    def queue_purge(self, m: spec.QueuePurge) -> None:
        name = self._queue_name(m.queue)
        self._check("read", "queue", name)
        queue = self.vhost.get_queue(name, self.session)
        count = queue.purge()
        if not m.no_wait:
            self.send(spec.QueuePurgeOk(count))

    def queue_delete(self, m: spec.QueueDelete) -> None:
        name = self._queue_name(m.queue)
        self._check("configure", "queue", name)
        queue = self.vhost.queues.get(name)
        count = 0
        if queue is not None:
            if queue.owner is not None and queue.owner is not self.session:
                raise self.vhost.locked(name)
            count = self.vhost.delete_queue(queue, if_unused=m.if_unused, if_empty=m.if_empty)
        if not m.no_wait:
            self._reply_stored(spec.QueueDeleteOk(count), queue is not None and queue.durable)
