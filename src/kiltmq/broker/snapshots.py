"""Snapshots of a running broker's state, as :class:`~kiltmq.broker.admin.Admin` hands
them out: frozen dataclasses holding copies, never live broker objects, and the
functions that take them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from kiltmq.broker.channel import Channel
    from kiltmq.broker.exchange import Binding, Exchange
    from kiltmq.broker.queue import Consumer, Queue
    from kiltmq.broker.server import ServerConnection

__all__ = [
    "BindingInfo",
    "ConnectionInfo",
    "ConsumerInfo",
    "ExchangeInfo",
    "PermissionInfo",
    "QueueStats",
    "Status",
    "TopicPermissionInfo",
    "UserInfo",
    "binding_info",
    "connection_info",
    "consumer_info",
    "exchange_info",
    "queue_stats",
    "resident_memory",
]


@dataclass(frozen=True)
class ConnectionInfo:
    """A client connection as the broker sees it (open, not closing)."""

    #: The client's ``connection_name`` client property (None when it gave none).
    name: str | None
    user: str
    vhost: str
    #: The client's address, "host:port".
    peer: str
    #: Open channels.
    channels: int
    client_properties: dict[str, Any] = field(repr=False)

    @property
    def product(self) -> str | None:
        """The client library's ``product`` client property (``"pika"``, ...)."""
        product = self.client_properties.get("product")
        if isinstance(product, bytes):
            product = product.decode(errors="replace")
        return product if isinstance(product, str) else None


@dataclass(frozen=True)
class ConsumerInfo:
    """A consumer (basic.consume) of a queue."""

    tag: str
    queue: str
    #: The channel number on its connection.
    channel: int
    connection: ConnectionInfo
    no_ack: bool
    exclusive: bool
    #: basic.qos prefetch_count of this consumer (global=false; 0: no limit).
    prefetch: int
    #: basic.qos prefetch_count shared by the channel's consumers (global=true; 0: none).
    channel_prefetch: int
    #: Messages delivered to it and not yet acknowledged.
    unacked: int
    #: x-priority.
    priority: int
    arguments: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class BindingInfo:
    source: str
    destination: str
    #: "queue" or "exchange".
    destination_type: str
    routing_key: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ExchangeInfo:
    name: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: dict[str, Any]
    #: Bindings with this exchange as their source.
    bindings: tuple[BindingInfo, ...]
    #: The name of the policy that applies (None: none).
    policy: str | None = None
    #: Messages published to the exchange, and those of them it routed somewhere.
    publish_in: int = 0
    publish_out: int = 0


@dataclass(frozen=True)
class QueueStats:
    """A queue's properties and counts (no messages)."""

    name: str
    vhost: str
    durable: bool
    auto_delete: bool
    exclusive: bool
    arguments: dict[str, Any]
    #: The queue type: "classic", "quorum" or "stream".
    type: str
    #: Messages waiting to be delivered.
    ready: int
    #: Messages delivered (or fetched) and not yet acknowledged.
    unacked: int
    consumers: int
    #: Messages acknowledged since the queue was declared.
    acked: int
    #: The names of the policy and operator policy that apply (None: none), and their
    #: combined definition (RabbitMQ's ``effective_policy_definition``).
    policy: str | None = None
    operator_policy: str | None = None
    effective_policy_definition: dict[str, Any] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        """Ready plus unacknowledged, as RabbitMQ's ``messages``."""
        return self.ready + self.unacked


@dataclass(frozen=True)
class UserInfo:
    name: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class PermissionInfo:
    user: str
    vhost: str
    configure: str
    write: str
    read: str


@dataclass(frozen=True)
class TopicPermissionInfo:
    user: str
    vhost: str
    exchange: str
    write: str
    read: str


@dataclass(frozen=True)
class Status:
    """The broker as a whole."""

    version: str
    pid: int
    #: Seconds since the broker started (0 if it is not running).
    uptime: float
    #: "host:port" of each listener.
    listeners: tuple[str, ...]
    #: Open client connections (the handshake done).
    connections: int
    channels: int
    vhosts: int
    queues: int
    #: Ready and unacknowledged messages in every queue.
    messages: int
    #: Estimated bytes taken by messages (what the memory limit counts).
    queued_bytes: int
    #: The memory limit (None: none) and whether publishers are blocked by it.
    memory_limit: int | None
    memory_alarm: bool
    #: The resources in alarm ("memory", "disk"): publishers are blocked while any is.
    alarms: tuple[str, ...]
    #: Free space below which the disk alarm is set (None: no disk alarm).
    disk_free_limit: int | None
    #: Resident memory of the broker's process in bytes, where the system tells.
    process_memory: int | None
    #: The store's data directory (None: memory-only or another store).
    data_dir: str | None
    ctl_socket: str | None
    python: str


# -- taking snapshots ------------------------------------------------------------------


def binding_info(binding: Binding) -> BindingInfo:
    return BindingInfo(
        source=binding.source.name,
        destination=binding.destination.name,
        destination_type=binding.destination_type,
        routing_key=binding.routing_key,
        arguments=dict(binding.arguments),
    )


def exchange_info(exchange: Exchange) -> ExchangeInfo:
    """``exchange`` with the bindings it is the source of (the default exchange's
    implicit bindings are not listed)."""
    return ExchangeInfo(
        name=exchange.name,
        type=exchange.TYPE,
        durable=exchange.durable,
        auto_delete=exchange.auto_delete,
        internal=exchange.internal,
        arguments=dict(exchange.arguments),
        bindings=tuple(binding_info(b) for b in exchange.bindings.values()),
        policy=exchange.policy.name if exchange.policy is not None else None,
        publish_in=exchange.publish_in,
        publish_out=exchange.publish_out,
    )


def queue_stats(queue: Queue, unacked: int) -> QueueStats:
    """``queue``, which has ``unacked`` unacknowledged deliveries."""
    return QueueStats(
        name=queue.name,
        vhost=queue.vhost.name,
        durable=queue.durable,
        auto_delete=queue.auto_delete,
        exclusive=queue.exclusive,
        arguments=dict(queue.arguments),
        type=queue.type,
        ready=len(queue.ready),
        unacked=unacked,
        consumers=len(queue.consumers),
        acked=queue.acked,
        policy=queue.policy.name if queue.policy is not None else None,
        operator_policy=(
            queue.operator_policy.name if queue.operator_policy is not None else None
        ),
        effective_policy_definition=dict(queue.effective_policy_definition),
    )


def connection_info(conn: ServerConnection) -> ConnectionInfo:
    session = conn.session
    props = dict(session.client_properties)
    name = props.get("connection_name")
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    return ConnectionInfo(
        name=name if isinstance(name, str) else None,
        user=session.username,
        vhost=session.vhost.name if session.vhost is not None else "",
        peer=session.peer_name,
        channels=len(session.channels),
        client_properties=props,
    )


def consumer_info(consumer: Consumer) -> ConsumerInfo:
    channel = cast("Channel", consumer.channel)
    return ConsumerInfo(
        tag=consumer.tag,
        queue=consumer.queue.name,
        channel=channel.number,
        connection=connection_info(cast("ServerConnection", channel.session.conn)),
        no_ack=consumer.no_ack,
        exclusive=consumer.exclusive,
        prefetch=consumer.prefetch,
        channel_prefetch=channel.prefetch_global,
        unacked=consumer.unacked,
        priority=consumer.priority,
        arguments=dict(consumer.arguments or {}),
    )


def resident_memory() -> int | None:
    """The process's resident set size in bytes (Linux), else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
