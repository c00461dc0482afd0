"""The headers exchange: routes on message headers instead of the routing key."""

from __future__ import annotations

from typing import Any

from kiltmq.broker.exchange.binding import EMPTY, Binding, Destination, Exchange
from kiltmq.broker.message import Message
from kiltmq.protocol.codec import FieldTable
from kiltmq.protocol.errors import PreconditionFailed

__all__ = ["HeadersExchange"]

_X_MATCH = ("all", "any", "all-with-x", "any-with-x")


class HeadersExchange(Exchange):
    """Routes on message headers against each binding's arguments (``x-match`` all/any,
    RabbitMQ's all-with-x/any-with-x too). A void binding value matches presence."""

    TYPE = "headers"

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        # (destination, match-all, [(key, value) to compare])
        self._rules: list[tuple[Destination, bool, list[tuple[str, Any]]]] = []

    def validate_binding(self, routing_key: str, arguments: FieldTable | None) -> None:
        if arguments and "x-match" in arguments and arguments["x-match"] not in _X_MATCH:
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - Invalid x-match field value {arguments['x-match']!r}; "
                "expected all, any, all-with-x, or any-with-x"
            )

    def _rebuild(self) -> None:
        rules = []
        for binding in self.bindings.values():
            args = binding.arguments
            mode = args.get("x-match", "all")
            with_x = mode in ("all-with-x", "any-with-x")
            pairs = [
                (k, v)
                for k, v in args.items()
                if k != "x-match" and (with_x or not k.startswith("x-"))
            ]
            rules.append((binding.destination, mode.startswith("all"), pairs))
        self._rules = rules

    def _added(self, binding: Binding) -> None:
        self._rebuild()

    def _removed(self, binding: Binding) -> None:
        self._rebuild()

    def route(self, message: Message) -> tuple[Destination, ...]:
        if not self._rules:
            return EMPTY
        headers = message.headers or {}
        found: dict[Destination, None] = {}
        for dest, match_all, pairs in self._rules:
            if dest in found:
                continue
            matches = (k in headers and (v is None or _same(headers[k], v)) for k, v in pairs)
            if all(matches) if match_all else any(matches):
                found[dest] = None
        return tuple(found)


def _same(a: Any, b: Any) -> bool:
    # bool is an int in Python; AMQP tells them apart.
    return a == b and isinstance(a, bool) == isinstance(b, bool)
