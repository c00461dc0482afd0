"""The direct exchange, and the default exchange (the nameless direct exchange)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiltmq.broker.exchange.binding import (
    EMPTY,
    Binding,
    BoundQueue,
    Destination,
    Exchange,
    count_down,
    count_up,
)
from kiltmq.broker.message import Message
from kiltmq.broker.policy import Policy

__all__ = ["DefaultExchange", "DirectExchange"]


class DirectExchange(Exchange):
    """Routes to bindings whose key equals the routing key (a dictionary lookup)."""

    TYPE = "direct"

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._counts: dict[str, dict[Destination, int]] = {}
        self._table: dict[str, tuple[Destination, ...]] = {}

    def _added(self, binding: Binding) -> None:
        key = binding.routing_key
        counts = self._counts.setdefault(key, {})
        count_up(counts, binding.destination)
        self._table[key] = tuple(counts)

    def _removed(self, binding: Binding) -> None:
        key = binding.routing_key
        counts = self._counts.get(key)
        if counts is None:
            return
        count_down(counts, binding.destination)
        if counts:
            self._table[key] = tuple(counts)
        else:
            del self._counts[key]
            del self._table[key]

    def route(self, message: Message) -> tuple[Destination, ...]:
        return self._table.get(message.routing_key, EMPTY)


class DefaultExchange(DirectExchange):
    """The nameless direct exchange: every queue is bound to it by its own name.
    ``queues`` is the vhost's live mapping of queues by name."""

    def __init__(self, queues: Mapping[str, BoundQueue]) -> None:
        super().__init__("", durable=True)
        self._queues = queues

    def route(self, message: Message) -> tuple[Destination, ...]:
        queue = self._queues.get(message.routing_key)
        return (queue,) if queue is not None else EMPTY

    def apply_policy(self, policy: Policy | None) -> None:
        """A policy matches the default exchange but gives it no alternate exchange
        (RabbitMQ does not use one for it)."""
        self.policy = policy
