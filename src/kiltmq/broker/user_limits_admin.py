"""The admin methods for per-user limits (``rabbitmqctl set_user_limits``,
``clear_user_limits``, ``list_user_limits``): a mixin of
:class:`~kiltmq.broker.admin.Admin`. Limits are kept with the user in the store; open
connections and channels stay when a limit is lowered, as in RabbitMQ."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from kiltmq.broker.admin_error import AdminError, NotFound
from kiltmq.broker.auth import AuthDB, User
from kiltmq.broker.store import Store
from kiltmq.broker.user_limits import UserLimitError, parse_user_limits

__all__ = ["UserLimitsAdmin", "UserLimitsBroker"]


class UserLimitsBroker(Protocol):
    """What :class:`UserLimitsAdmin` needs of the broker."""

    @property
    def auth(self) -> AuthDB: ...

    @property
    def store(self) -> Store: ...


class _Admin(Protocol):
    @property
    def broker(self) -> UserLimitsBroker: ...


def _user(admin: _Admin, name: str) -> User:
    user = admin.broker.auth.users.get(name)
    if user is None:
        raise NotFound(f"no such user '{name}'")
    return user


class UserLimitsAdmin:
    """Per-user limit methods of :class:`~kiltmq.broker.admin.Admin` (a mixin)."""

    def user_limits(self: _Admin, user: str | None = None) -> list[tuple[str, dict[str, int]]]:
        """(user, limits) of ``user``, or of every user that has limits (None), by name."""
        if user is not None:
            return [(user, dict(_user(self, user).limits))]
        users = self.broker.auth.users
        return [(n, dict(u.limits)) for n, u in sorted(users.items()) if u.limits]

    def set_user_limits(self: _Admin, user: str, limits: str | Mapping[str, Any]) -> None:
        """Set ``max-connections`` and ``max-channels`` of ``user`` (negative: no limit);
        limits not named stay, as ``rabbitmqctl set_user_limits`` does."""
        found = _user(self, user)
        try:
            checked = parse_user_limits(limits)
        except UserLimitError as error:
            raise AdminError(str(error)) from None
        found.limits = {**found.limits, **checked}
        self.broker.store.user_added(found)

    def clear_user_limits(self: _Admin, user: str, name: str = "all") -> None:
        """Remove the limit ``name`` of ``user`` ("all": every one); nothing happens for
        a limit it does not have."""
        found = _user(self, user)
        limits = {} if name == "all" else {k: v for k, v in found.limits.items() if k != name}
        if limits != found.limits:
            found.limits = limits
            self.broker.store.user_added(found)
