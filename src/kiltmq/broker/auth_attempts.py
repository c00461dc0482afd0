"""Logins tried, by protocol, as RabbitMQ's auth attempt metrics count them
(``/api/auth/attempts/{node}``): ``amqp091`` for each AMQP connection's login,
``http`` for each management API request that gives credentials. Two integers per
protocol, added to once per login."""

from __future__ import annotations

from typing import Any

__all__ = ["AuthAttempts"]


class AuthAttempts:
    """Succeeded and failed logins by protocol, in the order protocols were first seen."""

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}

    def record(self, protocol: str, succeeded: bool) -> None:
        counts = self._counts.get(protocol)
        if counts is None:
            counts = self._counts[protocol] = [0, 0]
        counts[0 if succeeded else 1] += 1

    def reset(self) -> None:
        self._counts.clear()

    def items(self) -> list[dict[str, Any]]:
        """RabbitMQ's JSON: one object per protocol."""
        return [
            {
                "protocol": protocol,
                "auth_attempts": succeeded + failed,
                "auth_attempts_failed": failed,
                "auth_attempts_succeeded": succeeded,
            }
            for protocol, (succeeded, failed) in self._counts.items()
        ]
