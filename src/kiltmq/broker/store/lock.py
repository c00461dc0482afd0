"""The data-directory lock: one broker per data directory.

The broker takes an exclusive ``flock`` on ``kiltmq.lock`` in the data directory and,
once the store is open, writes its pid there (:meth:`DirectoryLock.claim`); a second
broker on the same directory is refused with a
:class:`~kiltmq.broker.store.interface.StoreError` naming that pid. The lock goes with the
descriptor: at :meth:`DirectoryLock.release`, or when the process dies. A store refused
at open keeps its lock file as it was (removed again if the open created it).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from kiltmq.broker.store.interface import StoreError

__all__ = ["LOCK_NAME", "DirectoryLock"]

LOCK_NAME = "kiltmq.lock"


class DirectoryLock:
    """The exclusive lock on one data directory (held between acquire and release)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._handle: IO[str] | None = None
        self._created = False

    def acquire(self) -> None:
        """Take the lock, or raise StoreError if another process holds it."""
        path = self.path
        try:
            self._created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.fchmod(fd, 0o600)
            handle = open(fd, "a+", encoding="utf-8")  # noqa: SIM115 (held while locked)
        except OSError as exc:
            raise StoreError(f"cannot open lock file {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise StoreError(
                f"data directory {path.parent} is in use by another broker{who}"
            ) from None
        self._handle = handle

    def claim(self) -> None:
        """Write this process's pid into the held lock file."""
        handle = self._handle
        if handle is not None:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()

    def release(self, untouched: bool = False) -> None:
        """Let go of the lock (nothing happens if it is not held). ``untouched``: the
        store was refused; remove the lock file if acquiring created it."""
        handle, self._handle = self._handle, None
        if handle is not None:
            if untouched and self._created:
                self.path.unlink(missing_ok=True)
            handle.close()  # closing the descriptor releases the flock
