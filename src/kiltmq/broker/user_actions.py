"""What a user does to a vhost outside AMQP (the management API), as that user.

Declaring and deleting exchanges and queues, binding, publishing and basic.get-ing go
through the vhost as a channel's methods do, with the same permission checks (the user's
configure, write and read regexes) and the same failures: the :mod:`AMQP errors
<kiltmq.protocol.errors>` a channel would be closed with (404 NOT_FOUND, 403
ACCESS_REFUSED, 406 PRECONDITION_FAILED...). An unknown vhost is
:class:`~kiltmq.broker.admin.NotFound`. Run on the broker's loop.

Publishes and gets count in the vhost's message counters (and the queues') as they do in
RabbitMQ, whose management API makes them on a channel of its own: a publish as a
mandatory one in confirm mode, a get as basic.get (without acknowledgement for
``ack_requeue_false``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kiltmq.broker.admin import ManagedBroker, NotFound
from kiltmq.broker.auth import topic_refused
from kiltmq.broker.channel.publishing import Publishing
from kiltmq.broker.message import FLAG_EXPIRATION, FLAG_USER_ID, Message
from kiltmq.protocol.errors import AccessRefused, PreconditionFailed
from kiltmq.protocol.spec import BasicProperties

if TYPE_CHECKING:
    from kiltmq.broker.exchange import Exchange
    from kiltmq.broker.queue import Entry, Queue
    from kiltmq.broker.vhost import VirtualHost

__all__ = ["ACK_MODES", "Fetched", "TopicAccessRefused", "UserActions"]

#: basic.get's settlement modes: (acknowledge, requeue), as the management API names them.
ACK_MODES: Mapping[str, tuple[bool, bool]] = {
    "ack_requeue_true": (False, True),
    "ack_requeue_false": (True, False),
    "reject_requeue_true": (False, True),
    "reject_requeue_false": (False, False),
}


class TopicAccessRefused(AccessRefused):
    """403 for a routing key the user's topic permission does not allow: RabbitMQ's
    management API learns it from the channel it acts on, not from its own checks."""


def _count(host: VirtualHost, **counts: int) -> None:
    """Add to the vhost's message counters (those of its closed channels, see
    ``ChannelState.COUNTERS``) what a channel doing the same would have counted."""
    totals = host.closed_channel_counts
    for name, value in counts.items():
        if value:
            totals[name] = totals.get(name, 0) + value


@dataclass(frozen=True)
class Fetched:
    """A message taken with basic.get."""

    exchange: str
    routing_key: str
    properties: BasicProperties
    body: bytes
    redelivered: bool
    #: Ready messages left in the queue after this one was taken.
    message_count: int


class UserActions:
    """Act on the broker's vhosts as ``user`` (on the broker's loop)."""

    def __init__(self, broker: ManagedBroker, user: str) -> None:
        self.broker = broker
        self.user = user

    def vhost(self, name: str) -> VirtualHost:
        vhost = self.broker.vhosts.get(name)
        if vhost is None:
            raise NotFound(f"no such vhost '{name}'")
        return vhost

    def queue_to(self, action: str, vhost: str, queue: str) -> Queue:
        """The queue ``queue`` of ``vhost`` if the user may ``action`` ("read" or "write")
        it."""
        host = self.vhost(vhost)
        self._check(host, action, "queue", queue)
        return host.get_queue(queue)

    def _check(self, vhost: VirtualHost, action: str, kind: str, name: str) -> None:
        permission = self.broker.auth.permission(self.user, vhost.name)
        if permission is None or not permission.allows(action, name):
            raise AccessRefused(
                f"ACCESS_REFUSED - access to {kind} '{name}' in vhost '{vhost.name}' "
                f"refused for user '{self.user}'"
            )

    def _check_topic(
        self, vhost: VirtualHost, exchange: Exchange, action: str, routing_key: str
    ) -> None:
        """403 unless the user's topic permission for ``exchange`` (a topic exchange
        with one) allows ``action`` with ``routing_key``, as on a channel."""
        if exchange.TYPE != "topic":
            return
        topics = self.broker.auth.topic_permission(self.user, vhost.name)
        topic = None if topics is None else topics.get(exchange.name)
        if topic is not None and not topic.allows(action, routing_key):
            raise TopicAccessRefused(
                topic_refused(routing_key, exchange.name, vhost.name, self.user)
            )

    # -- exchanges ------------------------------------------------------------------------

    def declare_exchange(
        self,
        vhost: str,
        name: str,
        type_name: str,
        *,
        durable: bool = True,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        host = self.vhost(vhost)
        self._check(host, "configure", "exchange", name or "amq.default")
        host.declare_exchange(
            name, type_name, durable=durable, auto_delete=auto_delete, internal=internal,
            arguments=arguments,
        )

    def delete_exchange(self, vhost: str, name: str, *, if_unused: bool = False) -> None:
        host = self.vhost(vhost)
        self._check(host, "configure", "exchange", name or "amq.default")
        host.delete_exchange(name, if_unused=if_unused)

    # -- queues ---------------------------------------------------------------------------

    def declare_queue(
        self,
        vhost: str,
        name: str,
        *,
        durable: bool = True,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> bool:
        """Declare a queue (never exclusive: it would have no connection to belong to);
        True if it was created."""
        host = self.vhost(vhost)
        host.check_queue_name(name)
        self._check(host, "configure", "queue", name)
        _queue, created = host.declare_queue(
            name, durable=durable, auto_delete=auto_delete, arguments=arguments
        )
        return created

    def delete_queue(
        self, vhost: str, name: str, *, if_unused: bool = False, if_empty: bool = False
    ) -> int:
        """Delete a queue (405 for one exclusive to a connection); the number of ready
        messages it had."""
        host = self.vhost(vhost)
        self._check(host, "configure", "queue", name)
        queue = host.get_queue(name)
        return host.delete_queue(queue, if_unused=if_unused, if_empty=if_empty)

    def purge_queue(self, vhost: str, name: str) -> int:
        host = self.vhost(vhost)
        self._check(host, "read", "queue", name)
        return host.get_queue(name).purge()

    # -- bindings -------------------------------------------------------------------------

    def bind(
        self,
        vhost: str,
        source: str,
        kind: str,
        destination: str,
        routing_key: str,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        """Bind ``destination`` (``kind`` "queue" or "exchange") to exchange ``source``."""
        self._binding(True, vhost, source, kind, destination, routing_key, arguments)

    def unbind(
        self,
        vhost: str,
        source: str,
        kind: str,
        destination: str,
        routing_key: str,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        """Remove the binding that :meth:`bind` with the same arguments made."""
        self._binding(False, vhost, source, kind, destination, routing_key, arguments)

    def _binding(
        self,
        add: bool,
        vhost: str,
        source: str,
        kind: str,
        destination: str,
        routing_key: str,
        arguments: dict[str, Any] | None,
    ) -> None:
        host = self.vhost(vhost)
        self._check(host, "write", kind, destination)
        self._check(host, "read", "exchange", source or "amq.default")
        exchange = host.get_exchange(source)
        self._check_topic(host, exchange, "read", routing_key)
        target = host.get_queue(destination) if kind == "queue" else host.get_exchange(destination)
        (host.bind if add else host.unbind)(exchange, target, routing_key, arguments)

    # -- messages -------------------------------------------------------------------------

    def publish(
        self,
        vhost: str,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: BasicProperties | None = None,
    ) -> bool:
        """Publish a message; whether it reached a queue. As on a channel, 406 for an
        invalid expiration or a user_id that is not the user's; ValueError (or
        struct.error) for properties that cannot be encoded."""
        host = self.vhost(vhost)
        target = host.exchanges.get(exchange)
        if target is None:
            raise host.not_found("exchange", exchange)
        self._check(host, "write", "exchange", exchange or "amq.default")
        if target.internal:
            raise AccessRefused(
                f"ACCESS_REFUSED - cannot publish to internal "
                f"{host.describe('exchange', exchange)}"
            )
        self._check_topic(host, target, "write", routing_key)
        message = Message.build(exchange, routing_key, body, properties or BasicProperties())
        if message.flags & FLAG_EXPIRATION:
            Publishing._check_expiration(message)
        if message.flags & FLAG_USER_ID:
            user_id = message.user_id()
            user = self.broker.auth.users.get(self.user)
            if user_id != self.user and (user is None or "impersonator" not in user.tags):
                raise PreconditionFailed(
                    f"PRECONDITION_FAILED - user_id property set to '{user_id}' but "
                    f"authenticated user was '{self.user}'"
                )
        queues = host.route(target, message)
        target.publish_in += 1
        if not queues:
            target.unrouted += 1
        for queue in queues:
            queue.publish(message)
        # as RabbitMQ's management publishes: mandatory, in confirm mode
        _count(host, published=1, publish_seq=1, confirmed=1, returned=0 if queues else 1)
        return bool(queues)

    def get(self, vhost: str, queue: str, count: int, ackmode: str) -> list[Fetched]:
        """Take up to ``count`` messages with basic.get, then settle them as ``ackmode``
        (a key of :data:`ACK_MODES`) says: acknowledge, requeue (they come back marked
        redelivered) or reject (dead-lettered where the queue says so)."""
        acknowledge, requeue = ACK_MODES[ackmode]
        host = self.vhost(vhost)
        self._check(host, "read", "queue", queue)
        target = host.get_queue(queue)
        taken: list[Entry] = []
        fetched: list[Fetched] = []
        got = redelivered = 0
        for _ in range(count):
            entry = target.get()
            if entry is None:
                _count(host, got_empty=1)
                break
            got += 1
            if entry.redelivered:
                redelivered += 1
            taken.append(entry)
            message = entry.message
            fetched.append(
                Fetched(
                    message.exchange,
                    message.routing_key,
                    message.properties,
                    message.body,
                    entry.redelivered,
                    len(target.ready),
                )
            )
        # counted as RabbitMQ's management gets them: basic.get, with no_ack for
        # ack_requeue_false
        target.redelivered += redelivered
        _count(host, got=got, delivery_tag=got, redelivered=redelivered,
               no_ack_got=got if acknowledge else 0)
        if acknowledge:
            target.no_ack_got += got
            for entry in taken:
                target.ack(entry)
        elif requeue:
            target.requeue(taken)
        else:
            for entry in taken:
                target.reject(entry, False)
        return fetched
