"""Per-user limits, as RabbitMQ's ``rabbitmqctl set_user_limits``: ``max-connections``
(open connections of the user, over every vhost) and ``max-channels`` (open channels of
the user, over every connection). A negative value means no limit, 0 forbids. The limits
are kept on the user (:attr:`User.limits <kiltmq.broker.auth.User.limits>`); the counts
here, one :class:`UserUsage` per broker."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kiltmq.broker.auth import User
from kiltmq.protocol.errors import NotAllowed

__all__ = [
    "LIMIT_NAMES",
    "UserLimitError",
    "UserUsage",
    "channel_refused",
    "connection_refused",
    "parse_user_limits",
]

#: The limits a user may have.
LIMIT_NAMES = ("max-connections", "max-channels")


class UserLimitError(ValueError):
    """A user limit definition that cannot be applied; the message says why, in
    RabbitMQ's words."""


def _erlang(value: Any) -> str:
    """A JSON value as RabbitMQ's validation messages print it."""
    if isinstance(value, str):
        return f'<<"{value}">>'
    return json.dumps(value)


def parse_user_limits(definition: str | Mapping[str, Any]) -> dict[str, int]:
    """The limits of ``definition`` (a JSON object, or its text) checked: only
    :data:`LIMIT_NAMES`, each an integer."""
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except ValueError:
            raise UserLimitError("JSON decoding error. Reason: badarg") from None
    if not isinstance(definition, Mapping):
        raise UserLimitError(f"Unrecognised terms {_erlang(definition)} in user-limits")
    unknown = [(k, v) for k, v in definition.items() if k not in LIMIT_NAMES]
    if unknown:
        terms = ",".join(f"{{{_erlang(k)},{_erlang(v)}}}" for k, v in unknown)
        raise UserLimitError(f"Unrecognised terms [{terms}] in user-limits")
    limits: dict[str, int] = {}
    for name, value in definition.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserLimitError(f"{name} should be a number, actually was {_erlang(value)}")
        limits[name] = value
    return limits


def connection_refused(user: str, limit: int) -> NotAllowed:
    """RabbitMQ's refusal of connection.open over the user's ``max-connections``."""
    return NotAllowed(
        f"NOT_ALLOWED - connection refused for user '{user}': "
        f"user connection limit ({limit}) is reached",
        10,
        40,
    )


def channel_refused(user: str, limit: int) -> NotAllowed:
    """RabbitMQ's refusal of channel.open over the user's ``max-channels``: a connection
    error naming no method."""
    return NotAllowed(
        f"NOT_ALLOWED - number of channels opened for user '{user}' has reached the "
        f"maximum allowed user limit of ({limit})"
    )


def _limit(user: User | None, name: str) -> int | None:
    if user is None or not user.limits:
        return None
    value = user.limits.get(name)
    return None if value is None or value < 0 else value


class UserUsage:
    """Open connections and channels per user name, checked against the users' limits
    when one more opens."""

    def __init__(self) -> None:
        self.connections: dict[str, int] = {}
        self.channels: dict[str, int] = {}

    def check_connection(self, user: User | None, name: str) -> None:
        """Raise RabbitMQ's 530 if ``user`` (named ``name``) may not open one more
        connection."""
        limit = _limit(user, "max-connections")
        if limit is not None and self.connections.get(name, 0) >= limit:
            raise connection_refused(name, limit)

    def open_connection(self, name: str) -> None:
        self.connections[name] = self.connections.get(name, 0) + 1

    def close_connection(self, name: str) -> None:
        _decrement(self.connections, name)

    def open_channel(self, user: User | None, name: str) -> None:
        """Count a channel of ``name`` opening (530 over ``user``'s ``max-channels``)."""
        limit = _limit(user, "max-channels")
        count = self.channels.get(name, 0)
        if limit is not None and count >= limit:
            raise channel_refused(name, limit)
        self.channels[name] = count + 1

    def close_channels(self, name: str, count: int = 1) -> None:
        _decrement(self.channels, name, count)


def _decrement(counts: dict[str, int], name: str, by: int = 1) -> None:
    left = counts.get(name, 0) - by
    if left > 0:
        counts[name] = left
    else:
        counts.pop(name, None)
