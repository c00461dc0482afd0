"""What a broker session (:mod:`kiltmq.broker.session`) needs of its connection and of the
broker, as protocols that :class:`~kiltmq.broker.server.ServerConnection` and
:class:`~kiltmq.broker.broker.Broker` satisfy structurally."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from kiltmq.broker.channel import ChannelConnection

if TYPE_CHECKING:
    from kiltmq.broker.auth import AuthDB
    from kiltmq.broker.user_limits import UserUsage
    from kiltmq.broker.vhost import VirtualHost

__all__ = ["SessionBroker", "SessionConnection"]


class SessionConnection(ChannelConnection, Protocol):
    """What a session needs from its connection: output, reading, timers, closing."""

    def send_unsupported_header(self) -> None: ...

    def pause_reading(self, reason: str) -> None: ...

    def resume_reading(self, reason: str) -> None: ...

    def opened(self) -> None: ...

    def start_heartbeat(self, interval: int) -> None: ...

    def close_after_flush(self) -> None: ...

    def await_close_ok(self, *, core_failed: bool = False) -> None: ...

    def abort(self) -> None: ...


class SessionBroker(Protocol):
    """What a session needs from the broker: its limits, users and virtual hosts."""

    @property
    def cluster_name(self) -> str: ...

    @property
    def channel_max(self) -> int: ...

    @property
    def frame_max(self) -> int: ...

    @property
    def heartbeat(self) -> int: ...

    @property
    def auth(self) -> AuthDB: ...

    @property
    def vhosts(self) -> Mapping[str, VirtualHost]: ...

    @property
    def user_usage(self) -> UserUsage: ...
