"""The fanout exchange."""

from __future__ import annotations

from typing import Any

from kiltmq.broker.exchange.binding import Binding, Destination, Exchange, count_down, count_up
from kiltmq.broker.message import Message

__all__ = ["FanoutExchange"]


class FanoutExchange(Exchange):
    """Routes to every binding, whatever the routing key (a constant)."""

    TYPE = "fanout"

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._counts: dict[Destination, int] = {}
        self._all: tuple[Destination, ...] = ()

    def _added(self, binding: Binding) -> None:
        count_up(self._counts, binding.destination)
        self._all = tuple(self._counts)

    def _removed(self, binding: Binding) -> None:
        count_down(self._counts, binding.destination)
        self._all = tuple(self._counts)

    def route(self, message: Message) -> tuple[Destination, ...]:
        return self._all
