"""The broker scenarios: a matrix of traffic shapes and message payloads.

A scenario's key is ``SHAPE/PAYLOAD``, e.g. ``e2e-ack/celery``: the shape says what
producer, queues and consumers do (:data:`SHAPES`), the payload what is published
(:data:`~kiltmq.bench.payloads.PAYLOADS`). Two more shapes measure memory instead of
throughput: ``memory-queue/PAYLOAD`` (per message sitting in a queue) and
``memory-connection`` (per idle connection). The keys of earlier versions, ``a`` to
``e``, still name the scenarios they named (:data:`ALIASES`). Scenarios are data; the
same worker processes (:mod:`kiltmq.bench.workers`) run all of them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, replace

from kiltmq.bench.payloads import PAYLOADS, Payload

__all__ = [
    "ALIASES",
    "MAX_CONSUMER_CONNECTIONS",
    "MAX_QUEUES",
    "SCENARIOS",
    "SHAPES",
    "Scenario",
    "select",
]

MAX_QUEUES = 100
"""The most queues one scenario uses (fanout to 100)."""

MAX_CONSUMER_CONNECTIONS = 8
"""The most consumer connections one scenario opens; they share its queues."""

TOPIC_BINDINGS = 10_000


@dataclass(frozen=True)
class Scenario:
    """One benchmark scenario; the same for every broker."""

    key: str
    title: str
    payload: Payload = PAYLOADS["100b"]
    kind: str = "flow"  # "flow" (throughput), "memory-queue" or "memory-connection"
    queues: int = 1
    consumer_connections: int = 1  # the queues are shared among them, round-robin
    consumers: bool = True
    no_ack: bool = False
    exchange_type: str = ""  # "": the default exchange
    topic_bindings: int = 0  # bindings of distinct patterns, spread over the queues
    durable: bool = False  # durable queues, persistent messages, publisher confirms
    prefetch: int = 1000
    rate: int = 0  # messages per second; 0: as fast as the broker takes them
    latency: bool = False
    unit: str = "msg/s"

    @property
    def copies(self) -> int:
        """Deliveries (or queued messages) each published message gives."""
        return self.queues if self.exchange_type == "fanout" else 1

    @property
    def body_size(self) -> int:
        return len(self.payload.body)


SHAPES: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario("e2e-ack", "1 producer, 1 consumer, 1 queue, manual ack, prefetch 1000"),
        Scenario("e2e-noack", "1 producer, 1 consumer, 1 queue, no-ack", no_ack=True, prefetch=0),
        Scenario("publish", "publish only, 1 queue, no consumer", consumers=False),
        Scenario(
            "durable-confirm",
            "durable queue, persistent messages, publisher confirms, 1 consumer, manual ack",
            durable=True,
        ),
        Scenario(
            "fanout-4",
            "fanout exchange to 4 queues, 4 consumer connections, manual ack",
            queues=4,
            consumer_connections=4,
            exchange_type="fanout",
            unit="deliveries/s",
        ),
        Scenario(
            "fanout-100",
            "fanout exchange to 100 queues, 100 consumers on 1 connection, manual ack",
            queues=100,
            exchange_type="fanout",
            unit="deliveries/s",
        ),
        Scenario(
            "topic-10k",
            f"topic exchange, {TOPIC_BINDINGS:,} bindings of distinct patterns over 10 queues, "
            "each message matches one; 10 consumers on 1 connection, manual ack",
            queues=10,
            exchange_type="topic",
            topic_bindings=TOPIC_BINDINGS,
        ),
        Scenario(
            "latency-1k",
            "latency at 1,000 msg/s, 1 consumer, manual ack",
            rate=1000,
            latency=True,
        ),
        Scenario(
            "latency-10k",
            "latency at 10,000 msg/s, 1 consumer, manual ack",
            rate=10_000,
            latency=True,
        ),
        Scenario(
            "memory-queue",
            "memory per message in an unconsumed queue",
            kind="memory-queue",
            consumers=False,
            unit="bytes/msg",
        ),
        Scenario(
            "memory-connection",
            "memory per idle connection (with one open channel)",
            kind="memory-connection",
            consumers=False,
            unit="bytes/conn",
        ),
    )
}

# Which payloads each shape runs with, in the table's order.
_MATRIX: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("memory-queue", ("100b", "celery")),
    ("memory-connection", ("",)),
    ("e2e-ack", ("100b", "celery", "4k", "64k")),
    ("e2e-noack", ("100b", "celery", "4k", "64k")),
    ("publish", ("100b", "celery", "4k", "64k")),
    ("durable-confirm", ("100b", "celery", "4k", "64k")),
    ("fanout-4", ("100b", "celery")),
    ("fanout-100", ("100b",)),
    ("topic-10k", ("100b", "celery")),
    ("latency-1k", ("100b", "celery")),
    ("latency-10k", ("100b", "celery")),
)


def _matrix() -> dict[str, Scenario]:
    out: dict[str, Scenario] = {}
    for shape_key, payloads in _MATRIX:
        shape = SHAPES[shape_key]
        for name in payloads:
            if not name:
                out[shape_key] = shape
                continue
            payload = PAYLOADS[name]
            key = f"{shape_key}/{name}"
            out[key] = replace(
                shape, key=key, title=f"{shape.title}; {payload.title}", payload=payload
            )
    return out


SCENARIOS: dict[str, Scenario] = _matrix()
"""Every scenario by key, in the order of the results table."""

ALIASES: dict[str, str] = {
    "a": "e2e-ack/100b",
    "b": "e2e-noack/100b",
    "c": "publish/100b",
    "d": "fanout-4/100b",
    "e": "latency-1k/100b",
}
"""The keys of earlier versions and the scenarios they name."""


def select(patterns: Iterable[str]) -> tuple[str, ...]:
    """The scenario keys that ``patterns`` name, in the table's order: keys, aliases, and
    shell-style patterns (``e2e-ack/*``, ``*/celery``). ValueError for one that names none."""
    wanted: set[str] = set()
    unknown = []
    for pattern in patterns:
        pattern = ALIASES.get(pattern, pattern)
        matched = fnmatch.filter(SCENARIOS, pattern)
        if not matched and pattern in SHAPES:
            matched = [k for k in SCENARIOS if k.split("/")[0] == pattern]
        if not matched:
            unknown.append(pattern)
        wanted.update(matched)
    if unknown:
        raise ValueError(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)} "
            f"(or {', '.join(ALIASES)}, or a pattern such as '*/celery')"
        )
    return tuple(k for k in SCENARIOS if k in wanted)
