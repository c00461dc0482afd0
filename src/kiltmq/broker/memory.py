"""What the broker's messages take in memory, for the memory alarm, and the memory limit
as RabbitMQ's ``vm_memory_high_watermark`` is given (bytes, units, or a fraction of the
machine's memory).

:func:`memory_use` adds up, at each check (not per message), what the broker holds for
messages: bodies of ready messages in memory (not those paged out to the store), of the
messages in a stream's log and of dead messages a quorum queue keeps for its dead-letter
queues (those in memory: :meth:`Queue.held_in_memory`), deliveries awaiting their acks,
publishes in transactions not yet committed, messages partly received, and bytes
waiting in the connections' write buffers. Each held message
also costs a fixed overhead besides its body (:data:`MESSAGE_OVERHEAD`,
:data:`UNACKED_OVERHEAD`: its objects in the broker, measured). The counts are running
figures kept where bytes come and go (each queue's ``ready_bytes``, each channel's
``unacked_bytes``) and short sweeps over queues, connections and channels.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kiltmq.broker.queue import Queue
    from kiltmq.broker.server import ServerConnection
    from kiltmq.broker.vhost import VirtualHost

__all__ = [
    "MESSAGE_OVERHEAD",
    "UNACKED_OVERHEAD",
    "MemoryUse",
    "format_bytes",
    "memory_use",
    "parse_bytes",
    "parse_memory_limit",
    "queue_memory",
    "total_memory",
]

#: Bytes a ready message takes besides its body: the Message, its entry in the queue
#: and the queue's slot for it, the headers of its bytes objects. Measured with
#: tracemalloc over thousands of messages (tests/broker/test_memory_use.py).
MESSAGE_OVERHEAD = 380
#: Bytes a delivery awaiting its ack takes besides its body: the message and its entry,
#: and the channel's record of the delivery. Measured likewise.
UNACKED_OVERHEAD = 490

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
    "t": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
}
_FRACTION = re.compile(r"\s*[0-9]*\.[0-9]+\s*")
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*")


@dataclass(frozen=True)
class MemoryUse:
    """Bytes the broker holds for messages, by where they are."""

    ready: int = 0
    unacked: int = 0
    uncommitted: int = 0
    partial: int = 0
    outbound: int = 0

    @property
    def total(self) -> int:
        return self.ready + self.unacked + self.uncommitted + self.partial + self.outbound

    def __str__(self) -> str:
        parts = ", ".join(
            f"{name} {format_bytes(getattr(self, name))}"
            for name in ("ready", "unacked", "uncommitted", "partial", "outbound")
        )
        return f"{format_bytes(self.total)} ({parts})"


def _held(queue: Queue) -> int:
    """What a queue's ready messages in memory and its other held messages take."""
    overhead = MESSAGE_OVERHEAD
    ready = queue.ready_bytes - queue.paged_bytes + overhead * len(queue.ready)
    held, held_bytes = queue.held_in_memory()
    if held:
        ready += held_bytes + overhead * held
    return ready


def queue_memory(queue: Queue, unacked: int, unacked_bytes: int) -> int:
    """What one queue's messages take, as :func:`memory_use` counts them: its ready
    messages in memory, the messages it holds besides them, and its ``unacked``
    deliveries awaiting their acks (``unacked_bytes`` of bodies)."""
    return _held(queue) + unacked_bytes + UNACKED_OVERHEAD * unacked


def memory_use(vhosts: Iterable[VirtualHost], connections: Iterable[ServerConnection]) -> MemoryUse:
    """What messages take now (see the module docstring)."""
    overhead = MESSAGE_OVERHEAD
    delivered = UNACKED_OVERHEAD
    ready = 0
    for vhost in vhosts:
        for queue in vhost.queues.values():
            ready += _held(queue)
    unacked = uncommitted = partial = outbound = 0
    for conn in connections:
        if conn.closed:
            continue
        for channel in conn.session.channels.values():
            unacked += channel.unacked_bytes + delivered * len(channel.unacked)
            tx = channel.tx
            if tx is not None:
                uncommitted += tx.size + overhead * len(tx.publishes)
                for _kind, records in tx.settles:
                    unacked += delivered * len(records)
        for state in conn.core.channels.values():
            if state.parts:  # body frames of a message being assembled
                partial += state.received
        transport = conn.transport
        if transport is not None:
            outbound += transport.get_write_buffer_size()
    return MemoryUse(ready, unacked, uncommitted, partial, outbound)


def format_bytes(count: float) -> str:
    """``count`` bytes for people: "512 B", "1.5 MiB"."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def parse_bytes(text: str) -> int:
    """A size as RabbitMQ's configuration takes it: bytes, or a number with a unit
    ("200MB" = 200,000,000; "200MiB" or "200M" = 200 * 2**20; k, G, T likewise).
    ValueError if it is none of these."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(f"invalid size {text!r} (bytes, or a number with kB, MB, MiB, GB...)")
    return int(float(match.group(1)) * _UNITS[unit])


def parse_memory_limit(value: str | int | float) -> int:
    """A memory limit: bytes (an int, or a string with a unit, see :func:`parse_bytes`),
    or a fraction of the machine's memory below 1 (a float or a string such as "0.4"),
    as RabbitMQ's relative ``vm_memory_high_watermark``. ValueError if it is none of
    these, or a fraction and the machine's memory is unknown."""
    if isinstance(value, bool):
        raise ValueError(f"invalid memory limit {value!r}")
    if isinstance(value, float):
        return _of_memory(value)
    if isinstance(value, str) and _FRACTION.fullmatch(value):
        return _of_memory(float(value))
    limit = value if isinstance(value, int) else parse_bytes(value)
    if limit < 0:
        raise ValueError("the memory limit must not be negative")
    return limit


def _of_memory(fraction: float) -> int:
    if not 0 <= fraction < 1:
        raise ValueError(f"invalid memory limit {fraction!r}: a fraction is below 1")
    total = total_memory()
    if total is None:
        raise ValueError("the machine's memory is unknown: give the limit in bytes")
    return int(total * fraction)


def total_memory() -> int | None:
    """The machine's physical memory in bytes (None if unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return total if total > 0 else None
