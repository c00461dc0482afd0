"""Administration of a running broker: what ``kiltmq ctl`` and the test fixture
(:mod:`kiltmq.testing`) look at and change.

:class:`Admin` wraps a :class:`~kiltmq.broker.Broker`. Its methods must run on the
broker's event loop (from another thread: ``broker.call_in_loop``); they hand back
snapshots (frozen dataclasses), never live broker objects.

Changes to vhosts, users and permissions take the same road as configured ones: into
:attr:`Broker.auth <kiltmq.broker.Broker.auth>` and the broker's store (``await
admin.committed()`` waits until the store has written them), so they survive a restart
of a broker with a data directory. They apply to open connections at once, as in
RabbitMQ: new permissions are checked from the next operation on, a deleted user's
connections and a deleted vhost's connections are closed with 320 CONNECTION_FORCED.

Failures raise :class:`AdminError` (:class:`NotFound` for an unknown vhost, user, queue or
connection) with a message fit for a command line: ``no such queue 'x' in vhost '/'``.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from kiltmq import __version__
from kiltmq.broker.auth import Permission, User
from kiltmq.broker.store import MemoryStore, SQLiteStore
from kiltmq.protocol.errors import AMQPError, error_for

if TYPE_CHECKING:
    from kiltmq.broker.broker import Broker
    from kiltmq.broker.channel import Channel
    from kiltmq.broker.exchange import Exchange
    from kiltmq.broker.queue import Consumer, Entry, Queue, QueueOwner
    from kiltmq.broker.server import ServerConnection
    from kiltmq.broker.vhost import VirtualHost

__all__ = [
    "Admin",
    "AdminError",
    "BindingInfo",
    "ConnectionInfo",
    "ConsumerInfo",
    "ExchangeInfo",
    "NotFound",
    "PermissionInfo",
    "QueueStats",
    "Status",
    "UserInfo",
]


class AdminError(Exception):
    """An administrative request cannot be done; the message says why."""


class NotFound(AdminError, LookupError):
    """No such vhost, user, queue, exchange or connection."""


# -- snapshots ---------------------------------------------------------------------------


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


@dataclass(frozen=True)
class QueueStats:
    """A queue's properties and counts (no messages)."""

    name: str
    vhost: str
    durable: bool
    auto_delete: bool
    exclusive: bool
    arguments: dict[str, Any]
    #: Messages waiting to be delivered.
    ready: int
    #: Messages delivered (or fetched) and not yet acknowledged.
    unacked: int
    consumers: int
    #: Messages acknowledged since the queue was declared.
    acked: int

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
    #: Estimated bytes taken by queued messages (what the memory limit counts).
    queued_bytes: int
    #: The memory limit (None: none) and whether publishers are blocked by it.
    memory_limit: int | None
    memory_alarm: bool
    #: Resident memory of the broker's process in bytes, where the system tells.
    process_memory: int | None
    #: The store's data directory (None: memory-only or another store).
    data_dir: str | None
    ctl_socket: str | None
    python: str


# -- the admin interface -----------------------------------------------------------------


class Admin:
    """Inspect and change a running :class:`~kiltmq.broker.Broker` (on its loop)."""

    #: How long :meth:`committed` waits for the store.
    COMMIT_TIMEOUT = 10.0

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    # -- lookups --------------------------------------------------------------------------

    def vhost(self, name: str) -> VirtualHost:
        vhost = self.broker.vhosts.get(name)
        if vhost is None:
            raise NotFound(f"no such vhost '{name}'")
        return vhost

    def queue(self, vhost: str, name: str) -> Queue:
        queue = self.vhost(vhost).queues.get(name)
        if queue is None:
            raise NotFound(f"no such queue '{name}' in vhost '{vhost}'")
        return queue

    def user(self, name: str) -> User:
        user = self.broker.auth.users.get(name)
        if user is None:
            raise NotFound(f"no such user '{name}'")
        return user

    # -- queues ---------------------------------------------------------------------------

    def _channels(self, vhost: VirtualHost | QueueOwner | None = None) -> list[Channel]:
        channels: list[Channel] = []
        for conn in self.broker.connections:
            session = conn.session
            if session is None or (vhost is not None and session.vhost is not vhost):
                continue
            channels.extend(session.channels.values())
        return channels

    def unacked_entries(self, queue: Queue) -> list[Entry]:
        """The entries of ``queue`` delivered and not yet acknowledged (those settled in
        a transaction not yet committed included), in no particular order."""
        entries: list[Entry] = []
        for channel in self._channels(queue.vhost):
            for owner, entry, _consumer in channel.unacked.values():
                if owner is queue:
                    entries.append(entry)
            tx = channel.tx
            if tx is not None:  # settled inside an open transaction: not yet
                for _kind, records in tx.settles:
                    for _tag, (owner, entry, _consumer) in records:
                        if owner is queue:
                            entries.append(entry)
        return entries

    def _unacked_counts(self, vhost: VirtualHost) -> dict[Queue, int]:
        counts: dict[Queue, int] = {}
        for channel in self._channels(vhost):
            for owner, _entry, _consumer in channel.unacked.values():
                counts[owner] = counts.get(owner, 0) + 1
            tx = channel.tx
            if tx is not None:
                for _kind, records in tx.settles:
                    for _tag, (owner, _entry, _consumer) in records:
                        counts[owner] = counts.get(owner, 0) + 1
        return counts

    def _queue_stats(self, queue: Queue, unacked: int) -> QueueStats:
        return QueueStats(
            name=queue.name,
            vhost=queue.vhost.name,
            durable=queue.durable,
            auto_delete=queue.auto_delete,
            exclusive=queue.exclusive,
            arguments=dict(queue.arguments),
            ready=len(queue.ready),
            unacked=unacked,
            consumers=len(queue.consumers),
            acked=queue.acked,
        )

    def queue_stats(self, vhost: str, name: str) -> QueueStats:
        queue = self.queue(vhost, name)
        return self._queue_stats(queue, len(self.unacked_entries(queue)))

    def queues(self, vhost: str) -> list[QueueStats]:
        """The queues of ``vhost``, sorted by name."""
        host = self.vhost(vhost)
        counts = self._unacked_counts(host)
        return [
            self._queue_stats(q, counts.get(q, 0))
            for _name, q in sorted(host.queues.items())
        ]

    def purge_queue(self, vhost: str, name: str) -> int:
        """Drop the ready messages of a queue (unacknowledged ones stay); returns how
        many."""
        return self.queue(vhost, name).purge()

    def delete_queue(
        self, vhost: str, name: str, *, if_unused: bool = False, if_empty: bool = False
    ) -> int:
        """Delete a queue, exclusive ones too (their consumers are cancelled); returns
        the number of ready messages it had."""
        queue = self.queue(vhost, name)
        try:
            return queue.vhost.delete_queue(queue, if_unused=if_unused, if_empty=if_empty)
        except AMQPError as error:  # PRECONDITION_FAILED - queue ... in use / not empty
            raise AdminError(error.reply_text.removeprefix("PRECONDITION_FAILED - ")) from None

    # -- exchanges and bindings -----------------------------------------------------------

    @staticmethod
    def binding_info(binding: Any) -> BindingInfo:
        return BindingInfo(
            source=binding.source.name,
            destination=binding.destination.name,
            destination_type=binding.destination_type,
            routing_key=binding.routing_key,
            arguments=dict(binding.arguments),
        )

    def exchange_info(self, exchange: Exchange) -> ExchangeInfo:
        """``exchange`` with the bindings it is the source of (the default exchange's
        implicit bindings are not listed)."""
        return ExchangeInfo(
            name=exchange.name,
            type=exchange.TYPE,
            durable=exchange.durable,
            auto_delete=exchange.auto_delete,
            internal=exchange.internal,
            arguments=dict(exchange.arguments),
            bindings=tuple(self.binding_info(b) for b in exchange.bindings.values()),
        )

    def exchanges(self, vhost: str) -> list[ExchangeInfo]:
        """The exchanges of ``vhost`` (the default exchange ``""`` first), by name."""
        host = self.vhost(vhost)
        return [self.exchange_info(x) for _name, x in sorted(host.exchanges.items())]

    def bindings(self, vhost: str) -> list[BindingInfo]:
        """Every binding of ``vhost``: first the default exchange's implicit binding of
        each queue (routing key = queue name, as RabbitMQ lists them), then the others
        by source, destination and routing key."""
        host = self.vhost(vhost)
        implicit = [
            BindingInfo("", name, "queue", name, {}) for name in sorted(host.queues)
        ]
        explicit = [
            self.binding_info(b)
            for x in host.exchanges.values()
            if x is not host.default_exchange
            for b in x.bindings.values()
        ]
        explicit.sort(key=lambda b: (b.source, b.destination_type, b.destination, b.routing_key))
        return implicit + explicit

    # -- connections and consumers --------------------------------------------------------

    @staticmethod
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

    def consumer_info(self, consumer: Consumer) -> ConsumerInfo:
        channel = cast("Channel", consumer.channel)
        return ConsumerInfo(
            tag=consumer.tag,
            queue=consumer.queue.name,
            channel=channel.number,
            connection=self.connection_info(channel.session.conn),
            no_ack=consumer.no_ack,
            exclusive=consumer.exclusive,
            prefetch=consumer.prefetch,
            channel_prefetch=channel.prefetch_global,
            unacked=consumer.unacked,
            priority=consumer.priority,
            arguments=dict(consumer.arguments or {}),
        )

    def consumers(self, vhost: str) -> list[ConsumerInfo]:
        """The consumers of the queues of ``vhost``, by queue name and tag."""
        host = self.vhost(vhost)
        return [
            self.consumer_info(c)
            for _name, q in sorted(host.queues.items())
            for c in sorted(q.consumers, key=lambda c: c.tag)
        ]

    def open_connections(
        self,
        *,
        name: str | None = None,
        user: str | None = None,
        vhost: str | None = None,
        name_or_peer: str | None = None,
    ) -> list[ServerConnection]:
        """Client connections that completed the handshake and are not closing, sorted
        by peer address. Each given filter must match: ``name`` the client's
        ``connection_name``, ``user``, ``vhost``, ``name_or_peer`` either the name or
        the client's "host:port"."""
        found = []
        for conn in self.broker.connections:
            session = conn.session
            if session is None or not session.opened or session.closing or conn.closed:
                continue
            if vhost is not None and session.vhost.name != vhost:
                continue
            if user is not None and session.username != user:
                continue
            conn_name = session.client_properties.get("connection_name")
            if name is not None and conn_name != name:
                continue
            if name_or_peer is not None and name_or_peer not in (conn_name, session.peer_name):
                continue
            found.append(conn)
        found.sort(key=lambda c: c.session.peer_name)
        return found

    def connections(self, *, vhost: str | None = None) -> list[ConnectionInfo]:
        return [self.connection_info(c) for c in self.open_connections(vhost=vhost)]

    def close_connections(
        self,
        connections: Iterable[ServerConnection],
        reply_text: str,
        reply_code: int = 320,
    ) -> list[ConnectionInfo]:
        """Close ``connections`` from the server side, as ``rabbitmqctl
        close_connection``: connection.close with ``reply_code`` and ``reply_text``
        (given "NAME - " in front if it lacks it, e.g. "CONNECTION_FORCED - "), their
        channels closed and unacknowledged messages requeued; a client that does not
        answer with close-ok within 3 s is disconnected. Returns what was closed."""
        closed = []
        for conn in list(connections):
            closed.append(self.connection_info(conn))
            conn.session.connection_error(
                error_for(reply_code, reply_text, scope="connection")
            )
        return closed

    # -- vhosts ---------------------------------------------------------------------------

    def vhost_names(self) -> list[str]:
        return sorted(self.broker.vhosts)

    def add_vhost(self, name: str, *, users: Iterable[str] | None = None) -> bool:
        """Create vhost ``name``; False if it exists (nothing changes then).

        ``users`` (each must exist) may then do everything in it. None: nobody (grant
        with :meth:`set_permissions`), except on a broker given users but no
        permissions, whose users may do everything everywhere
        (:meth:`Broker.default_grantees <kiltmq.broker.Broker.default_grantees>`)."""
        broker = self.broker
        if not name:
            raise AdminError("a vhost name cannot be empty")
        if name in broker.vhosts:
            return False
        grant = list(users) if users is not None else broker.default_grantees()
        for user in grant:
            self.user(user)
        broker.add_vhost(name)
        broker.store.vhost_added(name)
        for user in grant:
            self._set_permissions(user, name, ".*", ".*", ".*")
        return True

    def delete_vhost(self, name: str) -> None:
        """Delete a vhost: its clients get connection.close 320, its queues, exchanges
        and permissions go."""
        if not self.broker.delete_vhost(name):
            raise NotFound(f"no such vhost '{name}'")

    # -- users ----------------------------------------------------------------------------

    def users(self) -> list[UserInfo]:
        return [
            UserInfo(u.name, tuple(sorted(u.tags)))
            for _name, u in sorted(self.broker.auth.users.items())
        ]

    def add_user(self, name: str, password: str, tags: Iterable[str] = ()) -> None:
        """Add a user (with no permissions: see :meth:`set_permissions`)."""
        if not name:
            raise AdminError("a user name cannot be empty")
        if name in self.broker.auth.users:
            raise AdminError(f"user '{name}' already exists")
        user = User.with_password(name, password, tags)
        self.broker.auth.add_user(user)
        self.broker.store.user_added(user)

    def change_password(self, name: str, password: str) -> None:
        """Set a user's password (open connections stay open, as in RabbitMQ)."""
        old = self.user(name)
        user = User.with_password(name, password, old.tags)
        self.broker.auth.add_user(user)
        self.broker.store.user_added(user)

    def delete_user(self, name: str) -> list[ConnectionInfo]:
        """Delete a user and their permissions; their connections are closed with 320
        (as RabbitMQ does since 3.7). Returns the connections closed."""
        self.user(name)
        self.broker.auth.remove_user(name)
        self.broker.store.user_removed(name)
        return self.close_connections(
            self.open_connections(user=name),
            f"CONNECTION_FORCED - user '{name}' is deleted",
        )

    # -- permissions ----------------------------------------------------------------------

    def permissions(self, vhost: str | None = None) -> list[PermissionInfo]:
        """Permissions in ``vhost`` (None: every vhost), by vhost and user."""
        if vhost is not None:
            self.vhost(vhost)
        return [
            PermissionInfo(u, v, p.configure, p.write, p.read)
            for (u, v), p in sorted(
                self.broker.auth.permissions.items(), key=lambda item: (item[0][1], item[0][0])
            )
            if vhost is None or v == vhost
        ]

    def set_permissions(
        self, user: str, vhost: str, configure: str, write: str, read: str
    ) -> None:
        """Set ``user``'s configure, write and read regexes in ``vhost``; open
        connections check them from their next operation on."""
        self.user(user)
        self.vhost(vhost)
        for pattern in (configure, write, read):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise AdminError(f"invalid regular expression '{pattern}': {exc}") from None
        self._set_permissions(user, vhost, configure, write, read)

    def _set_permissions(
        self, user: str, vhost: str, configure: str, write: str, read: str
    ) -> None:
        auth = self.broker.auth
        auth.set_permission(user, vhost, configure, write, read)
        self.broker.store.permission_set(user, vhost, configure, write, read)
        self._permission_changed(user, vhost, auth.permission(user, vhost))

    def clear_permissions(self, user: str, vhost: str) -> None:
        """Take away every permission of ``user`` in ``vhost``: their open connections
        there are refused (403) from their next operation on, as in RabbitMQ."""
        self.user(user)
        self.vhost(vhost)
        self.broker.auth.clear_permission(user, vhost)
        self.broker.store.permission_removed(user, vhost)
        self._permission_changed(user, vhost, None)

    def _permission_changed(self, user: str, vhost: str, permission: Permission | None) -> None:
        for conn in self.open_connections(user=user, vhost=vhost):
            conn.session.set_permission(permission)

    # -- the broker -----------------------------------------------------------------------

    def status(self) -> Status:
        broker = self.broker
        opened = self.open_connections()
        store = broker.store
        data_dir: str | None = None
        if isinstance(store, SQLiteStore):
            data_dir = str(store.data_dir)
        elif not isinstance(store, MemoryStore):
            data_dir = getattr(store, "data_dir", None)
        listeners = tuple(
            f"[{host}]:{port}" if ":" in host else f"{host or '0.0.0.0'}:{port}"
            for (host, _), port in zip(broker.listeners, broker.ports, strict=False)
        )
        queues = [q for v in broker.vhosts.values() for q in v.queues.values()]
        unacked = sum(len(ch.unacked) for ch in self._channels())
        ctl = broker.ctl_path
        return Status(
            version=__version__,
            pid=os.getpid(),
            uptime=broker.uptime,
            listeners=listeners,
            connections=len(opened),
            channels=sum(len(c.session.channels) for c in opened),
            vhosts=len(broker.vhosts),
            queues=len(queues),
            messages=sum(len(q.ready) for q in queues) + unacked,
            queued_bytes=broker.memory_used(),
            memory_limit=broker.memory_limit,
            memory_alarm=broker.alarm,
            process_memory=_resident_memory(),
            data_dir=data_dir,
            ctl_socket=str(ctl) if ctl is not None else None,
            python=sys.version.split()[0],
        )

    async def committed(self) -> None:
        """Wait until the store has written the changes made so far (at once for a
        memory-only broker). TimeoutError after :attr:`COMMIT_TIMEOUT` seconds (the store
        cannot write: the changes apply, but may not survive a restart)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def written() -> None:
            if not done.done():
                done.set_result(None)

        def report() -> None:  # may run on the store's thread
            loop.call_soon_threadsafe(written)

        self.broker.store.after_commit(report)
        await asyncio.wait_for(done, self.COMMIT_TIMEOUT)


def _resident_memory() -> int | None:
    """The process's resident set size in bytes (Linux), else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
