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
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kiltmq.broker import snapshots
from kiltmq.broker.admin_error import AdminError, NotFound
from kiltmq.broker.alarm import shown
from kiltmq.broker.auth import AuthDB, Permission, User
from kiltmq.broker.churn import Churn
from kiltmq.broker.definitions import DefinitionsAdmin
from kiltmq.broker.memory import MemoryUse
from kiltmq.broker.policy_admin import PolicyAdmin
from kiltmq.broker.shovel import Shovels
from kiltmq.broker.snapshots import (
    BindingInfo,
    ConnectionInfo,
    ConsumerInfo,
    ExchangeInfo,
    PermissionInfo,
    QueueStats,
    Status,
    UserInfo,
)
from kiltmq.broker.store import MemoryStore, SQLiteStore, Store
from kiltmq.broker.topic_permissions_admin import TopicPermissionsAdmin
from kiltmq.broker.user_limits_admin import UserLimitsAdmin
from kiltmq.broker.vhost_limits import VhostLimitError
from kiltmq.protocol.errors import AMQPError, error_for
from kiltmq.version import __version__

if TYPE_CHECKING:
    from kiltmq.broker.channel import Channel
    from kiltmq.broker.queue import Entry, Queue, QueueOwner
    from kiltmq.broker.server import ServerConnection
    from kiltmq.broker.vhost import VirtualHost

__all__ = [
    "Admin",
    "AdminError",
    "BindingInfo",
    "ConnectionInfo",
    "ConsumerInfo",
    "ExchangeInfo",
    "ManagedBroker",
    "NotFound",
    "PermissionInfo",
    "QueueStats",
    "Status",
    "UserInfo",
]


class ManagedBroker(Protocol):
    """What :class:`Admin` needs of a :class:`~kiltmq.broker.Broker`."""

    @property
    def vhosts(self) -> Mapping[str, VirtualHost]: ...

    @property
    def auth(self) -> AuthDB: ...

    @property
    def store(self) -> Store: ...

    @property
    def connections(self) -> Collection[ServerConnection]: ...

    @property
    def listeners(self) -> Sequence[tuple[str, int]]: ...

    @property
    def ports(self) -> Sequence[int]: ...

    @property
    def uptime(self) -> float: ...

    @property
    def memory_limit(self) -> int | None: ...

    @property
    def alarms(self) -> frozenset[str]: ...

    @property
    def disk_free_limit(self) -> int | None: ...

    @property
    def ctl_path(self) -> Path | None: ...

    @property
    def churn(self) -> Churn: ...

    @property
    def shovels(self) -> Shovels: ...

    def memory_used(self) -> int: ...

    def memory_use(self) -> MemoryUse: ...

    def default_grantees(self) -> list[str]: ...

    def add_vhost(self, name: str) -> VirtualHost: ...

    def delete_vhost(self, name: str) -> bool: ...

    def set_vhost_limits(self, name: str, limits: str | Mapping[str, Any]) -> None: ...


# -- the admin interface -----------------------------------------------------------------


class Admin(PolicyAdmin, DefinitionsAdmin, UserLimitsAdmin, TopicPermissionsAdmin):
    """Inspect and change a running :class:`~kiltmq.broker.Broker` (on its loop).
    Policies: :class:`~kiltmq.broker.policy_admin.PolicyAdmin`; definitions export and
    import: :class:`~kiltmq.broker.definitions.DefinitionsAdmin`; user limits:
    :class:`~kiltmq.broker.user_limits_admin.UserLimitsAdmin`; topic permissions:
    :class:`~kiltmq.broker.topic_permissions_admin.TopicPermissionsAdmin`."""

    #: How long :meth:`committed` waits for the store.
    COMMIT_TIMEOUT = 10.0
    broker: ManagedBroker

    def __init__(self, broker: ManagedBroker) -> None:
        self.broker = broker

    binding_info = staticmethod(snapshots.binding_info)
    exchange_info = staticmethod(snapshots.exchange_info)
    connection_info = staticmethod(snapshots.connection_info)
    consumer_info = staticmethod(snapshots.consumer_info)

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

    def _unacked(self, vhost: VirtualHost | QueueOwner) -> Iterator[tuple[Queue, Entry]]:
        """Each delivery in ``vhost`` not yet acknowledged (those settled in a
        transaction not yet committed included), with the queue it came from."""
        for channel in self._channels(vhost):
            for owner, entry, _consumer in channel.unacked.values():
                yield owner, entry
            tx = channel.tx
            if tx is not None:  # settled inside an open transaction: not yet
                for _kind, records in tx.settles:
                    for _tag, (owner, entry, _consumer) in records:
                        yield owner, entry

    def unacked_entries(self, queue: Queue) -> list[Entry]:
        """The entries of ``queue`` delivered and not yet acknowledged (those settled in
        a transaction not yet committed included), in no particular order."""
        return [entry for owner, entry in self._unacked(queue.vhost) if owner is queue]

    def _unacked_counts(self, vhost: VirtualHost) -> dict[Queue, int]:
        counts: dict[Queue, int] = {}
        for owner, _entry in self._unacked(vhost):
            counts[owner] = counts.get(owner, 0) + 1
        return counts

    def queue_stats(self, vhost: str, name: str) -> QueueStats:
        queue = self.queue(vhost, name)
        return snapshots.queue_stats(queue, len(self.unacked_entries(queue)))

    def queues(self, vhost: str) -> list[QueueStats]:
        """The queues of ``vhost``, sorted by name."""
        host = self.vhost(vhost)
        counts = self._unacked_counts(host)
        return [
            snapshots.queue_stats(q, counts.get(q, 0))
            for _name, q in sorted(host.queues.items())
        ]

    def purge_queue(self, vhost: str, name: str) -> int:
        """Drop the ready messages of a queue (unacknowledged ones stay); returns how
        many."""
        try:
            return self.queue(vhost, name).purge()
        except AMQPError as error:  # NOT_IMPLEMENTED - a stream is not purged
            raise AdminError(error.reply_text.removeprefix("NOT_IMPLEMENTED - ")) from None

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

    def exchanges(self, vhost: str) -> list[ExchangeInfo]:
        """The exchanges of ``vhost`` (the default exchange ``""`` first), by name."""
        host = self.vhost(vhost)
        return [snapshots.exchange_info(x) for _name, x in sorted(host.exchanges.items())]

    def bindings(self, vhost: str) -> list[BindingInfo]:
        """Every binding of ``vhost``: first the default exchange's implicit binding of
        each queue (routing key = queue name, as RabbitMQ lists them), then the others
        by source, destination and routing key."""
        host = self.vhost(vhost)
        implicit = [
            BindingInfo("", name, "queue", name, {}) for name in sorted(host.queues)
        ]
        explicit = [
            snapshots.binding_info(b)
            for x in host.exchanges.values()
            if x is not host.default_exchange
            for b in x.bindings.values()
        ]
        explicit.sort(key=lambda b: (b.source, b.destination_type, b.destination, b.routing_key))
        return implicit + explicit

    # -- connections and consumers --------------------------------------------------------

    def consumers(self, vhost: str) -> list[ConsumerInfo]:
        """The consumers of the queues of ``vhost``, by queue name and tag."""
        host = self.vhost(vhost)
        return [
            snapshots.consumer_info(c)
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
        return [snapshots.connection_info(c) for c in self.open_connections(vhost=vhost)]

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
            closed.append(snapshots.connection_info(conn))
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
        """Delete a vhost: its clients get connection.close 320, its queues, exchanges,
        permissions and topic permissions go."""
        if not self.broker.delete_vhost(name):
            raise NotFound(f"no such vhost '{name}'")

    def vhost_limits(self, vhost: str | None = None) -> list[tuple[str, dict[str, int]]]:
        """(vhost, limits) of ``vhost``, or of every vhost that has limits (None)."""
        if vhost is not None:
            return [(vhost, dict(self.vhost(vhost).limits))]
        return [(n, dict(v.limits)) for n, v in sorted(self.broker.vhosts.items()) if v.limits]

    def set_vhost_limits(self, vhost: str, limits: str | Mapping[str, Any]) -> None:
        """Replace the limits of ``vhost`` (``max-connections``, ``max-queues``; negative:
        no limit), as ``rabbitmqctl set_vhost_limits``. Open connections and queues stay."""
        self.vhost(vhost)
        try:
            self.broker.set_vhost_limits(vhost, limits)
        except VhostLimitError as error:
            raise AdminError(str(error)) from None

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

    def put_user(self, name: str, password_hash: str | None, tags: Iterable[str]) -> bool:
        """Create or replace a user with a password hash (None: no password login);
        True if created. Open connections stay open, and the user's limits stay."""
        if not name:
            raise AdminError("a user name cannot be empty")
        old = self.broker.auth.users.get(name)
        created = old is None
        user = User(name, password_hash, frozenset(tags), {} if old is None else old.limits)
        self.broker.auth.add_user(user)
        self.broker.store.user_added(user)
        return created

    def change_password(self, name: str, password: str) -> None:
        """Set a user's password (open connections stay open, as in RabbitMQ)."""
        old = self.user(name)
        user = User.with_password(name, password, old.tags, old.limits)
        self.broker.auth.add_user(user)
        self.broker.store.user_added(user)

    def delete_user(self, name: str) -> list[ConnectionInfo]:
        """Delete a user and their permissions and topic permissions; their connections
        are closed with 320 (as RabbitMQ does since 3.7). Returns the connections closed."""
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
            memory_alarm="memory" in broker.alarms,
            alarms=tuple(sorted({shown(r) for r in broker.alarms})),
            disk_free_limit=broker.disk_free_limit,
            process_memory=snapshots.resident_memory(),
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
