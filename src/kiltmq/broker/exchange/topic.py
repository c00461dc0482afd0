"""The topic exchange: binding keys are patterns over the dot-separated words of routing
keys, as in RabbitMQ (the empty key has no words); ``*`` matches exactly one word and
``#`` zero or more."""

from __future__ import annotations

from typing import Any

from kiltmq.broker.exchange.binding import Binding, Destination, Exchange, count_down, count_up
from kiltmq.broker.message import Message

__all__ = ["TopicExchange"]


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
        count_up(node.dests, binding.destination)
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
        count_down(node.dests, binding.destination)
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
