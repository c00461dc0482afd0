"""A local shovel: moves messages from one queue of the broker to another, each message
enqueued in the destination (and reported to the store) before it leaves the source,
in batches on the event loop so the broker keeps serving between them. As RabbitMQ's
shovel, a moved message is published to the default exchange with the destination
queue's name as routing key; its properties (headers, delivery mode) are kept as sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kiltmq.broker.message import Message
from kiltmq.broker.queue.queue import Queue

__all__ = ["BATCH", "Shovel", "Shovels"]

#: Messages moved in one loop iteration.
BATCH = 500


class Shovel:
    """Moves ``count`` messages (None: as many as the source holds when it starts) from
    ``source`` to ``destination``; ``done`` is called with the shovel once it has moved
    them all. A shovel that cannot go on (a queue deleted, the destination refusing a
    message) is ``terminated`` with a ``reason`` and the message it held stays in the
    source."""

    def __init__(
        self,
        vhost: str,
        name: str,
        source: Queue,
        destination: Queue,
        count: int | None,
        done: Callable[[Shovel], None],
        value: Mapping[str, Any] | None = None,
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.source = source
        self.destination = destination
        self.remaining = source.message_count if count is None else count
        self.moved = 0
        self.state = "running"
        self.reason: str | None = None
        self._done = done
        #: The parameter the shovel was started with.
        self.value: Mapping[str, Any] = value or {}
        self.started = datetime.now(UTC)
        self._handle: asyncio.Handle | None = None

    def start(self) -> None:
        """Move the first batch now and schedule the rest on the running loop."""
        self._step()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self.state == "running":
            self.state = "terminated"
            self.reason = "stopped"

    def _terminate(self, reason: str) -> None:
        self.state = "terminated"
        self.reason = reason

    def _step(self) -> None:
        self._handle = None
        source, destination = self.source, self.destination
        for _ in range(min(self.remaining, BATCH)):
            if source.deleted or destination.deleted:
                gone = source.name if source.deleted else destination.name
                self._terminate(f"queue '{gone}' was deleted")
                return
            entry = source.get()
            if entry is None:
                self.remaining = 0
                break
            old = entry.message
            moved = Message("", destination.name, old.raw_properties, old.body)
            if not destination.publish(moved):
                source.requeue((entry,))
                self._terminate(f"queue '{destination.name}' refused a message")
                return
            source.ack(entry)
            self.moved += 1
            self.remaining -= 1
        if self.remaining > 0:
            self._handle = asyncio.get_running_loop().call_soon(self._step)
            return
        self._done(self)


class Shovels:
    """The broker's shovels by (vhost, name): running ones, and terminated ones until
    they are deleted. A shovel that has moved all its messages leaves at once."""

    def __init__(self) -> None:
        self._shovels: dict[tuple[str, str], Shovel] = {}

    def start(
        self,
        vhost: str,
        name: str,
        source: Queue,
        destination: Queue,
        count: int | None,
        value: Mapping[str, Any] | None = None,
    ) -> Shovel:
        """Start a shovel, stopping the one of that name first."""
        self.stop(vhost, name)
        shovel = Shovel(vhost, name, source, destination, count, self._finished, value)
        self._shovels[(vhost, name)] = shovel
        shovel.start()
        return shovel

    def _finished(self, shovel: Shovel) -> None:
        if self._shovels.get((shovel.vhost, shovel.name)) is shovel:
            del self._shovels[(shovel.vhost, shovel.name)]

    def stop(self, vhost: str, name: str) -> bool:
        """Stop and forget the shovel; False if there is none."""
        shovel = self._shovels.pop((vhost, name), None)
        if shovel is None:
            return False
        shovel.stop()
        return True

    def get(self, vhost: str, name: str) -> Shovel | None:
        return self._shovels.get((vhost, name))

    def all(self, vhost: str | None = None) -> list[Shovel]:
        return [s for s in self._shovels.values() if vhost is None or s.vhost == vhost]
