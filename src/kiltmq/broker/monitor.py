"""A read-only view of a running broker for monitoring (the management API): snapshots of
connections, channels, consumers and queues with their message counters.

Like :class:`~kiltmq.broker.admin.Admin`, a :class:`Monitor` must be used on the
broker's event loop and hands out frozen dataclasses, never live broker objects. The
counters it reads are plain integers the channels and queues keep on paths they take
anyway (see ``ChannelState`` and ``Queue``); rates are for the reader to work out from
successive snapshots.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from kiltmq.broker.admin import Admin, ManagedBroker
from kiltmq.broker.memory import queue_memory
from kiltmq.broker.snapshots import QueueStats, queue_stats

if TYPE_CHECKING:
    from kiltmq.broker.channel import Channel
    from kiltmq.broker.queue import Consumer, Queue
    from kiltmq.broker.server import ServerConnection

__all__ = [
    "ChannelDetail",
    "ConnectionDetail",
    "ConsumerDetail",
    "MessageCounts",
    "Monitor",
    "QueueDetail",
    "QueueFigures",
    "connection_name",
]


@dataclass(frozen=True)
class MessageCounts:
    """Messages counted since a channel opened or a queue was created."""

    publish: int = 0
    #: Deliveries to consumers that acknowledge, and to no-ack consumers.
    deliver: int = 0
    deliver_no_ack: int = 0
    #: basic.get answered with a message (acknowledged later, or no-ack), or empty.
    get: int = 0
    get_no_ack: int = 0
    get_empty: int = 0
    ack: int = 0
    redeliver: int = 0
    confirm: int = 0
    return_unroutable: int = 0
    drop_unroutable: int = 0

    def __add__(self, other: MessageCounts) -> MessageCounts:
        return MessageCounts(
            *(a + b for a, b in zip(self.values(), other.values(), strict=True))
        )

    def values(self) -> tuple[int, ...]:
        return (
            self.publish, self.deliver, self.deliver_no_ack, self.get, self.get_no_ack,
            self.get_empty, self.ack, self.redeliver, self.confirm, self.return_unroutable,
            self.drop_unroutable,
        )


@dataclass(frozen=True)
class ConnectionDetail:
    """An open client connection."""

    #: As RabbitMQ names it: "client host:port -> broker host:port".
    name: str
    user: str
    vhost: str
    peer_host: str
    peer_port: int
    host: str
    port: int
    protocol: str
    channels: int
    channel_max: int
    frame_max: int
    #: Negotiated heartbeat interval in seconds (0: none).
    heartbeat: int
    #: Seconds since the epoch.
    connected_at: float
    recv_oct: int
    send_oct: int
    #: Socket reads and writes (RabbitMQ's ``recv_cnt``, ``send_cnt``).
    recv_cnt: int
    send_cnt: int
    #: Publishers are blocked by the memory alarm.
    blocked: bool
    client_properties: dict[str, Any] = field(repr=False)

    @property
    def user_provided_name(self) -> str | None:
        name = self.client_properties.get("connection_name")
        return name if isinstance(name, str) else None


@dataclass(frozen=True)
class ChannelDetail:
    """An open channel of an open connection."""

    #: As RabbitMQ names it: "<connection name> (<number>)".
    name: str
    number: int
    connection: ConnectionDetail
    consumers: int
    prefetch_count: int
    global_prefetch_count: int
    unacked: int
    confirm: bool
    transactional: bool
    #: Publishes waiting for their confirm.
    unconfirmed: int
    counts: MessageCounts
    #: Publishes received in confirm mode; publishes and acks in the open transaction.
    received_confirm: int = 0
    uncommitted_messages: int = 0
    uncommitted_acks: int = 0


@dataclass(frozen=True)
class ConsumerDetail:
    tag: str
    queue: str
    vhost: str
    channel: ChannelDetail
    no_ack: bool
    exclusive: bool
    prefetch_count: int
    priority: int
    #: Whether it gets messages now (False for the waiting ones of a single-active queue).
    active: bool
    arguments: dict[str, Any] = field(repr=False)


class QueueFigures(NamedTuple):
    """A queue's depth and counters: cheap to take of every queue at once."""

    vhost: str
    name: str
    ready: int
    unacked: int
    consumers: int
    ready_bytes: int
    unacked_bytes: int
    #: :meth:`MessageCounts.values` of the queue's counts.
    counts: tuple[int, ...]

    @property
    def messages(self) -> int:
        return self.ready + self.unacked


@dataclass(frozen=True)
class QueueDetail:
    """A queue's properties, counts and counters."""

    stats: QueueStats
    #: Body bytes of ready and of unacknowledged messages.
    ready_bytes: int
    unacked_bytes: int
    counts: MessageCounts
    #: The owning connection's name for an exclusive queue.
    owner: str | None
    exclusive_consumer_tag: str | None
    single_active: bool
    #: What its messages take in memory, as the memory alarm counts them
    #: (:func:`~kiltmq.broker.memory.queue_memory`).
    memory: int = 0


def connection_name(conn: ServerConnection) -> str:
    """RabbitMQ's name of a connection: "client host:port -> broker host:port"."""
    peer = _address(conn.session.peer)
    local = _address(conn.transport.get_extra_info("sockname") if conn.transport else None)
    return f"{_format(peer)} -> {_format(local)}"


def _address(value: Any) -> tuple[str, int]:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return str(value or ""), 0


def _format(address: tuple[str, int]) -> str:
    host, port = address
    return f"{host}:{port}"


def _channel_counts(value: Callable[[str], int]) -> MessageCounts:
    """Counts from a channel's counters, read by name (see ``ChannelState.COUNTERS``)."""
    got = value("got")
    no_ack_got = value("no_ack_got")
    no_ack_delivered = value("no_ack_delivered")
    return MessageCounts(
        publish=value("published"),
        deliver=value("delivery_tag") - got - no_ack_delivered,
        deliver_no_ack=no_ack_delivered,
        get=got - no_ack_got,
        get_no_ack=no_ack_got,
        get_empty=value("got_empty"),
        ack=value("acked"),
        redeliver=value("redelivered"),
        confirm=value("confirmed"),
        return_unroutable=value("returned"),
        drop_unroutable=value("dropped"),
    )


def _get(counters: dict[str, int], name: str) -> int:
    return counters.get(name, 0)


def channel_counts(channel: Channel) -> MessageCounts:
    return _channel_counts(lambda name: int(getattr(channel, name)))


def queue_count_values(queue: Queue) -> tuple[int, ...]:
    """:meth:`MessageCounts.values` of :func:`queue_counts`."""
    no_ack_delivered = queue.no_ack_delivered
    no_ack_got = queue.no_ack_got
    return (
        queue.published, queue.delivered - no_ack_delivered, no_ack_delivered,
        queue.got - no_ack_got, no_ack_got, queue.got_empty,
        queue.acked - no_ack_delivered - no_ack_got, queue.redelivered, 0, 0, 0,
    )


def queue_counts(queue: Queue) -> MessageCounts:
    return MessageCounts(*queue_count_values(queue))


class Monitor:
    """Read a running broker (on its loop)."""

    def __init__(self, broker: ManagedBroker, admin: Admin | None = None) -> None:
        self.broker = broker
        self.admin = admin if admin is not None else Admin(broker)

    # -- connections and channels -----------------------------------------------------------

    def _connection(self, conn: ServerConnection) -> ConnectionDetail:
        session = conn.session
        core = conn.core
        peer = _address(session.peer)
        transport = conn.transport
        local = _address(transport.get_extra_info("sockname") if transport else None)
        return ConnectionDetail(
            name=f"{_format(peer)} -> {_format(local)}",
            user=session.username,
            vhost=session.vhost.name,
            peer_host=peer[0],
            peer_port=peer[1],
            host=local[0],
            port=local[1],
            protocol=f"AMQP {core.dialect.name}",
            channels=len(session.channels),
            channel_max=core.channel_max,
            frame_max=core.frame_max,
            heartbeat=int(core.heartbeat.interval),
            connected_at=conn.connected_at,
            recv_oct=conn.recv_oct,
            send_oct=conn.send_oct,
            recv_cnt=conn.recv_cnt,
            send_cnt=conn.send_cnt,
            blocked=session.blocked_by_alarm,
            client_properties=dict(session.client_properties),
        )

    def connections(self, vhost: str | None = None) -> list[ConnectionDetail]:
        """Open client connections (the handshake done, not closing)."""
        return [self._connection(c) for c in self.admin.open_connections(vhost=vhost)]

    def _channel(self, channel: Channel, conn: ConnectionDetail) -> ChannelDetail:
        tx = channel.tx
        return ChannelDetail(
            name=f"{conn.name} ({channel.number})",
            number=channel.number,
            connection=conn,
            consumers=len(channel.consumers),
            prefetch_count=channel.prefetch,
            global_prefetch_count=channel.prefetch_global,
            unacked=len(channel.unacked),
            confirm=channel.confirm,
            transactional=channel.tx is not None,
            unconfirmed=len(channel._unconfirmed),
            counts=channel_counts(channel),
            received_confirm=channel.publish_seq,
            uncommitted_messages=len(tx.publishes) if tx is not None else 0,
            uncommitted_acks=(
                sum(len(settled) for _kind, settled in tx.settles) if tx is not None else 0
            ),
        )

    def channels(self, vhost: str | None = None) -> list[ChannelDetail]:
        """Open channels of open connections, by connection and number."""
        found = []
        for conn in self.admin.open_connections(vhost=vhost):
            detail = self._connection(conn)
            for number in sorted(conn.session.channels):
                found.append(self._channel(conn.session.channels[number], detail))
        return found

    def consumers(self, vhost: str | None = None) -> list[ConsumerDetail]:
        """Consumers of the queues of ``vhost`` (None: every vhost)."""
        names = [vhost] if vhost is not None else sorted(self.broker.vhosts)
        details: dict[int, ChannelDetail] = {}
        found = []
        for name in names:
            host = self.admin.vhost(name)
            for _qname, queue in sorted(host.queues.items()):
                for consumer in sorted(queue.consumers, key=lambda c: c.tag):
                    found.append(self._consumer(consumer, name, details))
        return found

    def _consumer(
        self, consumer: Consumer, vhost: str, details: dict[int, ChannelDetail]
    ) -> ConsumerDetail:
        channel: Channel = consumer.channel  # type: ignore[assignment]
        detail = details.get(id(channel))
        if detail is None:
            conn: ServerConnection = channel.session.conn  # type: ignore[assignment]
            detail = details[id(channel)] = self._channel(channel, self._connection(conn))
        queue = consumer.queue
        active = True
        if queue.single_active:
            active = bool(queue.consumers) and queue.consumers[0] is consumer
        return ConsumerDetail(
            tag=consumer.tag,
            queue=queue.name,
            vhost=vhost,
            channel=detail,
            no_ack=consumer.no_ack,
            exclusive=consumer.exclusive,
            prefetch_count=consumer.prefetch,
            priority=consumer.priority,
            active=active,
            arguments=dict(consumer.arguments or {}),
        )

    def vhost_counts(self, vhost: str | None = None) -> dict[str, MessageCounts]:
        """What the channels of ``vhost`` (None: of each vhost) counted, the open ones
        and those closed, by vhost name."""
        names = [vhost] if vhost is not None else sorted(self.broker.vhosts)
        counts = {}
        for name in names:
            closed = self.admin.vhost(name).closed_channel_counts
            counts[name] = _channel_counts(partial(_get, closed))
        for channel in self.channels(vhost):
            name = channel.connection.vhost
            if name in counts:
                counts[name] = counts[name] + channel.counts
        return counts

    def received_confirm(self) -> int:
        """Publishes received in confirm mode by every channel, open and closed."""
        closed = sum(
            host.closed_channel_counts.get("publish_seq", 0)
            for host in self.broker.vhosts.values()
        )
        return closed + sum(c.received_confirm for c in self.channels())

    def dead_lettered(self) -> dict[tuple[str, bool], int]:
        """Messages dead in every vhost's queues, by (reason: ``rejected``, ``expired``,
        ``maxlen``; whether the queue had a dead-letter exchange)."""
        totals: dict[tuple[str, bool], int] = {}
        for host in self.broker.vhosts.values():
            for key, count in host.dead_lettered.items():
                totals[key] = totals.get(key, 0) + count
        return totals

    def exchange_counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(publish_in, publish_out) of each exchange, by (vhost, exchange name)."""
        return {
            (vname, x.name): (x.publish_in, x.publish_out)
            for vname, host in self.broker.vhosts.items()
            for x in host.exchanges.values()
        }

    # -- queues -----------------------------------------------------------------------------

    def queue_names(self, vhost: str | None = None) -> list[tuple[str, str]]:
        """(vhost, name) of the queues of ``vhost`` (None: every vhost), by vhost and
        name."""
        names = [vhost] if vhost is not None else sorted(self.broker.vhosts)
        return [(v, q) for v in names for q in sorted(self.admin.vhost(v).queues)]

    def queue_figures(
        self, names: Iterable[tuple[str, str]] | None = None
    ) -> list[QueueFigures]:
        """The figures of the queues named by (vhost, name), in that order (None: every
        queue, by vhost and name; NotFound if one is not)."""
        unacked: dict[str, dict[Queue, list[int]]] = {}
        found = []
        for vhost, queue in self._named(names):
            sizes = unacked.get(vhost)
            if sizes is None:
                sizes = unacked[vhost] = {}
                for owner, entry in self.admin._unacked(queue.vhost):
                    counted = sizes.get(owner)
                    if counted is None:
                        counted = sizes[owner] = [0, 0]
                    counted[0] += 1
                    counted[1] += entry.message.size
            count, size = sizes.get(queue, (0, 0))
            found.append(QueueFigures(
                vhost, queue.name, len(queue.ready), count, len(queue.consumers),
                queue.ready_bytes, size, queue_count_values(queue),
            ))
        return found

    def _named(self, names: Iterable[tuple[str, str]] | None) -> Iterator[tuple[str, Queue]]:
        if names is None:
            vhosts = self.broker.vhosts
            for vhost in sorted(vhosts):
                for _name, queue in sorted(vhosts[vhost].queues.items()):
                    yield vhost, queue
        else:
            for vhost, name in names:
                yield vhost, self.admin.queue(vhost, name)

    def queues(self, vhost: str | None = None) -> list[QueueDetail]:
        """The queues of ``vhost`` (None: every vhost), by vhost and name."""
        return self.queues_named(self.queue_names(vhost))

    def queues_named(self, names: Iterable[tuple[str, str]]) -> list[QueueDetail]:
        """The queues named by (vhost, name), in that order (NotFound if one is not)."""
        unacked: dict[str, dict[Queue, list[int]]] = {}
        found = []
        for vhost, queue in self._named(names):
            sizes = unacked.get(vhost)
            if sizes is None:
                sizes = unacked[vhost] = {}
                for owner, entry in self.admin._unacked(queue.vhost):
                    sizes.setdefault(owner, []).append(entry.message.size)
            found.append(self._queue(queue, sizes.get(queue, [])))
        return found

    def queue(self, vhost: str, name: str) -> QueueDetail:
        """One queue (NotFound if there is no such vhost or queue)."""
        queue = self.admin.queue(vhost, name)
        sizes = [e.message.size for e in self.admin.unacked_entries(queue)]
        return self._queue(queue, sizes)

    def _queue(self, queue: Queue, unacked: list[int]) -> QueueDetail:
        owner = queue.owner
        owner_name = None
        conn = getattr(owner, "conn", None)
        if conn is not None and getattr(conn, "transport", None) is not None:
            owner_name = connection_name(conn)
        exclusive = queue.exclusive_consumer
        return QueueDetail(
            stats=queue_stats(queue, len(unacked)),
            ready_bytes=queue.ready_bytes,
            unacked_bytes=sum(unacked),
            counts=queue_counts(queue),
            owner=owner_name,
            exclusive_consumer_tag=exclusive.tag if exclusive is not None else None,
            single_active=queue.single_active,
            memory=queue_memory(queue, len(unacked), sum(unacked)),
        )
