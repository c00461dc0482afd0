"""A broker's resource alarms as its embedder and its monitor see them: what messages
take in memory, where the disk is, which resources are in alarm, raising and clearing
one (every connection is told; see :mod:`kiltmq.broker.alarm`)."""

from __future__ import annotations

import logging
from pathlib import Path

from kiltmq.broker.alarm import MEMORY, Alarms
from kiltmq.broker.memory import MESSAGE_OVERHEAD, MemoryUse, memory_use
from kiltmq.broker.server import ServerConnection
from kiltmq.broker.store import SQLiteStore, Store
from kiltmq.broker.vhost import VirtualHost

__all__ = ["ResourceAlarms"]

log = logging.getLogger("kiltmq.broker")


class ResourceAlarms:
    """The resource alarm part of :class:`~kiltmq.broker.Broker` (a mixin: the
    attributes below are the broker's)."""

    vhosts: dict[str, VirtualHost]
    connections: set[ServerConnection]
    store: Store
    _alarms: Alarms

    #: Bytes a message takes besides its body (see :mod:`kiltmq.broker.memory`).
    MESSAGE_OVERHEAD = MESSAGE_OVERHEAD

    def memory_use(self) -> MemoryUse:
        """What messages take in memory now, by where they are."""
        return memory_use(self.vhosts.values(), self.connections)

    def memory_used(self) -> int:
        """Bytes messages take in memory now (what the memory limit is compared with)."""
        return self.memory_use().total

    def disk_path(self) -> Path | None:
        """The data directory (None when memory-only: then there is no disk alarm)."""
        store = self.store
        return Path(store.data_dir) if isinstance(store, SQLiteStore) else None

    @property
    def alarms(self) -> frozenset[str]:
        """The resources in alarm ("memory", "disk", ...)."""
        return self._alarms.active

    @property
    def alarm(self) -> bool:
        """Whether publishers are blocked by a resource alarm."""
        return bool(self._alarms)

    def set_alarm(self, resource: str | bool, active: bool = True, detail: str = "") -> None:
        """Raise (or clear) the alarm of ``resource``: "memory", "disk", or another name
        (see :mod:`kiltmq.broker.alarm`); ``set_alarm(True)`` / ``set_alarm(False)`` is
        the memory alarm. Logs one line, with ``detail`` if given."""
        name, active = (MEMORY, resource) if isinstance(resource, bool) else (resource, active)
        if self._alarms.set(name, active):
            state = "set" if active else "cleared"
            log.warning("%s alarm %s%s", name, state, f": {detail}" if detail else "")

    def _alarms_changed(self, reason: str) -> None:
        for conn in list(self.connections):
            conn.session.set_alarm(reason)
