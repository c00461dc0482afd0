"""Bindings, and the exchange base class that keeps them.

An exchange's bindings are ``Binding`` objects keyed by destination, routing key and
arguments (:func:`arguments_key`). A destination is a queue or, for an
exchange-to-exchange binding, another exchange; the exchanges know a queue only as a
:class:`BoundQueue`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, TypeAlias

from kiltmq.broker.message import Message
from kiltmq.broker.policy import Policy
from kiltmq.protocol.codec import FieldTable, encode_table

__all__ = [
    "EMPTY",
    "Binding",
    "BoundQueue",
    "Destination",
    "Exchange",
    "arguments_key",
    "count_down",
    "count_up",
]


class BoundQueue(Protocol):
    """What an exchange needs of a queue it routes to: its name and whether it is
    durable (a binding is kept by the store when both of its ends are)."""

    @property
    def name(self) -> str: ...

    @property
    def durable(self) -> bool: ...


Destination: TypeAlias = "BoundQueue | Exchange"
#: No destinations.
EMPTY: tuple[Destination, ...] = ()


def arguments_key(arguments: FieldTable | None) -> bytes:
    """A hashable, order-independent key for a binding's argument table."""
    if not arguments:
        return b""
    return encode_table(dict(sorted(arguments.items())))


class Binding:
    """A binding from ``source`` to a queue or exchange, with its routing key and arguments."""

    __slots__ = ("source", "destination", "routing_key", "arguments", "key")

    def __init__(
        self,
        source: Exchange,
        destination: Destination,
        routing_key: str,
        arguments: FieldTable | None,
    ) -> None:
        self.source = source
        self.destination = destination
        self.routing_key = routing_key
        self.arguments: dict[str, Any] = dict(arguments or {})
        self.key = (destination, routing_key, arguments_key(arguments))

    @property
    def destination_type(self) -> str:
        return "exchange" if isinstance(self.destination, Exchange) else "queue"

    def definition(self) -> dict[str, Any]:
        return {
            "source": self.source.name,
            "destination": self.destination.name,
            "destination_type": self.destination_type,
            "routing_key": self.routing_key,
            "arguments": dict(self.arguments),
        }

    def __repr__(self) -> str:
        return (
            f"Binding({self.source.name!r} -> {self.destination_type} "
            f"{self.destination.name!r}, {self.routing_key!r})"
        )


class Exchange:
    """Base class: binding bookkeeping. Subclasses keep a routing structure."""

    TYPE: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        *,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: FieldTable | None = None,
    ) -> None:
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments: dict[str, Any] = dict(arguments or {})
        #: The policy that applies (see :meth:`apply_policy`).
        self.policy: Policy | None = None
        self.alternate: str | None = None
        self.apply_policy(None)
        #: Bindings with this exchange as source, by (destination, routing key, args key).
        self.bindings: dict[tuple[Destination, str, bytes], Binding] = {}
        #: How many bindings lead to other exchanges (0: routing ends here).
        self.exchange_destinations = 0
        self.deleted = False
        #: Messages published to the exchange, and those of them it routed nowhere (so
        #: that a routed message costs one count, see :attr:`publish_out`).
        self.publish_in = 0
        self.unrouted = 0

    @property
    def publish_out(self) -> int:
        """Messages the exchange routed to at least one queue (RabbitMQ's
        ``publish_out``)."""
        return self.publish_in - self.unrouted

    def apply_policy(self, policy: Policy | None) -> None:
        """Take ``policy``'s alternate-exchange, unless the exchange's own argument gives
        one (RabbitMQ: the argument wins)."""
        self.policy = policy
        alternate = self.arguments.get("alternate-exchange")
        if not isinstance(alternate, str) and policy is not None:
            alternate = policy.definition.get("alternate-exchange")
        self.alternate = alternate if isinstance(alternate, str) else None

    # -- bindings ---------------------------------------------------------------------

    def validate_binding(self, routing_key: str, arguments: FieldTable | None) -> None:
        """Raise an AMQPError if a binding with these arguments is invalid."""

    def add_binding(self, binding: Binding) -> bool:
        """Add ``binding``; False if an identical one exists."""
        if binding.key in self.bindings:
            return False
        self.bindings[binding.key] = binding
        if isinstance(binding.destination, Exchange):
            self.exchange_destinations += 1
        self._added(binding)
        return True

    def remove_binding(self, key: tuple[Destination, str, bytes]) -> Binding | None:
        binding = self.bindings.pop(key, None)
        if binding is not None:
            if isinstance(binding.destination, Exchange):
                self.exchange_destinations -= 1
            self._removed(binding)
        return binding

    def _added(self, binding: Binding) -> None:
        raise NotImplementedError

    def _removed(self, binding: Binding) -> None:
        raise NotImplementedError

    # -- routing ----------------------------------------------------------------------

    def route(self, message: Message) -> tuple[Destination, ...]:
        raise NotImplementedError

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.TYPE,
            "durable": self.durable,
            "auto_delete": self.auto_delete,
            "internal": self.internal,
            "arguments": dict(self.arguments),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def count_up(counts: dict[Destination, int], dest: Destination) -> None:
    """One more binding leads to ``dest``."""
    counts[dest] = counts.get(dest, 0) + 1


def count_down(counts: dict[Destination, int], dest: Destination) -> None:
    """One binding fewer leads to ``dest`` (forgotten at none)."""
    n = counts.get(dest, 0) - 1
    if n > 0:
        counts[dest] = n
    else:
        counts.pop(dest, None)
