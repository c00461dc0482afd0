"""Client heartbeats: a timer that sends a heartbeat frame when nothing was written for
half the negotiated interval, and reports the peer dead when it sent nothing for two
intervals (the rules are :class:`kiltmq.protocol.Heartbeat`'s)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kiltmq.protocol import Heartbeat

__all__ = ["HeartbeatTimer"]


class HeartbeatTimer:
    """Runs the heartbeat checks of one connection.

    ``alive()`` says whether the connection still wants heartbeats, ``send()`` writes a
    heartbeat frame and ``dead(seconds)`` is called when the peer was silent that long.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        alive: Callable[[], bool],
        send: Callable[[], None],
        dead: Callable[[float], None],
    ) -> None:
        self.loop = loop
        self._alive = alive
        self._send = send
        self._dead = dead
        self._heartbeat: Heartbeat | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self, heartbeat: Heartbeat) -> None:
        """Start checking (after the handshake), if a heartbeat was negotiated."""
        if heartbeat.interval:
            self._heartbeat = heartbeat
            heartbeat.start(heartbeat.interval, self.loop.time())
            self._handle = self.loop.call_later(heartbeat.interval / 2, self._tick)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        self._handle = None
        heartbeat = self._heartbeat
        if heartbeat is None or not self._alive():
            return
        now = self.loop.time()
        if heartbeat.peer_dead(now):
            self._dead(heartbeat.interval * heartbeat.miss_limit)
            return
        if heartbeat.send_due(now):
            self._send()
        deadline = heartbeat.next_deadline(now)
        if deadline is not None:
            self._handle = self.loop.call_later(max(deadline - now, 0.01), self._tick)
