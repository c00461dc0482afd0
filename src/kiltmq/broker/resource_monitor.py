"""The periodic check of the broker's resources: the memory its messages take against
the memory limit, and the free space of the data directory's filesystem against the
disk free limit. Each raises or clears its alarm (see :mod:`kiltmq.broker.alarm`)
with one log line giving the figures.

The memory alarm is cleared once use falls below :data:`MEMORY_CLEAR` of the limit, so
that publishers are not blocked and unblocked at every check near the limit; the disk
alarm is cleared once the free space is back above the limit, as RabbitMQ's.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Protocol

from kiltmq.broker.alarm import DISK, MEMORY
from kiltmq.broker.disk import disk_free
from kiltmq.broker.memory import MemoryUse, format_bytes

__all__ = ["MEMORY_CLEAR", "MonitoredBroker", "ResourceMonitor"]

log = logging.getLogger("kiltmq.broker")

#: The memory alarm clears below this fraction of the limit.
MEMORY_CLEAR = 0.8


class MonitoredBroker(Protocol):
    """What the monitor needs of the broker."""

    @property
    def memory_limit(self) -> int | None: ...

    @property
    def disk_free_limit(self) -> int | None: ...

    @property
    def alarms(self) -> frozenset[str]: ...

    def memory_use(self) -> MemoryUse: ...

    def disk_path(self) -> Path | None:
        """The data directory (None for a memory-only broker: no disk alarm)."""

    def set_alarm(self, resource: str | bool, active: bool = True, detail: str = "") -> None: ...


class ResourceMonitor:
    """Checks the broker's memory and disk every ``interval`` seconds while started."""

    def __init__(self, broker: MonitoredBroker) -> None:
        self._broker = broker
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._interval = 1.0
        self._disk_error = False

    def start(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        """Check now, then every ``interval`` seconds (nothing if there is no limit)."""
        broker = self._broker
        if not broker.memory_limit and not (broker.disk_free_limit and broker.disk_path()):
            return
        self._loop = loop
        self._interval = interval
        self.check()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = None

    def check(self) -> None:
        self._timer = None
        try:
            self.check_memory()
            self.check_disk()
        finally:
            if self._loop is not None:
                self._timer = self._loop.call_later(self._interval, self.check)

    def check_memory(self) -> None:
        broker = self._broker
        limit = broker.memory_limit
        if not limit:
            return
        use = broker.memory_use()
        active = MEMORY in broker.alarms
        if not active and use.total > limit:
            broker.set_alarm(
                MEMORY,
                True,
                f"messages take {use}, over the limit of {format_bytes(limit)}; "
                "publishers are blocked",
            )
        elif active and use.total < limit * MEMORY_CLEAR:
            broker.set_alarm(
                MEMORY,
                False,
                f"messages take {use}, below {MEMORY_CLEAR:.0%} of the limit of "
                f"{format_bytes(limit)}",
            )

    def check_disk(self) -> None:
        broker = self._broker
        limit = broker.disk_free_limit
        path = broker.disk_path()
        if not limit or path is None:
            return
        try:
            free = disk_free(path)
        except OSError as exc:
            if not self._disk_error:
                log.warning("cannot read the free space of %s: %s", path, exc)
                self._disk_error = True
            return
        self._disk_error = False
        active = DISK in broker.alarms
        if not active and free < limit:
            broker.set_alarm(
                DISK,
                True,
                f"{format_bytes(free)} free on the filesystem of {path}, below the limit of "
                f"{format_bytes(limit)}; publishers are blocked",
            )
        elif active and free >= limit:
            broker.set_alarm(
                DISK,
                False,
                f"{format_bytes(free)} free on the filesystem of {path}, the limit is "
                f"{format_bytes(limit)}",
            )
