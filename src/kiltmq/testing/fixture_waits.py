"""The waits of :class:`~kiltmq.testing.BrokerFixture`: each is a check that runs on the
broker's loop until it returns something other than None, and a description of what
was found for the timeout's message."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias, TypeVar

if TYPE_CHECKING:
    from kiltmq.broker.admin import ConnectionInfo
    from kiltmq.broker.queue import Entry, Queue
    from kiltmq.broker.server import ServerConnection
    from kiltmq.testing.broker_loop import BrokerLoop
    from kiltmq.testing.snapshots import QueueInfo

__all__ = ["OWN_VHOST", "FixtureWaits", "VhostFilter"]


class _Own(enum.Enum):
    VHOST = "the fixture's own virtual host"


#: Default of the ``vhost`` filter of the connection methods: the fixture's virtual host.
#: Pass ``vhost=None`` for every virtual host, or a name.
OWN_VHOST = _Own.VHOST
VhostFilter = str | None | _Own

T = TypeVar("T")
#: A wait: the check run on the broker's loop until it returns something other than
#: None, and what to say when it times out.
_Wait: TypeAlias = tuple[Callable[[], "T | None"], Callable[[], str]]


def _ready(queue: Queue) -> int:
    return len(queue.ready)


def _consumers(queue: Queue) -> int:
    return len(queue.consumers)


class FixtureWaits:
    """Waiting for acknowledgements, messages, consumers and connections."""

    vhost: str
    _loop: BrokerLoop

    def _find_queue(self, name: str) -> Queue | None:
        raise NotImplementedError

    def _unacked_entries(self, queue: Queue) -> list[Entry]:
        raise NotImplementedError

    def _queue_info(self, queue: Queue) -> QueueInfo:
        raise NotImplementedError

    def _connection_info(self, conn: ServerConnection) -> ConnectionInfo:
        raise NotImplementedError

    def _matching(self, name: str | None, user: str | None, vhost: VhostFilter
                  ) -> list[ServerConnection]:
        raise NotImplementedError


    def _describe_queue(self, name: str) -> str:
        queue = self._find_queue(name)
        if queue is None:
            return f"no queue '{name}' in vhost '{self.vhost}'"
        return (
            f"queue '{name}' in vhost '{self.vhost}' has {len(queue.ready)} ready, "
            f"{len(self._unacked_entries(queue))} unacknowledged and {queue.acked} "
            f"acknowledged messages and {len(queue.consumers)} consumers"
        )

    def _acked(self, name: str, count: int | None) -> _Wait[QueueInfo]:
        def check() -> QueueInfo | None:
            queue = self._find_queue(name)
            if queue is None:
                return None
            if count is None:
                if not queue.acked or queue.ready or self._unacked_entries(queue):
                    return None
            elif queue.acked < count:
                return None
            return self._queue_info(queue)

        return check, lambda: self._describe_queue(name)

    def _counted(self, name: str, what: Callable[[Queue], int], count: int) -> _Wait[QueueInfo]:
        def check() -> QueueInfo | None:
            queue = self._find_queue(name)
            if queue is None or what(queue) < count:
                return None
            return self._queue_info(queue)

        return check, lambda: self._describe_queue(name)

    def _connected(
        self, count: int, name: str | None, user: str | None, vhost: VhostFilter
    ) -> _Wait[list[ConnectionInfo]]:
        def check() -> list[ConnectionInfo] | None:
            found = self._matching(name, user, vhost)
            if (count == 0 and found) or len(found) < count:
                return None
            return [self._connection_info(c) for c in found]

        def describe() -> str:
            found = len(self._matching(name, user, vhost))
            wanted = "none" if count == 0 else f"at least {count}"
            return f"{found} matching connections, wanted {wanted}"

        return check, describe

    def wait_acked(
        self, queue: str, count: int | None = None, *, timeout: float = 5.0
    ) -> QueueInfo:
        """Wait until ``queue`` has acknowledged messages and none ready or unacknowledged
        (``count`` None), or until at least ``count`` of its messages were acknowledged
        since it was declared. Returns the queue's snapshot; TimeoutError after
        ``timeout`` seconds, saying what the queue holds."""
        return self._loop.wait(*self._acked(queue, count), timeout)

    async def wait_acked_async(
        self, queue: str, count: int | None = None, *, timeout: float = 5.0
    ) -> QueueInfo:
        """:meth:`wait_acked` for ``async`` tests."""
        return await self._loop.wait_async(*self._acked(queue, count), timeout)

    def wait_messages(self, queue: str, count: int = 1, *, timeout: float = 5.0) -> QueueInfo:
        """Wait until ``queue`` exists and has at least ``count`` ready messages."""
        return self._loop.wait(*self._counted(queue, _ready, count), timeout)

    async def wait_messages_async(
        self, queue: str, count: int = 1, *, timeout: float = 5.0
    ) -> QueueInfo:
        """:meth:`wait_messages` for ``async`` tests."""
        return await self._loop.wait_async(*self._counted(queue, _ready, count), timeout)

    def wait_consumers(self, queue: str, count: int = 1, *, timeout: float = 5.0) -> QueueInfo:
        """Wait until ``queue`` exists and has at least ``count`` consumers (0: until
        it exists)."""
        return self._loop.wait(*self._counted(queue, _consumers, count), timeout)

    async def wait_consumers_async(
        self, queue: str, count: int = 1, *, timeout: float = 5.0
    ) -> QueueInfo:
        """:meth:`wait_consumers` for ``async`` tests."""
        return await self._loop.wait_async(*self._counted(queue, _consumers, count), timeout)

    def wait_connections(
        self, count: int = 1, name: str | None = None, *, user: str | None = None,
        vhost: VhostFilter = OWN_VHOST, timeout: float = 5.0,
    ) -> list[ConnectionInfo]:
        """Wait until at least ``count`` open connections match the filters (as
        :meth:`connections`), or, with ``count=0``, until none does. Connections being
        closed do not count, so after :meth:`close_connections` this waits for clients
        to reconnect."""
        return self._loop.wait(*self._connected(count, name, user, vhost), timeout)

    async def wait_connections_async(
        self, count: int = 1, name: str | None = None, *, user: str | None = None,
        vhost: VhostFilter = OWN_VHOST, timeout: float = 5.0,
    ) -> list[ConnectionInfo]:
        """:meth:`wait_connections` for ``async`` tests."""
        return await self._loop.wait_async(*self._connected(count, name, user, vhost), timeout)
