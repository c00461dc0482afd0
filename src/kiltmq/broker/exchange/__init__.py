"""Exchanges and routing: direct, fanout, topic, headers, and the default exchange.

Each exchange keeps its bindings (:mod:`~kiltmq.broker.exchange.binding`) and a routing
structure precomputed from them, rebuilt on bind/unbind, so that routing a message is a
dictionary lookup (direct), a constant (fanout), a cached trie walk (topic) or a scan of
the bindings' argument tables (headers).

``route(message)`` returns the destinations: queues, or exchanges for exchange-to-exchange
bindings (the vhost follows those, without loops or duplicates). A destination appears
once per exchange however many bindings lead to it.
"""

from kiltmq.broker.exchange.binding import (
    Binding,
    BoundQueue,
    Destination,
    Exchange,
    arguments_key,
)
from kiltmq.broker.exchange.direct import DefaultExchange, DirectExchange
from kiltmq.broker.exchange.fanout import FanoutExchange
from kiltmq.broker.exchange.headers import HeadersExchange
from kiltmq.broker.exchange.topic import TopicExchange

__all__ = [
    "EXCHANGE_TYPES",
    "Binding",
    "BoundQueue",
    "DefaultExchange",
    "Destination",
    "DirectExchange",
    "Exchange",
    "FanoutExchange",
    "HeadersExchange",
    "TopicExchange",
    "arguments_key",
]

#: The exchange classes by type name.
EXCHANGE_TYPES: dict[str, type[Exchange]] = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
}
