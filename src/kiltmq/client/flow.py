"""The publish gate of a connection: publishers wait while the socket's write buffer is
full (the transport's ``pause_writing``) or while the broker has blocked the connection
(connection.blocked), until ``resume_writing`` / connection.unblocked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kiltmq.client.errors import BlockedTimeout

__all__ = ["PublishGate"]


class PublishGate:
    """Whether publishers may write now. ``is_open()`` says whether the connection is
    open: waiting ends when it is not."""

    def __init__(self, is_open: Callable[[], bool]) -> None:
        self._is_open = is_open
        #: publishers must wait (writing paused, or connection.blocked)
        self.paused = False
        self.write_paused = False
        #: the reason the broker gave in connection.blocked (None when not blocked)
        self.reason: str | None = None
        self._publishable = asyncio.Event()
        self._publishable.set()

    @property
    def blocked(self) -> bool:
        """The broker has blocked publishing (connection.blocked)."""
        return self.reason is not None

    def reset(self) -> None:
        """A new transport: nothing paused, nothing blocked."""
        self.paused = self.write_paused = False
        self.reason = None
        self._publishable.set()

    def release(self) -> None:
        """Wake the waiting publishers (the connection closed)."""
        self._publishable.set()

    def set_write_paused(self, paused: bool) -> None:
        self.write_paused = paused
        self._update()

    def set_blocked(self, reason: str | None) -> None:
        """connection.blocked (``reason``), or connection.unblocked (None)."""
        self.reason = reason
        self._update()

    def _update(self) -> None:
        self.paused = self.write_paused or self.blocked
        if self.paused:
            self._publishable.clear()
        else:
            self._publishable.set()

    async def wait(self, rpc_timeout: float, blocked_timeout: float | None) -> None:
        """Wait until publishers may write: at most ``blocked_timeout`` seconds while
        blocked (:class:`BlockedTimeout`), ``rpc_timeout`` while writing is paused."""
        while self.paused and self._is_open():
            if self.blocked:
                try:
                    async with asyncio.timeout(blocked_timeout):
                        await self._publishable.wait()
                except TimeoutError:
                    if self.reason is None:  # unblocked meanwhile
                        continue
                    raise BlockedTimeout(
                        f"the broker blocked the connection ({self.reason}) for longer "
                        f"than blocked_timeout ({blocked_timeout} s)"
                    ) from None
            else:
                async with asyncio.timeout(rpc_timeout):
                    await self._publishable.wait()
