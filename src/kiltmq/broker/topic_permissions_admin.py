"""The admin methods for topic permissions (``rabbitmqctl set_topic_permissions``,
``clear_topic_permissions``, ``list_topic_permissions``,
``list_user_topic_permissions``): a mixin of :class:`~kiltmq.broker.admin.Admin`.

A topic permission is a write and a read regex of a user for the routing keys of one
topic exchange in one vhost (see :mod:`kiltmq.broker.auth`). Open connections of the
user in the vhost check the new ones from their next operation on, as in RabbitMQ.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from kiltmq.broker.admin_error import AdminError, NotFound
from kiltmq.broker.auth import AuthDB, pcre_error
from kiltmq.broker.snapshots import TopicPermissionInfo
from kiltmq.broker.store import Store

if TYPE_CHECKING:
    from kiltmq.broker.server import ServerConnection
    from kiltmq.broker.vhost import VirtualHost

__all__ = ["InvalidRegex", "TopicPermissionsAdmin", "TopicPermissionsBroker"]


class InvalidRegex(AdminError):
    """A pattern that is not a valid regular expression: the pattern, and the message
    and position RabbitMQ gives for it."""

    def __init__(self, pattern: str, message: str, position: int) -> None:
        super().__init__(f"regular expression '{pattern}' is invalid: {message} at {position}")
        self.pattern = pattern
        self.message = message
        self.position = position


class TopicPermissionsBroker(Protocol):
    """What :class:`TopicPermissionsAdmin` needs of the broker."""

    @property
    def auth(self) -> AuthDB: ...

    @property
    def store(self) -> Store: ...

    @property
    def vhosts(self) -> Mapping[str, VirtualHost]: ...


class _Admin(Protocol):
    @property
    def broker(self) -> TopicPermissionsBroker: ...

    def open_connections(
        self, *, vhost: str | None = None, user: str | None = None
    ) -> list[ServerConnection]: ...


def _known(admin: _Admin, user: str, vhost: str) -> None:
    if user not in admin.broker.auth.users:
        raise NotFound(f"no such user '{user}'")
    if vhost not in admin.broker.vhosts:
        raise NotFound(f"no such vhost '{vhost}'")


def _changed(admin: _Admin, user: str, vhost: str) -> None:
    topics = admin.broker.auth.topic_permission(user, vhost)
    for conn in admin.open_connections(user=user, vhost=vhost):
        conn.session.set_topic_permissions(topics)


class TopicPermissionsAdmin:
    """Topic permission methods of :class:`~kiltmq.broker.admin.Admin` (a mixin)."""

    def topic_permissions(
        self: _Admin, vhost: str | None = None, user: str | None = None
    ) -> list[TopicPermissionInfo]:
        """Topic permissions, of ``vhost`` and of ``user`` where given, by vhost, user
        and exchange."""
        found: Iterable[TopicPermissionInfo] = (
            TopicPermissionInfo(u, v, t.exchange, t.write, t.read)
            for (u, v), topics in self.broker.auth.topic_permissions.items()
            if (vhost is None or v == vhost) and (user is None or u == user)
            for t in topics.values()
        )
        return sorted(found, key=lambda t: (t.vhost, t.user, t.exchange))

    def set_topic_permissions(
        self: _Admin, user: str, vhost: str, exchange: str, write: str, read: str
    ) -> bool:
        """Set ``user``'s write and read regexes for the routing keys of ``exchange`` in
        ``vhost``; True if the user had no topic permission there before (for any
        exchange). :class:`InvalidRegex` for a bad pattern."""
        _known(self, user, vhost)
        for pattern in (write, read):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InvalidRegex(pattern, *pcre_error(exc)) from None
        auth = self.broker.auth
        first = auth.topic_permission(user, vhost) is None
        auth.set_topic_permission(user, vhost, exchange, write, read)
        self.broker.store.topic_permission_set(user, vhost, exchange, write, read)
        _changed(self, user, vhost)
        return first

    def clear_topic_permissions(
        self: _Admin, user: str, vhost: str, exchange: str | None = None
    ) -> None:
        """Remove ``user``'s topic permission for ``exchange`` in ``vhost`` (None: every
        one of them there)."""
        _known(self, user, vhost)
        self.broker.auth.clear_topic_permissions(user, vhost, exchange)
        self.broker.store.topic_permission_removed(user, vhost, exchange)
        _changed(self, user, vhost)
