"""Snapshots of queues and their messages, as :class:`~kiltmq.testing.BrokerFixture`
returns them: plain frozen data, never a live broker object.

The snapshots of exchanges, bindings, connections and consumers are the broker's own
(:mod:`kiltmq.broker.admin`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kiltmq.broker.admin import Admin, ConsumerInfo
from kiltmq.protocol.spec import BasicProperties

if TYPE_CHECKING:
    from kiltmq.broker.queue import Entry, Queue

__all__ = ["MessageInfo", "QueueInfo", "message_info", "queue_info"]


@dataclass(frozen=True)
class MessageInfo:
    """A message in a queue (ready or delivered and not yet acknowledged)."""

    body: bytes
    properties: BasicProperties
    exchange: str
    routing_key: str
    redelivered: bool

    @property
    def headers(self) -> dict[str, Any]:
        """The headers property (empty when absent)."""
        return dict(self.properties.headers or {})

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode()

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class QueueInfo:
    """A queue: its ready messages, unacknowledged deliveries and consumers."""

    name: str
    vhost: str
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: dict[str, Any] = field(repr=False)
    #: Ready messages, in the order they will be delivered.
    messages: tuple[MessageInfo, ...] = field(repr=False)
    #: Messages delivered (or fetched with basic.get) and not yet acknowledged.
    unacked: tuple[MessageInfo, ...] = field(repr=False)
    consumers: tuple[ConsumerInfo, ...] = field(repr=False)
    #: Messages acknowledged since the queue was declared (deliveries to no-ack
    #: consumers count when delivered).
    acked: int = 0
    #: The policy and operator policy that apply (names; None: none) and their combined
    #: definition.
    policy: str | None = None
    operator_policy: str | None = None
    effective_policy_definition: dict[str, Any] = field(default_factory=dict, repr=False)
    #: The queue type: "classic", "quorum" or "stream".
    type: str = "classic"

    def __repr__(self) -> str:
        return (
            f"QueueInfo({self.name!r}, vhost={self.vhost!r}, ready={len(self.messages)}, "
            f"unacked={len(self.unacked)}, acked={self.acked}, "
            f"consumers={len(self.consumers)})"
        )

    @property
    def message_count(self) -> int:
        """Ready messages (what queue.declare reports as message_count)."""
        return len(self.messages)

    @property
    def unacked_count(self) -> int:
        return len(self.unacked)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    @property
    def bodies(self) -> list[bytes]:
        """The bodies of the ready messages."""
        return [m.body for m in self.messages]


# -- taking snapshots (on the broker's loop) ---------------------------------------------


def message_info(admin: Admin, queue: Queue, entry: Entry) -> MessageInfo:
    """The snapshot of ``entry`` of ``queue``, loaded from the store if paged out."""
    message = entry.message
    if message.paged:  # paged out to the store (durable queues)
        (message,) = admin.broker.store.load(queue.vhost.name, queue.name, [message])
    try:
        properties = message.properties
    except (ValueError, IndexError):
        properties = BasicProperties()
    return MessageInfo(
        body=message.body,
        properties=properties,
        exchange=message.exchange,
        routing_key=message.routing_key,
        redelivered=entry.redelivered,
    )


def queue_info(admin: Admin, queue: Queue) -> QueueInfo:
    """The snapshot of ``queue``: unacknowledged messages in delivery order."""
    return QueueInfo(
        name=queue.name,
        vhost=queue.vhost.name,
        durable=queue.durable,
        exclusive=queue.exclusive,
        auto_delete=queue.auto_delete,
        arguments=dict(queue.arguments),
        messages=tuple(message_info(admin, queue, e) for e in queue.ready),
        unacked=tuple(
            message_info(admin, queue, e)
            for e in sorted(admin.unacked_entries(queue), key=lambda e: e.seq)
        ),
        consumers=tuple(admin.consumer_info(c) for c in queue.consumers),
        acked=queue.acked,
        policy=queue.policy.name if queue.policy is not None else None,
        operator_policy=(
            queue.operator_policy.name if queue.operator_policy is not None else None
        ),
        effective_policy_definition=dict(queue.effective_policy_definition),
        type=queue.type,
    )
