"""The topology a connection declared: exchanges, queues and bindings, recorded so that
connection recovery (and a consumer's resubscription) can declare them again.

Server-named queues get a new name when declared again; :meth:`Topology.current_name`
translates the name the application knows into the broker's current one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kiltmq.protocol import spec
from kiltmq.protocol.codec import FieldTable
from kiltmq.protocol.spec import Method

__all__ = ["Attempt", "BindingRecord", "ExchangeRecord", "QueueRecord", "Topology"]

logger = logging.getLogger("kiltmq.client")

#: Sends a recorded declaration: ``attempt(what, method, responses)`` returns the reply,
#: or None when the declaration failed and recovery goes on.
Attempt = Callable[[str, Method, tuple[type[Method], ...]], Awaitable[Any]]


@dataclass(slots=True)
class ExchangeRecord:
    name: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: FieldTable | None

    def declare(self) -> spec.ExchangeDeclare:
        return spec.ExchangeDeclare(
            self.name, self.type, False, self.durable, self.auto_delete, self.internal, False,
            self.arguments,
        )


@dataclass(slots=True)
class QueueRecord:
    name: str  # the name the application knows
    server_named: bool
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: FieldTable | None


@dataclass(slots=True)
class BindingRecord:
    kind: str  # "queue" or "exchange"
    destination: str
    source: str
    routing_key: str
    arguments: FieldTable | None

    def key(self) -> tuple[str, str, str, str, str]:
        arguments = repr(sorted((self.arguments or {}).items()))
        return (self.kind, self.destination, self.source, self.routing_key, arguments)


class Topology:
    """The exchanges, queues and bindings declared on one connection."""

    def __init__(self) -> None:
        self.exchanges: dict[str, ExchangeRecord] = {}
        self.queues: dict[str, QueueRecord] = {}
        self.bindings: dict[tuple[str, str, str, str, str], BindingRecord] = {}
        #: application-visible queue names -> current server names (renamed only)
        self.names: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self.exchanges or self.queues or self.bindings)

    def current_name(self, queue: str) -> str:
        """The broker's current name for the queue the application knows as ``queue``."""
        names = self.names
        return names.get(queue, queue) if names else queue

    # -- recording --

    def record_exchange(
        self,
        name: str,
        type: str,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable | None,
    ) -> None:
        if not name or name.startswith("amq."):
            return
        self.exchanges[name] = ExchangeRecord(
            name, type, durable, auto_delete, internal, dict(arguments) if arguments else None
        )

    def forget_exchange(self, name: str) -> None:
        self.exchanges.pop(name, None)
        for key, binding in list(self.bindings.items()):
            if binding.source == name or (
                binding.kind == "exchange" and binding.destination == name
            ):
                del self.bindings[key]

    def record_queue(
        self,
        name: str,
        server_named: bool,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: FieldTable | None,
    ) -> None:
        if server_named or name in self.queues:
            record = self.queues.get(name)
            server_named = server_named or (record is not None and record.server_named)
        self.queues[name] = QueueRecord(
            name, server_named, durable, exclusive, auto_delete,
            dict(arguments) if arguments else None,
        )

    def forget_queue(self, name: str) -> None:
        current = self.current_name(name)
        for name in [k for k, r in self.queues.items() if self.current_name(r.name) == current]:
            del self.queues[name]
        for key, binding in list(self.bindings.items()):
            if binding.kind == "queue" and self.current_name(binding.destination) == current:
                del self.bindings[key]
        for name in [k for k, v in self.names.items() if v == current]:
            del self.names[name]

    def consumer_gone(self, queue: str, consumed: Iterable[str]) -> None:
        """A consumer of ``queue`` is gone (``consumed``: the queues the others consume):
        an auto-delete queue goes with its last consumer."""
        record = self.queues.get(queue)
        if record is None or not record.auto_delete:
            return
        current = self.current_name(queue)
        if any(self.current_name(other) == current for other in consumed):
            return
        self.forget_queue(queue)

    def record_binding(self, binding: BindingRecord) -> None:
        self.bindings[binding.key()] = binding

    def forget_binding(self, binding: BindingRecord) -> None:
        self.bindings.pop(binding.key(), None)
        source = binding.source
        exchange = self.exchanges.get(source)
        if exchange is not None and exchange.auto_delete and not any(
            b.source == source for b in self.bindings.values()
        ):
            del self.exchanges[source]  # the broker deletes it with its last binding

    def _rename(self, name: str, new: str) -> None:
        """A server-named queue known as ``name`` is now called ``new`` by the broker."""
        old = self.current_name(name)
        names = self.names
        for key, value in list(names.items()):
            if value == old:
                names[key] = new
        names[name] = new
        if old != name:
            names[old] = new
        logger.info("server-named queue %r recovered as %r", name, new)

    # -- declaring again --

    def _bind_method(self, binding: BindingRecord) -> tuple[Method, tuple[type[Method], ...]]:
        if binding.kind == "queue":
            return spec.QueueBind(
                self.current_name(binding.destination), binding.source, binding.routing_key,
                False, binding.arguments,
            ), (spec.QueueBindOk,)
        return spec.ExchangeBind(
            binding.destination, binding.source, binding.routing_key, False, binding.arguments
        ), (spec.ExchangeBindOk,)

    async def _declare_queue(self, record: QueueRecord, attempt: Attempt) -> None:
        current = self.current_name(record.name)
        ok = await attempt(
            f"queue {record.name!r}",
            spec.QueueDeclare(
                "" if record.server_named else current, False, record.durable,
                record.exclusive, record.auto_delete, False, record.arguments,
            ),
            (spec.QueueDeclareOk,),
        )
        if ok is not None and record.server_named and ok.queue != current:
            self._rename(record.name, ok.queue)

    async def restore(self, attempt: Attempt) -> None:
        """Declare every exchange, queue and binding again, in that order."""
        for record in list(self.exchanges.values()):
            await attempt(f"exchange {record.name!r}", record.declare(), (spec.ExchangeDeclareOk,))
        for queue in list(self.queues.values()):
            await self._declare_queue(queue, attempt)
        for binding in list(self.bindings.values()):
            method, responses = self._bind_method(binding)
            await attempt(f"binding {binding}", method, responses)

    async def redeclare_queue(self, queue: str, attempt: Attempt) -> None:
        """Declare a recorded queue, its bindings and their source exchanges again
        (a consumer's resubscription after the broker's basic.cancel)."""
        record = self.queues.get(queue)
        if record is None:
            return
        await self._declare_queue(record, attempt)
        for binding in list(self.bindings.values()):
            if binding.kind == "queue" and binding.destination == queue:
                exchange = self.exchanges.get(binding.source)
                if exchange is not None:  # an auto-delete exchange may have gone with it
                    await attempt(
                        f"exchange {exchange.name!r}", exchange.declare(),
                        (spec.ExchangeDeclareOk,),
                    )
                method, responses = self._bind_method(binding)
                await attempt(f"binding {binding}", method, responses)
