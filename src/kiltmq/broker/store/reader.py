"""Reading paged-out message bodies back off the event loop.

A :class:`Reader` owns one thread and one read-only connection to the store (WAL mode:
it reads committed rows while the writer writes). :meth:`Reader.read` hands it row
positions; the thread selects them, a few hundred per query, builds the messages, and
reports back on the event loop with ``call_soon_threadsafe``. sqlite3 releases the GIL
while SQLite reads, so the loop keeps serving connections meanwhile.
"""

from __future__ import annotations

import contextlib
import queue as queue_module
import sqlite3
import threading
from asyncio import AbstractEventLoop
from collections.abc import Callable
from pathlib import Path

from kiltmq.broker.message import Message

__all__ = ["READ_CHUNK", "ReadDone", "Reader", "read_rows"]

#: Parameters per "IN (...)" query when reading bodies back.
READ_CHUNK = 500

#: Called on the loop with the messages read (by position), or the error.
ReadDone = Callable[[dict[int, Message] | BaseException], None]


def read_rows(db: sqlite3.Connection, positions: list[int]) -> dict[int, Message]:
    """The messages of the rows at ``positions`` (missing rows are left out)."""
    found: dict[int, Message] = {}
    restored = Message.restored
    for start in range(0, len(positions), READ_CHUNK):
        chunk = positions[start : start + READ_CHUNK]
        marks = ",".join("?" * len(chunk))
        for pos, exchange, routing_key, properties, body in db.execute(
            "SELECT pos, exchange, routing_key, properties, body FROM messages"
            f" WHERE pos IN ({marks})",
            chunk,
        ):
            found[pos] = restored(pos, exchange, routing_key, properties, body)
    return found


class Reader:
    """A reader thread with its own connection to the store at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: The thread's connection (for tests that trace its queries).
        self.db: sqlite3.Connection | None = None
        self._jobs: queue_module.SimpleQueue[tuple[list[int], ReadDone] | None] | None = None
        self._thread: threading.Thread | None = None
        self._loop: AbstractEventLoop | None = None

    def start(self, loop: AbstractEventLoop) -> None:
        """Open the connection and start the thread, reporting to ``loop``."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA query_only = ON")
        self.db = db
        self._loop = loop
        jobs: queue_module.SimpleQueue[tuple[list[int], ReadDone] | None]
        self._jobs = jobs = queue_module.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, args=(db, jobs, loop), name="kiltmq-store-reader", daemon=True
        )
        self._thread.start()

    def read(self, positions: list[int], done: ReadDone) -> bool:
        """Read the rows at ``positions`` in the thread, then call ``done`` on the loop;
        False (and nothing is read) if the reader is not running."""
        jobs = self._jobs
        if jobs is None:
            return False
        jobs.put((positions, done))
        return True

    def close(self) -> None:
        """Finish the reads asked for, stop the thread, close the connection."""
        jobs, thread = self._jobs, self._thread
        self._jobs = self._thread = None
        if jobs is not None and thread is not None:
            jobs.put(None)
            thread.join()
        db, self.db = self.db, None
        if db is not None:
            db.close()

    @staticmethod
    def _run(
        db: sqlite3.Connection,
        jobs: queue_module.SimpleQueue[tuple[list[int], ReadDone] | None],
        loop: AbstractEventLoop,
    ) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            positions, done = job
            result: dict[int, Message] | BaseException
            try:
                result = read_rows(db, positions)
            except Exception as exc:  # reported on the loop
                result = exc
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(done, result)
