"""A virtual host: its exchanges, queues and bindings, with RabbitMQ's rules for declaring
and deleting them, and message routing across exchange-to-exchange bindings.

Errors are raised as :mod:`kiltmq.protocol.errors` exceptions whose reply text is
RabbitMQ's, prefixed with the reply name as RabbitMQ does ("NOT_FOUND - no queue 'q' in
vhost '/'"); the channel adds the class and method ids. Permission checks are the
channel's job (it knows the user); exclusivity and equivalence are checked here.

Durable definitions and persistent messages are reported to the store (see
:mod:`kiltmq.broker.store`).
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kiltmq.broker.exchange import (
    EXCHANGE_TYPES,
    Binding,
    DefaultExchange,
    Destination,
    Exchange,
    HeadersExchange,
    arguments_key,
)
from kiltmq.broker.message import Message
from kiltmq.broker.queue import Entry, Queue
from kiltmq.broker.store import Definition, MemoryStore, Store
from kiltmq.protocol.codec import FieldTable
from kiltmq.protocol.errors import (
    AccessRefused,
    CommandInvalid,
    NotFound,
    PreconditionFailed,
    ResourceLocked,
)
from kiltmq.protocol.spec import BasicProperties

if TYPE_CHECKING:
    from kiltmq.broker.channel import ReplyTarget

__all__ = ["VirtualHost", "generate_name"]

STANDARD_EXCHANGES = (
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
)

# Queue arguments RabbitMQ compares when a queue is redeclared.
_EQUIVALENCE_ARGS = (
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
)
_OVERFLOW = ("drop-head", "reject-publish", "reject-publish-dlx")


def generate_name(prefix: str) -> str:
    """A server-generated name as RabbitMQ makes them: ``amq.gen-`` or ``amq.ctag-`` plus
    22 url-safe base64 characters of randomness."""
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _check_flags(what: str, *flags: tuple[str, bool, bool]) -> None:
    """A redeclaration must repeat the flags (name, received, current) it was declared
    with: 406 otherwise, in RabbitMQ's words."""
    for arg, received, current in flags:
        if received != current:
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - inequivalent arg '{arg}' for {what}: "
                f"received '{_bool(received)}' but current is '{_bool(current)}'"
            )


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "longstr"
    if isinstance(value, bytes):
        return "binary"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    return "void" if value is None else type(value).__name__


def _describe(value: Any) -> str:
    return f"the value '{value}' of type '{_type_name(value)}'"


class VirtualHost:
    """Exchanges, queues and bindings of one vhost."""

    def __init__(self, name: str, store: Store | None = None) -> None:
        self.name = name
        self.store = store if store is not None else MemoryStore()
        self.queues: dict[str, Queue] = {}
        self.default_exchange = DefaultExchange(self.queues)
        self.exchanges: dict[str, Exchange] = {"": self.default_exchange}
        #: Bindings by destination (queue or exchange), for deletion.
        self.incoming: dict[Destination, dict[tuple[Exchange, Any], Binding]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        #: Direct reply-to: reply routing keys -> the requesting channel's reply target.
        self.reply_targets: dict[str, ReplyTarget] = {}
        for xname, xtype in STANDARD_EXCHANGES:
            self.exchanges[xname] = EXCHANGE_TYPES[xtype](xname, durable=True)

    # -- time ---------------------------------------------------------------------------

    def now(self) -> float:
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()
        return loop.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()
        return loop.call_at(when, callback)

    # -- names ----------------------------------------------------------------------------

    def describe(self, kind: str, name: str) -> str:
        return f"{kind} '{name}' in vhost '{self.name}'"

    def not_found(self, kind: str, name: str) -> NotFound:
        return NotFound(f"NOT_FOUND - no {kind} '{name}' in vhost '{self.name}'")

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
            raise AccessRefused("ACCESS_REFUSED - operation not permitted on the default exchange")
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
            raise AccessRefused("ACCESS_REFUSED - operation not permitted on the default exchange")
        exchange = self.exchanges.get(name)
        if exchange is None:
            if name.startswith("amq."):
                raise AccessRefused(
                    f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"
                )
            alternate = (arguments or {}).get("alternate-exchange")
            if alternate is not None and not isinstance(alternate, str):
                raise PreconditionFailed(
                    f"PRECONDITION_FAILED - invalid arg 'alternate-exchange' for "
                    f"{self.describe('exchange', name)}: expected a string"
                )
            exchange = cls(
                name, durable=durable, auto_delete=auto_delete, internal=internal,
                arguments=arguments,
            )
            self.exchanges[name] = exchange
            if durable:
                self.store.definition_added(self.name, "exchange", exchange.definition())
            return exchange
        what = self.describe("exchange", name)
        if type_name != exchange.TYPE:
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - inequivalent arg 'type' for {what}: "
                f"received '{type_name}' but current is '{exchange.TYPE}'"
            )
        _check_flags(
            what,
            ("durable", durable, exchange.durable),
            ("auto_delete", auto_delete, exchange.auto_delete),
            ("internal", internal, exchange.internal),
        )
        self._check_args(what, ("alternate-exchange",), arguments, exchange.arguments)
        return exchange

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        if name == "":
            raise AccessRefused("ACCESS_REFUSED - operation not permitted on the default exchange")
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
        durable = durable and not exclusive  # RabbitMQ: exclusive queues are transient
        queue = self.queues.get(name)
        if queue is not None:
            if queue.owner is not owner_declared:
                raise self.locked(name)
            what = self.describe("queue", name)
            _check_flags(
                what,
                ("durable", durable, queue.durable),
                ("auto_delete", auto_delete, queue.auto_delete),
            )
            self._check_args(what, _EQUIVALENCE_ARGS, arguments, queue.arguments)
            queue.touch()
            return queue, False
        args = dict(arguments or {})
        self._validate_queue_args(name, args)
        queue = Queue(
            self, name, durable=durable, auto_delete=auto_delete, owner=owner_declared,
            arguments=args,
        )
        self.queues[name] = queue
        if durable:
            self.store.definition_added(self.name, "queue", queue.definition())
        queue.touch()
        return queue, True

    def _validate_queue_args(self, name: str, args: dict[str, Any]) -> None:
        what = self.describe("queue", name)

        def invalid(arg: str, reason: str) -> PreconditionFailed:
            return PreconditionFailed(
                f"PRECONDITION_FAILED - invalid arg '{arg}' for {what}: {reason}"
            )

        for arg, minimum in (
            ("x-message-ttl", 0),
            ("x-expires", 1),
            ("x-max-length", 0),
            ("x-max-length-bytes", 0),
            ("x-max-priority", 0),
        ):
            if arg not in args:
                continue
            value = args[arg]
            if not isinstance(value, int) or isinstance(value, bool):
                raise invalid(arg, f'"expected integer, got {_type_name(value)}"')
            if value < minimum:
                raise invalid(arg, f"{{value_{'zero' if value == 0 else 'negative'},{value}}}")
        for arg in ("x-dead-letter-exchange", "x-dead-letter-routing-key"):
            if arg in args and not isinstance(args[arg], str):
                raise invalid(arg, f'"expected string, got {_type_name(args[arg])}"')
        if "x-dead-letter-routing-key" in args and "x-dead-letter-exchange" not in args:
            raise invalid("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined")
        overflow = args.get("x-overflow")
        if overflow is not None and overflow not in _OVERFLOW:
            raise invalid("x-overflow", "invalid_overflow")
        priority = args.get("x-max-priority")
        if priority is not None and priority > 255:
            raise invalid("x-max-priority", f"{{max_value_exceeded,{priority}}}")

    def _check_args(
        self,
        what: str,
        names: tuple[str, ...],
        received_args: FieldTable | None,
        current_args: FieldTable,
    ) -> None:
        received_args = received_args or {}
        for arg in names:
            received = received_args.get(arg)
            current = current_args.get(arg)
            if received == current and type(received) is type(current):
                continue
            if received is None:
                detail = f"received none but current is {_describe(current)}"
            elif current is None:
                detail = f"received {_describe(received)} but current is none"
            else:
                detail = f"received '{received}' but current is '{current}'"
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - inequivalent arg '{arg}' for {what}: {detail}"
            )

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
        if source.add_binding(binding):
            self.incoming.setdefault(destination, {})[(source, binding.key)] = binding
            if source.durable and destination.durable:
                self.store.definition_added(self.name, "binding", binding.definition())

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
        queues: dict[Queue, None] = {}
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
        return tuple(queues)

    # -- dead-lettering -------------------------------------------------------------------

    def dead_letter(self, queue: Queue, message: Message, reason: str) -> None:
        """Republish a message that died in ``queue`` (rejected, expired, maxlen) to the
        queue's dead-letter exchange, with RabbitMQ's x-death headers."""
        dlx_name = queue.dead_letter_exchange
        if dlx_name is None:
            return
        exchange = self.exchanges.get(dlx_name)
        if exchange is None:
            return
        try:
            props = message.properties
        except (ValueError, IndexError):
            return
        headers: dict[str, Any] = dict(props.headers or {})
        deaths: list[Any] = list(headers.get("x-death") or [])
        routing_key = queue.dead_letter_routing_key or message.routing_key
        previous = None
        for i, old in enumerate(deaths):
            if (
                isinstance(old, dict)
                and old.get("queue") == queue.name
                and old.get("reason") == reason
            ):
                previous = deaths.pop(i)
                break
        death: dict[str, Any] = {
            "count": (previous.get("count", 1) + 1) if previous else 1,
            "reason": reason,
            "queue": queue.name,
            "time": datetime.now(UTC).replace(microsecond=0),
            "exchange": message.exchange,
            "routing-keys": [message.routing_key],
        }
        if props.expiration is not None:
            death["original-expiration"] = props.expiration
        deaths.insert(0, death)
        headers["x-death"] = deaths
        if "x-first-death-reason" not in headers:
            headers["x-first-death-reason"] = reason
            headers["x-first-death-queue"] = queue.name
            headers["x-first-death-exchange"] = message.exchange
        new_props = BasicProperties(**{f: getattr(props, f) for f in BasicProperties.FIELDS})
        new_props.headers = headers
        new_props.expiration = None
        dead = Message.build(dlx_name, routing_key, message.body, new_props)
        # RabbitMQ drops a message that would cycle back into a queue it died in
        # automatically (with no rejection along the way).
        died_in = {d.get("queue") for d in deaths if isinstance(d, dict)}
        rejected = any(isinstance(d, dict) and d.get("reason") == "rejected" for d in deaths)
        for target in self.route(exchange, dead):
            if target.name in died_in and not rejected:
                continue
            target.publish(dead)

    # -- recovery ---------------------------------------------------------------------------

    def restore(self, kind: str, definition: Definition) -> None:
        """Recreate a durable definition from the store (at start)."""
        if kind == "exchange":
            if definition["name"] in self.exchanges:
                return
            cls = EXCHANGE_TYPES.get(definition["type"], HeadersExchange)
            exchange = cls(
                definition["name"],
                durable=True,
                auto_delete=definition.get("auto_delete", False),
                internal=definition.get("internal", False),
                arguments=definition.get("arguments"),
            )
            self.exchanges[exchange.name] = exchange
        elif kind == "queue":
            if definition["name"] in self.queues:
                return
            self.queues[definition["name"]] = Queue(
                self,
                definition["name"],
                durable=True,
                auto_delete=definition.get("auto_delete", False),
                arguments=definition.get("arguments"),
            )
        elif kind == "binding":
            source = self.exchanges.get(definition["source"])
            if definition.get("destination_type") == "exchange":
                dest: Destination | None = self.exchanges.get(definition["destination"])
            else:
                dest = self.queues.get(definition["destination"])
            if source is None or dest is None:
                return
            binding = Binding(source, dest, definition["routing_key"], definition.get("arguments"))
            if source.add_binding(binding):
                self.incoming.setdefault(dest, {})[(source, binding.key)] = binding

    def restore_message(
        self,
        queue_name: str,
        message: Message,
        redelivered: bool,
        expires_at: float | None = None,
    ) -> None:
        queue = self.queues.get(queue_name)
        if queue is None:
            return
        queue.restore(Entry(message, 0, redelivered), expires_at)
