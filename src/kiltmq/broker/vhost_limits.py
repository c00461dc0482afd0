"""Per-vhost limits, as RabbitMQ's ``rabbitmqctl set_vhost_limits``: ``max-connections``
and ``max-queues``. A negative value means no limit, 0 forbids."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kiltmq.protocol.errors import NotAllowed, PreconditionFailed

__all__ = ["LIMIT_NAMES", "VhostLimitError", "connection_refused", "parse_limits", "queue_refused"]

#: The limits a vhost may have.
LIMIT_NAMES = ("max-connections", "max-queues")


class VhostLimitError(ValueError):
    """A vhost limit definition that cannot be applied; the message says why."""


def parse_limits(definition: str | Mapping[str, Any]) -> dict[str, int]:
    """The limits of ``definition`` (a JSON object, or its text) checked: only
    :data:`LIMIT_NAMES`, each an integer."""
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except ValueError as exc:
            raise VhostLimitError(f"invalid JSON '{definition}': {exc}") from None
    if not isinstance(definition, Mapping):
        raise VhostLimitError("vhost limits must be a JSON object")
    unknown = sorted(str(k) for k in definition if k not in LIMIT_NAMES)
    if unknown:
        raise VhostLimitError(f"unrecognised vhost limits: {', '.join(unknown)}")
    limits: dict[str, int] = {}
    for name, value in definition.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise VhostLimitError(f"{name} should be an integer, actually was {value!r}")
        limits[name] = value
    return limits


def connection_refused(vhost: str, user: str, limit: int) -> NotAllowed:
    """RabbitMQ's refusal of connection.open over ``max-connections``."""
    return NotAllowed(
        f"NOT_ALLOWED - access to vhost '{vhost}' refused for user '{user}': "
        f"connection limit ({limit}) is reached",
        10,
        40,
    )


def queue_refused(vhost: str, queue: str, limit: int) -> PreconditionFailed:
    """RabbitMQ's refusal of queue.declare over ``max-queues``."""
    return PreconditionFailed(
        f"PRECONDITION_FAILED - cannot declare queue '{queue}': queue limit in vhost "
        f"'{vhost}' ({limit}) is reached"
    )
