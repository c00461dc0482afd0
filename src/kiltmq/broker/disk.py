"""Free space on the filesystem of the data directory, for the disk alarm
(RabbitMQ's ``disk_free_limit``)."""

from __future__ import annotations

import os

from kiltmq.broker.memory import parse_bytes

__all__ = ["DEFAULT_DISK_FREE_LIMIT", "disk_free", "parse_disk_free_limit"]

#: RabbitMQ's default ``disk_free_limit``: 50 MB.
DEFAULT_DISK_FREE_LIMIT = 50_000_000


def disk_free(path: str | os.PathLike[str]) -> int:
    """Bytes free for unprivileged writers on the filesystem holding ``path``
    (OSError if it cannot be read)."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def parse_disk_free_limit(value: str | int) -> int:
    """A disk free limit: bytes, or a string with a unit ("50MB", "1GiB"); ValueError
    if it is neither, or negative."""
    if isinstance(value, bool):
        raise ValueError(f"invalid disk free limit {value!r}")
    limit = value if isinstance(value, int) else parse_bytes(value)
    if limit < 0:
        raise ValueError("the disk free limit must not be negative")
    return limit
