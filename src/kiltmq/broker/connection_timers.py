"""A broker connection's timers: the handshake timeout, stalled content and heartbeats.

Stalled content
---------------
A message whose content header came but whose body is incomplete holds its bytes in
the protocol core. Every quarter of the broker's ``content_timeout`` a timer looks at
each channel's partial content; one that got no body frame for ``content_timeout``
seconds (while the connection was being read) closes the connection with 505
UNEXPECTED_FRAME. Nothing is timed per frame.

Heartbeats
----------
The deadlines are the protocol core's (:class:`~kiltmq.protocol.heartbeat.Heartbeat`);
one timer at the next of them sends a heartbeat or gives up on a silent client. A
client blocked by an alarm is not read, so its silence then does not count.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from kiltmq.broker.clock import Clock
from kiltmq.broker.session import Session
from kiltmq.protocol import spec
from kiltmq.protocol.connection import Connection
from kiltmq.protocol.errors import UnexpectedFrame

__all__ = ["ConnectionTimers", "TimedBroker"]

log = logging.getLogger("kiltmq.broker")


class TimedBroker(Protocol):
    """What the timers need from the broker: its content timeout."""

    @property
    def content_timeout(self) -> float: ...


class ConnectionTimers:
    """The timer part of :class:`~kiltmq.broker.server.ServerConnection` (a mixin: the
    attributes below are the connection's)."""

    broker: TimedBroker
    clock: Clock
    core: Connection
    session: Session
    _closed: bool
    _read_pauses: dict[str, None]
    _heartbeat_timer: asyncio.TimerHandle | None
    _handshake_timer: asyncio.TimerHandle | None
    _content_timer: asyncio.TimerHandle | None
    #: Channel -> (content method, body bytes received, when first seen so).
    _partial: dict[int, tuple[spec.Method, int, float]]

    if TYPE_CHECKING:

        def flush(self) -> None: ...

        def abort(self) -> None: ...

    def opened(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if self.broker.content_timeout > 0 and not self._closed:
            self._content_timer = self.clock.call_later(
                self.broker.content_timeout / 4, self._check_content
            )

    def _check_content(self) -> None:
        """Close the connection if a partial content made no progress for the
        broker's ``content_timeout`` (see the module docstring)."""
        self._content_timer = None
        if self._closed or self.session.closing:
            return
        timeout = self.broker.content_timeout
        now = self.clock.time()
        partial: dict[int, tuple[spec.Method, int, float]] = {}
        if not self._read_pauses:  # a client we do not read cannot make progress
            for number, channel in self.core.channels.items():
                method = channel.content_method
                if not channel.header_seen or method is None:
                    continue
                seen = self._partial.get(number)
                if seen is None or seen[0] is not method or seen[1] != channel.received:
                    partial[number] = (method, channel.received, now)
                elif now - seen[2] >= timeout:
                    self._content_stalled(number, method, channel.received, channel.body_size)
                    return
                else:
                    partial[number] = seen
        self._partial = partial
        self._content_timer = self.clock.call_later(timeout / 4, self._check_content)

    def _content_stalled(self, number: int, method: spec.Method, received: int, size: int) -> None:
        log.warning("%s: content on channel %d stalled", self.session.peer_name, number)
        self.core.channels[number].drop_content()
        self.session.connection_error(
            UnexpectedFrame(
                f"content body on channel {number} incomplete ({received} of {size} bytes) "
                f"with no body frame for {self.broker.content_timeout:g}s",
                method.CLASS_ID,
                method.METHOD_ID,
            )
        )

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if not self.session.opened and not self._closed:
            log.info("%s: handshake timed out", self.session.peer_name)
            self.abort()

    def start_heartbeat(self, interval: int) -> None:
        if interval <= 0 or self._closed:
            return
        now = self.clock.time()
        self.core.heartbeat.start(interval, now)
        self._schedule_heartbeat(now)

    def _schedule_heartbeat(self, now: float) -> None:
        deadline = self.core.heartbeat.next_deadline(now)
        if deadline is not None:
            self._heartbeat_timer = self.clock.call_at(
                max(deadline, now + 0.01), self._on_heartbeat
            )

    def _on_heartbeat(self) -> None:
        self._heartbeat_timer = None
        if self._closed:
            return
        heartbeat = self.core.heartbeat
        now = self.clock.time()
        # blocked: heartbeats are not read (as RabbitMQ); a jump of the clock: the client
        # could not send meanwhile
        if "alarm" in self._read_pauses or self.clock.jumping:
            heartbeat.last_received = now
        if heartbeat.peer_dead(now):
            log.warning(
                "%s: missed heartbeats from client, timeout: %ss",
                self.session.peer_name,
                heartbeat.interval,
            )
            self.abort()
            return
        if heartbeat.send_due(now):
            self.core.send_heartbeat()
            self.flush()
        self._schedule_heartbeat(now)
