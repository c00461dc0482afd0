"""Resource alarms, as RabbitMQ's: a set of named resources ("memory", "disk", or any
other name a part of the broker raises) that are low. While any is, publishing
connections are blocked: a connection that publishes gets connection.blocked (if its
client announced the capability) and is no longer read until every alarm is cleared.

RabbitMQ's reason text names the resources: "low on memory", "low on disk",
"low on memory & disk".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = ["DISK", "MEMORY", "STORE", "Alarms", "blocked_reason", "shown"]

#: The memory alarm: messages take more memory than the limit.
MEMORY = "memory"
#: The disk alarm: the data directory's filesystem has less free space than the limit.
DISK = "disk"

#: The store cannot write (disk full, I/O error): shown as the disk alarm, as RabbitMQ
#: knows only memory and disk, but raised and cleared by the store alone.
STORE = "store"

#: The order of resources in a reason text; others follow by name.
_ORDER = {MEMORY: 0, DISK: 1}


def shown(resource: str) -> str:
    """The resource as RabbitMQ names it (the store's alarm is a disk alarm)."""
    return DISK if resource == STORE else resource


def blocked_reason(resources: Iterable[str]) -> str:
    """connection.blocked's reason for ``resources`` ("" for none)."""
    names = sorted({shown(r) for r in resources}, key=lambda r: (_ORDER.get(r, len(_ORDER)), r))
    return f"low on {' & '.join(names)}" if names else ""


class Alarms:
    """The resources in alarm. ``changed(reason)`` is called whenever the set changes,
    with the new connection.blocked reason ("" once no alarm is left)."""

    def __init__(self, changed: Callable[[str], None]) -> None:
        self._active: set[str] = set()
        self._changed = changed

    @property
    def active(self) -> frozenset[str]:
        return frozenset(self._active)

    @property
    def reason(self) -> str:
        return blocked_reason(self._active)

    def __bool__(self) -> bool:
        return bool(self._active)

    def set(self, resource: str, active: bool) -> bool:
        """Raise or clear the alarm of ``resource``; False if that changes nothing."""
        if active == (resource in self._active):
            return False
        if active:
            self._active.add(resource)
        else:
            self._active.discard(resource)
        self._changed(self.reason)
        return True
