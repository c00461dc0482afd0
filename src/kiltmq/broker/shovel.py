"""A local shovel: moves messages from one queue of the broker to another, each message
enqueued in the destination (and reported to the store) before it leaves the source,
in batches on the event loop so the broker keeps serving between them. As RabbitMQ's
shovel, a moved message is published to the default exchange with the destination
queue's name as routing key; its properties (headers, delivery mode) are kept as sent.

:class:`Shovels` keeps each shovel in the store as RabbitMQ keeps a dynamic shovel, a
runtime parameter (kind ``shovel`` of its vhost's definitions: its name, its parameter,
and how many messages it has left to move, written after each batch). A broker that
stops with unfinished shovels starts them again where they were: a shovel moves the
number of messages it was started for, over restarts too (after a crash, at most one
batch more, the one whose progress was not written). A finished shovel's parameter is
deleted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kiltmq.broker.message import Message
from kiltmq.broker.queue.queue import Queue
from kiltmq.broker.shovel_parameter import ShovelInvalid, ShovelParameter
from kiltmq.broker.store import Store

__all__ = ["BATCH", "KIND", "Shovel", "Shovels"]

#: The kind of a shovel's definition in the store.
KIND = "shovel"

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
        source: Queue | None,
        destination: Queue | None,
        count: int | None,
        done: Callable[[Shovel], None],
        value: Mapping[str, Any] | None = None,
        progress: Callable[[Shovel], None] | None = None,
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.source = source
        self.destination = destination
        #: A shovel that never started for "queue-length" does not know how many yet.
        self.unmeasured = count is None and source is None
        if count is None:
            count = source.message_count if source is not None else 0
        self.remaining = count
        #: Called after each batch that did not finish the move.
        self._progress = progress
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
        if self._progress is not None:
            self._progress(self)

    def _step(self) -> None:
        self._handle = None
        source, destination = self.source, self.destination
        assert source is not None and destination is not None
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
            if self._progress is not None:
                self._progress(self)
            return
        self._done(self)

    def pause(self) -> None:
        """Move no more for now (the broker stops); :attr:`remaining` stays as it is."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class Shovels:
    """The broker's shovels by (vhost, name): running ones, and terminated ones until
    they are deleted, each kept in ``store``. A shovel that has moved all its messages
    leaves at once, from the store too."""

    def __init__(self, store: Store | None = None) -> None:
        self._store = store if store is not None else Store()
        self._shovels: dict[tuple[str, str], Shovel] = {}
        #: Shovels to start again at :meth:`resume`: (vhost, name) -> (value, remaining).
        self._paused: dict[tuple[str, str], tuple[Mapping[str, Any], int | None]] = {}

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
        shovel = Shovel(
            vhost, name, source, destination, count, self._finished, value, self._keep
        )
        self._shovels[(vhost, name)] = shovel
        self._keep(shovel)
        shovel.start()
        return shovel

    def _keep(self, shovel: Shovel) -> None:
        """Write the shovel's parameter and what it has left to move."""
        if self._shovels.get((shovel.vhost, shovel.name)) is shovel:
            self._store.definition_added(shovel.vhost, KIND, {
                "name": shovel.name, "value": dict(shovel.value),
                "remaining": None if shovel.unmeasured else shovel.remaining,
            })

    def _finished(self, shovel: Shovel) -> None:
        if self._shovels.get((shovel.vhost, shovel.name)) is shovel:
            del self._shovels[(shovel.vhost, shovel.name)]
            self._store.definition_removed(shovel.vhost, KIND, {"name": shovel.name})

    def stop(self, vhost: str, name: str) -> bool:
        """Stop and forget the shovel (its parameter deleted); False if there is none."""
        shovel = self._shovels.pop((vhost, name), None)
        paused = self._paused.pop((vhost, name), None)
        if shovel is None and paused is None:
            return False
        if shovel is not None:
            shovel.stop()
        self._store.definition_removed(vhost, KIND, {"name": name})
        return True

    def forget_vhost(self, vhost: str) -> None:
        """Stop the shovels of a deleted vhost (the store forgets its definitions)."""
        for key in [k for k in (*self._shovels, *self._paused) if k[0] == vhost]:
            shovel = self._shovels.pop(key, None)
            if shovel is not None:
                shovel.stop()
            self._paused.pop(key, None)

    def restore(self, vhost: str, definition: Mapping[str, Any]) -> None:
        """A shovel read back from the store (at start): started by :meth:`resume`."""
        remaining = definition.get("remaining")
        self._paused[(vhost, str(definition["name"]))] = (
            definition.get("value") or {}, remaining if isinstance(remaining, int) else None,
        )

    def pause(self) -> None:
        """The broker stops: every shovel moves no more, and is started again where it
        was by :meth:`resume` (the store keeps them for a new broker)."""
        for key, shovel in list(self._shovels.items()):
            shovel.pause()
            self._paused[key] = (shovel.value, None if shovel.unmeasured else shovel.remaining)
        self._shovels.clear()

    def resume(self, find: Callable[[str, str], Queue | None]) -> None:
        """Start the shovels paused or read back from the store, each for the messages
        it had left, finding queues by (vhost, name) with ``find``. One whose queues are
        gone (or whose parameter this broker cannot run) is listed terminated."""
        paused, self._paused = self._paused, {}
        for (vhost, name), (value, remaining) in paused.items():
            try:
                self.add(vhost, name, value, find, remaining)
            except ShovelInvalid as error:
                self._failed(vhost, name, value, remaining, str(error))

    def add(
        self, vhost: str, name: str, value: Mapping[str, Any],
        find: Callable[[str, str], Queue | None], remaining: int | None = None,
    ) -> None:
        """Start the shovel of parameter ``value`` (for ``remaining`` messages, None: as
        the parameter says), finding its queues with ``find``; if one is missing it is
        listed terminated. ShovelInvalid for a parameter this broker cannot run."""
        parameter = ShovelParameter.parse(value)
        source = find(parameter.src_vhost, parameter.src_queue)
        destination = find(parameter.dest_vhost, parameter.dest_queue)
        if source is None or destination is None:
            where, queue = (
                (parameter.src_vhost, parameter.src_queue) if source is None
                else (parameter.dest_vhost, parameter.dest_queue)
            )
            self._failed(vhost, name, value, remaining, f"no queue '{queue}' in vhost '{where}'")
            return
        count = parameter.count if remaining is None else remaining
        self.start(vhost, name, source, destination, count, value)

    def _failed(
        self, vhost: str, name: str, value: Mapping[str, Any], remaining: int | None,
        reason: str,
    ) -> None:
        """List a shovel that cannot start as terminated; it stays, as RabbitMQ's, until
        deleted, and is tried again at the next start."""
        self.stop(vhost, name)
        shovel = Shovel(vhost, name, None, None, remaining, self._finished, value, self._keep)
        self._shovels[(vhost, name)] = shovel
        shovel._terminate(reason)  # kept in the store with what it has left

    def get(self, vhost: str, name: str) -> Shovel | None:
        return self._shovels.get((vhost, name))

    def all(self, vhost: str | None = None) -> list[Shovel]:
        return [s for s in self._shovels.values() if vhost is None or s.vhost == vhost]


