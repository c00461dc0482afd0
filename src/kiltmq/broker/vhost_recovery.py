"""A virtual host's durable definitions and persistent messages, recreated from the store
at start (exchanges, queues, policies, metadata, limits, bindings; then messages)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from kiltmq.broker.declaration import queue_type
from kiltmq.broker.exchange import EXCHANGE_TYPES, Binding, Destination, Exchange, HeadersExchange
from kiltmq.broker.message import Message
from kiltmq.broker.policies import POLICY_KINDS, VhostPolicies
from kiltmq.broker.queue import (
    QUEUE_CLASSES,
    Entry,
    Queue,
    QueueOwner,
    QuorumQueue,
    StreamQueue,
)
from kiltmq.broker.store import Definition
from kiltmq.broker.vhost_metadata import VhostMetadata

__all__ = ["VhostRecovery"]


class VhostRecovery:
    """The recovery part of :class:`~kiltmq.broker.vhost.VirtualHost` (a mixin: the
    attributes below are the virtual host's)."""

    queues: dict[str, Queue]
    exchanges: dict[str, Exchange]
    policies: VhostPolicies
    metadata: VhostMetadata

    if TYPE_CHECKING:

        def set_limits(self, limits: Mapping[str, Any], *, store: bool = True) -> None: ...

        def _add_binding(self, binding: Binding) -> bool: ...

    def restore(self, kind: str, definition: Definition) -> None:
        """Recreate a durable definition from the store (at start)."""
        if kind == "exchange":
            if definition["name"] in self.exchanges:
                return
            cls = EXCHANGE_TYPES.get(definition["type"], HeadersExchange)
            exchange = cls(
                definition["name"],
                durable=True,
                auto_delete=definition.get("auto_delete", False),
                internal=definition.get("internal", False),
                arguments=definition.get("arguments"),
            )
            self.exchanges[exchange.name] = exchange
        elif kind == "queue":
            if definition["name"] in self.queues:
                return
            queue_class = QUEUE_CLASSES.get(queue_type(definition.get("arguments")), Queue)
            self.queues[definition["name"]] = queue_class(
                cast(QueueOwner, self),
                definition["name"],
                durable=True,
                auto_delete=definition.get("auto_delete", False),
                arguments=definition.get("arguments"),
            )
        elif kind in POLICY_KINDS:
            self.policies.restore(kind, definition)
        elif kind == VhostMetadata.KIND:
            self.metadata = VhostMetadata.from_record(definition)
        elif kind == "limits":
            self.set_limits({k: v for k, v in definition.items() if k != "name"}, store=False)
        elif kind == "binding":
            source = self.exchanges.get(definition["source"])
            if definition.get("destination_type") == "exchange":
                dest: Destination | None = self.exchanges.get(definition["destination"])
            else:
                dest = self.queues.get(definition["destination"])
            if source is None or dest is None:
                return
            self._add_binding(
                Binding(source, dest, definition["routing_key"], definition.get("arguments"))
            )

    def restore_message(
        self,
        queue_name: str,
        message: Message,
        redelivered: bool,
        expires_at: float | None = None,
        delivery_count: int = 0,
        dead: str | None = None,
        arrived_at: float | None = None,
    ) -> None:
        queue = self.queues.get(queue_name)
        if queue is None:
            return
        if isinstance(queue, StreamQueue):
            queue.restore_log(message, arrived_at)
            return
        if isinstance(queue, QuorumQueue):
            queue.restore_stored(message, redelivered, expires_at, delivery_count, dead)
            return
        queue.restore(Entry(message, 0, redelivered), expires_at)
