"""A broker's start from what its store kept, and what it tells the store at a clean stop.

At its first start a broker rebuilds the vhosts, users, permissions, topic permissions,
definitions and messages the store kept, then stores the configured vhosts, users and permissions
(configured ones win over stored ones of the same name). The defaults (guest/guest,
the vhost ``/``, everyone may do everything) are for a new store only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kiltmq.broker.auth import AuthDB
from kiltmq.broker.shovel import KIND as SHOVEL
from kiltmq.broker.shovel import Shovels
from kiltmq.broker.store import Store
from kiltmq.broker.vhost import VirtualHost

__all__ = ["BrokerRecovery"]


class BrokerRecovery:
    """The recovery part of :class:`~kiltmq.broker.Broker` (a mixin: the attributes
    below are the broker's)."""

    store: Store
    auth: AuthDB
    vhosts: dict[str, VirtualHost]
    shovels: Shovels
    _recovered: bool
    _implicit_users: bool
    _implicit_vhosts: bool
    _default_permissions: bool
    _configured_users: set[str]

    if TYPE_CHECKING:

        def add_vhost(self, name: str) -> VirtualHost: ...

    def _recover(self) -> None:
        """Rebuild what the store kept (first start only: a restarted Broker object still
        has it all in memory), then store the configured vhosts, users and permissions.
        Configured users and permissions win over stored ones of the same name."""
        recovered = self.store.recover()
        if not self._recovered:
            self._recovered = True
            auth = self.auth
            if recovered.vhosts or recovered.users:  # a store written before
                # the defaults were applied at its first start; since then the stored
                # users, vhosts and permissions are the truth (kiltmq ctl changes them)
                if self._implicit_users:
                    self._configured_users.clear()
                    auth.users.clear()
                    if self._default_permissions:
                        auth.permissions.clear()
                if self._implicit_vhosts:
                    for name in [n for n in self.vhosts if n not in recovered.vhosts]:
                        del self.vhosts[name]
                        auth.remove_vhost(name)
            for name in recovered.vhosts:
                self.add_vhost(name)
            for user in recovered.users:
                configured = auth.users.get(user.name)
                if configured is None:
                    auth.add_user(user)
                elif not configured.limits:  # limits are set at run time, and kept
                    configured.limits = user.limits
            for user_name, vhost_name, configure, write, read in recovered.permissions:
                if (user_name, vhost_name) not in auth.permissions:
                    auth.set_permission(user_name, vhost_name, configure, write, read)
            for user_name, vhost_name, exchange, write, read in recovered.topic_permissions:
                auth.set_topic_permission(user_name, vhost_name, exchange, write, read)
            for vhost_name, kind, definition in recovered.definitions:
                if kind == SHOVEL:  # started once everything else is back
                    self.shovels.restore(vhost_name, definition)
                else:
                    self.add_vhost(vhost_name).restore(kind, definition)
            for stored in recovered.messages:
                vhost = self.vhosts.get(stored.vhost)
                if vhost is not None:
                    vhost.restore_message(
                        stored.queue, stored.message, stored.redelivered, stored.expires_at,
                        stored.delivery_count, stored.dead, stored.arrived_at,
                    )
            if self._default_permissions:
                # no permissions configured: every configured user may do everything
                # everywhere, recovered vhosts included
                for user_name in self._configured_users:
                    for vhost_name in self.vhosts:
                        if (user_name, vhost_name) not in auth.permissions:
                            auth.set_permission(user_name, vhost_name)
        store = self.store
        for name in self.vhosts:
            store.vhost_added(name)
        for user in self.auth.users.values():
            store.user_added(user)
        for (user_name, vhost_name), perm in self.auth.permissions.items():
            store.permission_set(user_name, vhost_name, perm.configure, perm.write, perm.read)
        for (user_name, vhost_name), topics in self.auth.topic_permissions.items():
            for topic in topics.values():
                store.topic_permission_set(
                    user_name, vhost_name, topic.exchange, topic.write, topic.read
                )

    def _report_redelivered(self) -> None:
        """At a clean stop (connections closed, their unacknowledged deliveries back in
        their queues): tell the store which persistent messages had been delivered, so
        that exactly these come back redelivered."""
        for vhost in self.vhosts.values():
            for queue in vhost.queues.values():
                if queue.durable:
                    delivered = [
                        e.message for e in queue.ready if e.redelivered and e.message.persistent
                    ]
                    if delivered:
                        self.store.mark_redelivered(vhost.name, queue.name, delivered)
