"""Exchanges and routing: direct, fanout, topic, headers, and the default exchange.

Each exchange keeps its bindings (``Binding`` objects keyed by destination, routing key
and arguments) and a routing structure precomputed from them, rebuilt on bind/unbind,
so that routing a message is a dictionary lookup (direct), a constant (fanout), a cached
trie walk (topic) or a scan of the bindings' argument tables (headers).

``route(message)`` returns the destinations: queues, or exchanges for exchange-to-exchange
bindings (the vhost follows those, without loops or duplicates). A destination appears
once per exchange however many bindings lead to it.

Topic matching follows RabbitMQ: routing keys and binding keys are dot-separated words
(the empty key has no words); ``*`` matches exactly one word and ``#`` zero or more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, Union

from kiltmq.broker.message import Message
from kiltmq.protocol.codec import FieldTable, encode_table
from kiltmq.protocol.errors import PreconditionFailed

if TYPE_CHECKING:
    from kiltmq.broker.queue import Queue

__all__ = [
    "EXCHANGE_TYPES",
    "Binding",
    "DefaultExchange",
    "DirectExchange",
    "Exchange",
    "FanoutExchange",
    "HeadersExchange",
    "TopicExchange",
    "arguments_key",
]

Destination: TypeAlias = Union["Queue", "Exchange"]
_EMPTY: tuple[Destination, ...] = ()


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
        alternate = self.arguments.get("alternate-exchange")
        self.alternate: str | None = alternate if isinstance(alternate, str) else None
        #: Bindings with this exchange as source, by (destination, routing key, args key).
        self.bindings: dict[tuple[Destination, str, bytes], Binding] = {}
        #: How many bindings lead to other exchanges (0: routing ends here).
        self.exchange_destinations = 0
        self.deleted = False

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


def _inc(counts: dict[Destination, int], dest: Destination) -> None:
    counts[dest] = counts.get(dest, 0) + 1


def _dec(counts: dict[Destination, int], dest: Destination) -> None:
    n = counts.get(dest, 0) - 1
    if n > 0:
        counts[dest] = n
    else:
        counts.pop(dest, None)


class DirectExchange(Exchange):
    """Routes to bindings whose key equals the routing key."""

    TYPE = "direct"

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._counts: dict[str, dict[Destination, int]] = {}
        self._table: dict[str, tuple[Destination, ...]] = {}

    def _added(self, binding: Binding) -> None:
        key = binding.routing_key
        counts = self._counts.setdefault(key, {})
        _inc(counts, binding.destination)
        self._table[key] = tuple(counts)

    def _removed(self, binding: Binding) -> None:
        key = binding.routing_key
        counts = self._counts.get(key)
        if counts is None:
            return
        _dec(counts, binding.destination)
        if counts:
            self._table[key] = tuple(counts)
        else:
            del self._counts[key]
            del self._table[key]

    def route(self, message: Message) -> tuple[Destination, ...]:
        return self._table.get(message.routing_key, _EMPTY)


class DefaultExchange(DirectExchange):
    """The nameless direct exchange: every queue is bound to it by its own name."""

    def __init__(self, queues: Mapping[str, Queue]) -> None:
        super().__init__("", durable=True)
        self._queues = queues

    def route(self, message: Message) -> tuple[Destination, ...]:
        queue = self._queues.get(message.routing_key)
        return (queue,) if queue is not None else _EMPTY


class FanoutExchange(Exchange):
    """Routes to every binding, whatever the routing key."""

    TYPE = "fanout"

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._counts: dict[Destination, int] = {}
        self._all: tuple[Destination, ...] = ()

    def _added(self, binding: Binding) -> None:
        _inc(self._counts, binding.destination)
        self._all = tuple(self._counts)

    def _removed(self, binding: Binding) -> None:
        _dec(self._counts, binding.destination)
        self._all = tuple(self._counts)

    def route(self, message: Message) -> tuple[Destination, ...]:
        return self._all


class _TrieNode:
    __slots__ = ("children", "star", "hash", "dests")

    def __init__(self) -> None:
        self.children: dict[str, _TrieNode] = {}
        self.star: _TrieNode | None = None
        self.hash: _TrieNode | None = None
        self.dests: dict[Destination, int] = {}

    def empty(self) -> bool:
        return not (self.children or self.star or self.hash or self.dests)


def _words(key: str) -> list[str]:
    return key.split(".") if key else []


class TopicExchange(Exchange):
    """Routes by pattern: ``*`` is one word, ``#`` zero or more. Binding patterns live in
    a trie; results are cached per routing key until the bindings change."""

    TYPE = "topic"
    CACHE_SIZE = 4096

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._root = _TrieNode()
        self._cache: dict[str, tuple[Destination, ...]] = {}

    def _added(self, binding: Binding) -> None:
        node = self._root
        for word in _words(binding.routing_key):
            if word == "*":
                if node.star is None:
                    node.star = _TrieNode()
                node = node.star
            elif word == "#":
                if node.hash is None:
                    node.hash = _TrieNode()
                node = node.hash
            else:
                child = node.children.get(word)
                if child is None:
                    child = node.children[word] = _TrieNode()
                node = child
        _inc(node.dests, binding.destination)
        self._cache.clear()

    def _removed(self, binding: Binding) -> None:
        path: list[tuple[_TrieNode, str]] = []
        node: _TrieNode | None = self._root
        for word in _words(binding.routing_key):
            assert node is not None
            path.append((node, word))
            if word == "*":
                node = node.star
            elif word == "#":
                node = node.hash
            else:
                node = node.children.get(word)
            if node is None:
                return
        assert node is not None
        _dec(node.dests, binding.destination)
        # prune empty branches
        for parent, word in reversed(path):
            if not node.empty():
                break
            if word == "*":
                parent.star = None
            elif word == "#":
                parent.hash = None
            else:
                parent.children.pop(word, None)
            node = parent
        self._cache.clear()

    def route(self, message: Message) -> tuple[Destination, ...]:
        key = message.routing_key
        result = self._cache.get(key)
        if result is None:
            result = self.match(key)
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = result
        return result

    def match(self, routing_key: str) -> tuple[Destination, ...]:
        words = _words(routing_key)
        n = len(words)
        found: dict[Destination, None] = {}
        seen: set[tuple[int, int]] = set()
        stack: list[tuple[_TrieNode, int]] = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            mark = (id(node), i)
            if mark in seen:
                continue
            seen.add(mark)
            if i == n:
                for dest in node.dests:
                    found[dest] = None
            else:
                child = node.children.get(words[i])
                if child is not None:
                    stack.append((child, i + 1))
                if node.star is not None:
                    stack.append((node.star, i + 1))
            if node.hash is not None:
                # '#' swallows zero or more words
                for j in range(i, n + 1):
                    stack.append((node.hash, j))
        return tuple(found)


_X_MATCH = ("all", "any", "all-with-x", "any-with-x")


class HeadersExchange(Exchange):
    """Routes on message headers against each binding's arguments (``x-match`` all/any,
    RabbitMQ's all-with-x/any-with-x too). A void binding value matches presence."""

    TYPE = "headers"

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        # (destination, match-all, with-x, [(key, value)])
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
            return _EMPTY
        headers = message.headers or {}
        found: dict[Destination, None] = {}
        for dest, match_all, pairs in self._rules:
            if dest in found:
                continue
            if match_all:
                ok = all(
                    k in headers and (v is None or _same(headers[k], v)) for k, v in pairs
                )
            else:
                ok = any(
                    k in headers and (v is None or _same(headers[k], v)) for k, v in pairs
                )
            if ok:
                found[dest] = None
        return tuple(found)


def _same(a: Any, b: Any) -> bool:
    # bool is an int in Python; AMQP tells them apart.
    return a == b and isinstance(a, bool) == isinstance(b, bool)


EXCHANGE_TYPES: dict[str, type[Exchange]] = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
}
