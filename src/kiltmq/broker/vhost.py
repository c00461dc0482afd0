"""A virtual host: its exchanges, queues and bindings, with RabbitMQ's rules for declaring
and deleting them, and message routing across exchange-to-exchange bindings.

Errors are raised as :mod:`kiltmq.protocol.errors` exceptions whose reply text is
RabbitMQ's, prefixed with the reply name as RabbitMQ does ("NOT_FOUND - no queue 'q' in
vhost '/'"); the channel adds the class and method ids. Permission checks are the
channel's job (it knows the user); exclusivity and equivalence are checked here.

Durable definitions and persistent messages are reported to the store (see
:mod:`kiltmq.broker.store`) and recreated from it (:mod:`~kiltmq.broker.vhost_recovery`);
messages that die in a queue are counted and republished by
:class:`~kiltmq.broker.dead_letter.VhostDeadLetters`.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable, Mapping
from typing import Any

from kiltmq.broker.churn import Churn
from kiltmq.broker.clock import Clock
from kiltmq.broker.dead_letter import VhostDeadLetters
from kiltmq.broker.declaration import (
    EXCHANGE_EQUIVALENCE_ARGS,
    QUEUE_EQUIVALENCE_ARGS,
    check_args,
    check_dead_letter_exchange,
    check_flags,
    check_queue_type,
    check_type_args,
    validate_exchange_args,
)
from kiltmq.broker.exchange import (
    EXCHANGE_TYPES,
    Binding,
    DefaultExchange,
    Destination,
    Exchange,
    arguments_key,
)
from kiltmq.broker.message import Message
from kiltmq.broker.policies import VhostPolicies
from kiltmq.broker.queue import QUEUE_CLASSES, Queue
from kiltmq.broker.reply_target import ReplyTarget
from kiltmq.broker.store import MemoryStore, Store
from kiltmq.broker.vhost_limits import connection_refused, parse_limits, queue_refused
from kiltmq.broker.vhost_metadata import VhostMetadata
from kiltmq.broker.vhost_recovery import VhostRecovery
from kiltmq.protocol.codec import FieldTable
from kiltmq.protocol.errors import (
    AccessRefused,
    CommandInvalid,
    NotFound,
    PreconditionFailed,
    ResourceLocked,
)

__all__ = ["VirtualHost", "generate_name"]

STANDARD_EXCHANGES = (
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
)


def generate_name(prefix: str) -> str:
    """A server-generated name as RabbitMQ makes them: ``amq.gen-`` or ``amq.ctag-`` plus
    22 url-safe base64 characters of randomness."""
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")


def _limit(value: int | None) -> int | None:
    """A limit as checked: None for none (absent or negative)."""
    return None if value is None or value < 0 else value


def _default_exchange_refused() -> AccessRefused:
    return AccessRefused("ACCESS_REFUSED - operation not permitted on the default exchange")


class VirtualHost(VhostDeadLetters, VhostRecovery):
    """Exchanges, queues and bindings of one vhost."""

    def __init__(self, name: str, store: Store | None = None, clock: Clock | None = None) -> None:
        self.name = name
        #: The broker's clock: TTLs, queue expiry and x-death times follow it.
        self.clock = clock if clock is not None else Clock()
        self.store = store if store is not None else MemoryStore()
        self.queues: dict[str, Queue] = {}
        self.default_exchange = DefaultExchange(self.queues)
        self.exchanges: dict[str, Exchange] = {"": self.default_exchange}
        #: Bindings by destination (queue or exchange), for deletion.
        self.incoming: dict[Destination, dict[tuple[Exchange, Any], Binding]] = {}
        #: Direct reply-to: reply routing keys -> the requesting channel's reply target.
        self.reply_targets: dict[str, ReplyTarget] = {}
        #: Limits as set (``max-connections``, ``max-queues``), and the open connections.
        self.limits: dict[str, int] = {}
        self.max_connections: int | None = None
        self.max_queues: int | None = None
        self.connections = 0
        #: Message counters of the channels that were open on this vhost and closed
        #: (see ``ChannelState.COUNTERS``), for monitoring.
        self.closed_channel_counts: dict[str, int] = {}
        self.metadata = VhostMetadata()
        #: Connections, channels and queues made and gone (the broker's, once added).
        self.churn = Churn()
        #: Messages that died here, by (reason, whether the queue has a dead-letter exchange).
        self.dead_lettered: dict[tuple[str, bool], int] = {}
        for xname, xtype in STANDARD_EXCHANGES:
            self.exchanges[xname] = EXCHANGE_TYPES[xtype](xname, durable=True)
        #: Policies and operator policies (see :mod:`kiltmq.broker.policies`).
        self.policies = VhostPolicies(name, self.store, self.queues, self.exchanges)

    # -- time ---------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.time()

    def wall(self) -> float:
        return self.clock.wall()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self.clock.call_at(when, callback)

    # -- names ----------------------------------------------------------------------------

    def describe(self, kind: str, name: str) -> str:
        return f"{kind} '{name}' in vhost '{self.name}'"

    def not_found(self, kind: str, name: str) -> NotFound:
        return NotFound(f"NOT_FOUND - no {kind} '{name}' in vhost '{self.name}'")

    # -- limits ---------------------------------------------------------------------------

    def set_limits(self, limits: Mapping[str, Any], *, store: bool = True) -> None:
        """Replace the vhost's limits (empty: none), as ``rabbitmqctl set_vhost_limits``;
        VhostLimitError if they are not valid. Kept in the store."""
        checked = parse_limits(limits)
        self.limits = checked
        self.max_connections = _limit(checked.get("max-connections"))
        self.max_queues = _limit(checked.get("max-queues"))
        if store:
            if checked:
                self.store.definition_added(self.name, "limits", {"name": "limits", **checked})
            else:
                self.store.definition_removed(self.name, "limits", {"name": "limits"})

    def set_metadata(self, metadata: VhostMetadata) -> None:
        """Replace the description, tags and default queue type; kept in the store."""
        self.metadata = metadata
        self.store.definition_added(self.name, metadata.KIND, metadata.record())

    def check_connection(self, user: str) -> None:
        """Raise 530 if one more connection of ``user`` would be over
        ``max-connections``."""
        limit = self.max_connections
        if limit is not None and self.connections >= limit:
            raise connection_refused(self.name, user, limit)

    def open_connection(self, user: str) -> None:
        """Count a connection of ``user`` opening this vhost (530 over
        ``max-connections``)."""
        self.check_connection(user)
        self.connections += 1

    def close_connection(self) -> None:
        self.connections -= 1

    # -- exchanges ------------------------------------------------------------------------

    def check_exchange_type(self, type_name: str) -> type[Exchange]:
        cls = EXCHANGE_TYPES.get(type_name)
        if cls is None:
            raise CommandInvalid(f"COMMAND_INVALID - unknown exchange type '{type_name}'")
        return cls

    def get_exchange(self, name: str) -> Exchange:
        """The exchange ``name`` (404 if missing; 403 for the default exchange, which may
        only be published to)."""
        if name == "":
            raise _default_exchange_refused()
        exchange = self.exchanges.get(name)
        if exchange is None:
            raise self.not_found("exchange", name)
        return exchange

    def declare_exchange(
        self,
        name: str,
        type_name: str,
        *,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: FieldTable | None = None,
    ) -> Exchange:
        """Declare (create, or check equivalence with) an exchange. Not passive: use
        :meth:`get_exchange` for that."""
        cls = self.check_exchange_type(type_name)
        if name == "":
            raise _default_exchange_refused()
        exchange = self.exchanges.get(name)
        if exchange is None:
            if name.startswith("amq."):
                raise AccessRefused(
                    f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"
                )
            validate_exchange_args(self.describe("exchange", name), arguments)
            exchange = cls(
                name, durable=durable, auto_delete=auto_delete, internal=internal,
                arguments=arguments,
            )
            self.exchanges[name] = exchange
            self.policies.apply_exchange(exchange)
            if durable:
                self.store.definition_added(self.name, "exchange", exchange.definition())
            return exchange
        what = self.describe("exchange", name)
        if type_name != exchange.TYPE:
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - inequivalent arg 'type' for {what}: "
                f"received '{type_name}' but current is '{exchange.TYPE}'"
            )
        check_flags(
            what,
            ("durable", durable, exchange.durable),
            ("auto_delete", auto_delete, exchange.auto_delete),
            ("internal", internal, exchange.internal),
        )
        check_args(what, EXCHANGE_EQUIVALENCE_ARGS, arguments, exchange.arguments)
        return exchange

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        if name == "":
            raise _default_exchange_refused()
        if name.startswith("amq."):
            raise AccessRefused(
                f"ACCESS_REFUSED - deletion of system {self.describe('exchange', name)} not allowed"
            )
        exchange = self.exchanges.get(name)
        if exchange is None:
            return
        if if_unused and exchange.bindings:
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - {self.describe('exchange', name)} in use"
            )
        self._remove_exchange(exchange)

    def _remove_exchange(self, exchange: Exchange) -> None:
        if exchange.deleted:
            return
        exchange.deleted = True
        self.exchanges.pop(exchange.name, None)
        for binding in list(exchange.bindings.values()):
            self._unbind(binding, auto_delete=False)
        for binding in list(self.incoming.get(exchange, {}).values()):
            self._unbind(binding)
        self.incoming.pop(exchange, None)
        if exchange.durable:
            self.store.definition_removed(self.name, "exchange", exchange.definition())

    # -- queues ---------------------------------------------------------------------------

    def get_queue(self, name: str, owner: object | None = None) -> Queue:
        """The queue ``name`` for use by ``owner``'s connection: 404 if missing, 405 if it
        is exclusive to another connection."""
        queue = self.queues.get(name)
        if queue is None:
            raise self.not_found("queue", name)
        if queue.owner is not None and queue.owner is not owner:
            raise self.locked(name)
        return queue

    def locked(self, name: str) -> ResourceLocked:
        return ResourceLocked(
            f"RESOURCE_LOCKED - cannot obtain exclusive access to locked "
            f"{self.describe('queue', name)}. It could be originally declared on another "
            "connection or the exclusive property value does not match that of the original "
            "declaration."
        )

    def check_queue_name(self, name: str) -> None:
        if name.startswith("amq."):
            raise AccessRefused(
                f"ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'"
            )

    def declare_queue(
        self,
        name: str,
        *,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: FieldTable | None = None,
        owner: object | None = None,
    ) -> tuple[Queue, bool]:
        """Declare a queue (not passive: use :meth:`get_queue`). ``owner`` is the declaring
        connection. Returns the queue and whether it was created."""
        owner_declared = owner if exclusive else None
        self.churn.queue_declared += 1
        queue = self.queues.get(name)
        declared_durable = durable
        durable = durable and not exclusive  # RabbitMQ: exclusive queues are transient
        if queue is not None:
            if queue.owner is not owner_declared:
                raise self.locked(name)
            what = self.describe("queue", name)
            check_flags(
                what,
                ("durable", durable, queue.durable),
                ("auto_delete", auto_delete, queue.auto_delete),
            )
            check_args(what, QUEUE_EQUIVALENCE_ARGS, arguments, queue.arguments)
            check_type_args(what, arguments, queue.arguments)
            queue.touch()
            return queue, False
        if self.max_queues is not None and len(self.queues) >= self.max_queues:
            raise queue_refused(self.name, name, self.max_queues)
        what = self.describe("queue", name)
        args = dict(arguments or {})
        check_dead_letter_exchange(what, args)
        kind = check_queue_type(
            what, args, durable=declared_durable, exclusive=exclusive,
            auto_delete=auto_delete,
        )
        queue = QUEUE_CLASSES[kind](
            self, name, durable=durable, auto_delete=auto_delete, owner=owner_declared,
            arguments=args,
        )
        self.queues[name] = queue
        self.churn.queue_created += 1
        self.policies.apply_queue(queue)
        if durable:
            self.store.definition_added(self.name, "queue", queue.definition())
        queue.touch()
        return queue, True

    def delete_queue(
        self, queue: Queue, *, if_unused: bool = False, if_empty: bool = False
    ) -> int:
        """Delete ``queue``; returns the number of ready messages it had."""
        if queue.deleted:
            return 0
        if if_unused and queue.consumers:
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - {self.describe('queue', queue.name)} in use"
            )
        if if_empty and queue.ready:
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - {self.describe('queue', queue.name)} not empty"
            )
        if self.queues.get(queue.name) is queue:
            del self.queues[queue.name]
            self.churn.queue_deleted += 1
        for binding in list(self.incoming.get(queue, {}).values()):
            self._unbind(binding)
        self.incoming.pop(queue, None)
        count = queue.destroy()
        if queue.durable:
            self.store.definition_removed(self.name, "queue", queue.definition())
        return count

    # -- bindings -------------------------------------------------------------------------

    def bind(
        self,
        source: Exchange,
        destination: Destination,
        routing_key: str,
        arguments: FieldTable | None = None,
    ) -> None:
        source.validate_binding(routing_key, arguments)
        binding = Binding(source, destination, routing_key, arguments)
        if self._add_binding(binding) and source.durable and destination.durable:
            self.store.definition_added(self.name, "binding", binding.definition())

    def _add_binding(self, binding: Binding) -> bool:
        """Add ``binding`` to its source and to :attr:`incoming`; False if it exists."""
        if not binding.source.add_binding(binding):
            return False
        incoming = self.incoming.setdefault(binding.destination, {})
        incoming[(binding.source, binding.key)] = binding
        return True

    def unbind(
        self,
        source: Exchange,
        destination: Destination,
        routing_key: str,
        arguments: FieldTable | None = None,
    ) -> None:
        binding = source.bindings.get((destination, routing_key, arguments_key(arguments)))
        if binding is not None:
            self._unbind(binding)

    def _unbind(self, binding: Binding, *, auto_delete: bool = True) -> None:
        source = binding.source
        if source.remove_binding(binding.key) is None:
            return
        destination = binding.destination
        incoming = self.incoming.get(destination)
        if incoming is not None:
            incoming.pop((source, binding.key), None)
        if source.durable and destination.durable:
            self.store.definition_removed(self.name, "binding", binding.definition())
        if auto_delete and source.auto_delete and not source.bindings:
            self._remove_exchange(source)

    # -- routing --------------------------------------------------------------------------

    def route(self, exchange: Exchange, message: Message) -> tuple[Queue, ...]:
        """The queues ``message`` goes to, following exchange-to-exchange bindings and
        alternate exchanges, each queue once."""
        destinations = exchange.route(message)
        if not exchange.exchange_destinations and (destinations or exchange.alternate is None):
            return destinations  # type: ignore[return-value]  # only queues here
        return self._route_graph(exchange, message)

    def _route_graph(self, exchange: Exchange, message: Message) -> tuple[Queue, ...]:
        queues: dict[Destination, None] = {}
        seen = {exchange}
        pending = [exchange]
        while pending:
            current = pending.pop()
            destinations = current.route(message)
            if not destinations and current.alternate is not None:
                alternate = self.exchanges.get(current.alternate)
                if alternate is not None and alternate not in seen:
                    seen.add(alternate)
                    pending.append(alternate)
                continue
            for dest in destinations:
                if isinstance(dest, Exchange):
                    if dest not in seen:
                        seen.add(dest)
                        pending.append(dest)
                else:
                    queues[dest] = None
        return tuple(queues)  # type: ignore[arg-type]  # a vhost binds only its own queues
