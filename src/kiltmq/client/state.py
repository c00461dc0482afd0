"""The lifecycle states of a client connection and of its channels."""

from __future__ import annotations

import enum
from typing import ClassVar, Generic, TypeVar

__all__ = ["ChannelState", "ConnectionState", "Lifecycle"]


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


S = TypeVar("S", ConnectionState, ChannelState)


class Lifecycle(Generic[S]):
    """Something with a ``state`` (a connection or a channel)."""

    _OPEN: ClassVar[enum.Enum]
    _CLOSED: ClassVar[enum.Enum]
    state: S
    #: Why it closed (None while open, or when the application closed it).
    close_reason: BaseException | None

    @property
    def is_open(self) -> bool:
        """Open and usable now (False while a connection recovery is under way)."""
        return self.state is self._OPEN

    @property
    def is_closed(self) -> bool:
        """Closed for good; ``close_reason`` says why (None after ``close()``)."""
        return self.state is self._CLOSED
