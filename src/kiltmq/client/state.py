"""The lifecycle states of a client connection and of its channels."""

from __future__ import annotations

import enum

__all__ = ["ChannelState", "ConnectionState"]


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    RECOVERING = "recovering"
    CLOSING = "closing"
    CLOSED = "closed"


class ChannelState(enum.Enum):
    OPENING = "opening"
    OPEN = "open"
    #: the connection dropped; waiting for it to be recovered
    RECOVERING = "recovering"
    CLOSING = "closing"
    CLOSED = "closed"
