"""The errors of the broker's administration (:mod:`kiltmq.broker.admin`): what
``kiltmq ctl`` prints on one line and the management API answers with."""

from __future__ import annotations

__all__ = ["AdminError", "NotFound"]


class AdminError(Exception):
    """An administrative request cannot be done; the message says why."""


class NotFound(AdminError, LookupError):
    """No such vhost, user, queue, exchange, policy or connection."""
