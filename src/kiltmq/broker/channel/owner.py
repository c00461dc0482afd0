"""What a channel needs from the connection it belongs to: the session (user, vhost,
permissions, client capabilities) and the connection's output side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from kiltmq.broker.auth import Permission, TopicPermission
    from kiltmq.broker.queue import Queue
    from kiltmq.broker.vhost import VirtualHost
    from kiltmq.protocol import spec
    from kiltmq.protocol.connection import Connection, Event

__all__ = ["ChannelConnection", "ChannelSession"]


class ChannelConnection(Protocol):
    """The connection's output: methods and encoded content frames, batched until the
    connection flushes."""

    #: False while deliveries must wait (output batch full or transport paused).
    can_send: bool
    #: Set by a channel that refused a delivery because of ``can_send``.
    starved: bool

    @property
    def core(self) -> Connection: ...

    def send_method(self, channel: int, method: spec.Method) -> None: ...

    def send_raw(self, data: bytes) -> None: ...

    def send_delivery(self, data: bytes, body: bytes | None = None) -> None: ...

    def want_flush(self) -> None: ...


class ChannelSession(Protocol):
    """The session a channel belongs to. The session itself is the owner of the
    exclusive queues the channel declares."""

    @property
    def conn(self) -> ChannelConnection:
        """The connection the channel writes to."""

    @property
    def vhost(self) -> VirtualHost: ...

    @property
    def permission(self) -> Permission | None: ...

    @property
    def topic_permissions(self) -> dict[str, TopicPermission] | None:
        """The user's topic permissions in the vhost by exchange (None: none)."""

    @property
    def username(self) -> str: ...

    @property
    def user_tags(self) -> frozenset[str]: ...

    @property
    def peer_name(self) -> str: ...

    @property
    def cancel_notify(self) -> bool: ...

    @property
    def blocked_by_alarm(self) -> bool: ...

    def publishing_while_blocked(self) -> None: ...

    def own_queue(self, queue: Queue) -> None: ...

    def confirms_pending(self, flush: Callable[[], None]) -> None:
        """Call ``flush`` when the connection next flushes its output."""

    def replay(self, number: int, events: list[Event]) -> None:
        """Handle the events held on channel ``number`` while it waited for the store."""
