"""A virtual host's topology (queues, exchanges, bindings, policies) in a form that
compares with the definitions a production RabbitMQ exports: ``amqp_broker.topology()
== Topology.from_definitions("rabbit.json")``, and ``diff`` says what differs.

Only what the application declares counts: names, types, flags, arguments, bindings,
policies; vhost names, exclusive queues (never exported) and ``amq.*`` exchanges are
left out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Topology"]


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class Topology:
    """Sets of (name, attributes) items, comparable with ``==``."""

    queues: frozenset[tuple[str, Any]]
    exchanges: frozenset[tuple[str, Any]]
    bindings: frozenset[tuple[str, str, str, str, Any]]
    policies: frozenset[tuple[str, Any]]

    @classmethod
    def from_definitions(
        cls, source: Mapping[str, Any] | str | os.PathLike[str], vhost: str | None = None
    ) -> Topology:
        """The topology in definitions (RabbitMQ's export format, a mapping or a JSON
        file): of ``vhost``, or of every vhost the file names (None)."""
        data: Any = source
        if not isinstance(source, Mapping):
            with open(source, encoding="utf-8") as file:
                data = json.load(file)

        def items(section: str) -> list[Mapping[str, Any]]:
            return [
                d for d in data.get(section) or []
                if vhost is None or d.get("vhost", vhost) == vhost
            ]

        return cls(
            queues=frozenset(
                (q["name"], _frozen({
                    "durable": q.get("durable", True), "auto_delete": q.get("auto_delete", False),
                    "arguments": q.get("arguments") or {},
                }))
                for q in items("queues")
            ),
            exchanges=frozenset(
                (x["name"], _frozen({
                    "type": x.get("type"), "durable": x.get("durable", True),
                    "auto_delete": x.get("auto_delete", False),
                    "internal": x.get("internal", False), "arguments": x.get("arguments") or {},
                }))
                for x in items("exchanges") if x["name"] and not x["name"].startswith("amq.")
            ),
            bindings=frozenset(
                (b["source"], b.get("destination_type", "queue"), b["destination"],
                 b.get("routing_key", ""), _frozen(b.get("arguments") or {}))
                for b in items("bindings")
            ),
            policies=frozenset(
                (p["name"], _frozen({
                    "pattern": p.get("pattern"), "apply-to": p.get("apply-to", "all"),
                    "definition": p.get("definition") or {}, "priority": p.get("priority", 0),
                }))
                for p in items("policies")
            ),
        )

    def diff(self, other: Topology) -> list[str]:
        """What is here and not there ("+ ...") and the other way ("- ..."), one line each;
        empty when equal."""
        lines = []
        for section in ("queues", "exchanges", "bindings", "policies"):
            mine, theirs = getattr(self, section), getattr(other, section)
            lines += [f"+ {section[:-1]} {item!r}" for item in sorted(mine - theirs, key=repr)]
            lines += [f"- {section[:-1]} {item!r}" for item in sorted(theirs - mine, key=repr)]
        return lines
