"""Group commit: the changes the broker reports, written in batches by one writer.

The broker reports changes on the event loop; they collect in a :class:`Batch`. The
first change of a batch schedules a flush for the next loop iteration; the flush hands
the batch to a writer thread (one transaction: definitions, inserts, deletes, then
fsync) and starts a new batch. While a batch is being written the next one fills up, so
the batch size follows the disk's fsync time (group commit). When the transaction has
committed, the writer schedules :meth:`Writer._committed` on the loop, which runs the
batch's publisher confirms (one call per channel with the sequence numbers the batch
holds) and its ``after_commit`` callbacks (tx.commit-ok, replies to declarations), and
sends the next batch. At most one batch is in flight.

Every transaction also sets ``commit_seq`` in ``meta``; after SQLite's commit the writer
records that number in the commit watermark (:mod:`~kiltmq.broker.store.watermark`,
fsynced) before the batch's callbacks run.

Without a writer thread (``threaded=False``) the flush writes on the loop; without an
event loop every change is written at once.

A transaction that fails (disk full, I/O error, read-only file system) is rolled back
and the same batch is tried again every second. Meanwhile the store is in alarm: the
alarm handler is told (the broker blocks publishers), callbacks that have a failure path
(publisher confirms: basic.nack) take it at once, for the failed batch and for whatever
is reported until a write succeeds again; other callbacks (tx.commit-ok, replies to
declarations) wait for the commit. The first successful commit clears the alarm.
"""

from __future__ import annotations

import contextlib
import logging
import queue as queue_module
import sqlite3
import threading
from asyncio import AbstractEventLoop
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from kiltmq.broker.message import Message
from kiltmq.broker.store.interface import ConfirmWaiter
from kiltmq.broker.store.schema import (
    DELETE_RANGE,
    MARK_DELIVERED,
    SET_DEAD,
    SET_DELIVERY_COUNT,
    SET_META,
    insert_rows,
)
from kiltmq.broker.store.watermark import Watermark

__all__ = ["AlarmHandler", "Batch", "Writer"]

#: Told ``(True, reason)`` when the store cannot write, ``(False, "")`` when it can again.
AlarmHandler = Callable[[bool, str], None]
#: An after-commit callback and what to run instead if the batch cannot be written.
Callback = tuple[Callable[[], None], Callable[[], None] | None]

log = logging.getLogger("kiltmq.broker.store")

#: Rows per INSERT statement, largest first: a batch's rows go in a few statements, each
#: of a size prepared once (the connection caches statements by their text), rather than
#: one statement run per row.
_CHUNKS = (256, 128, 64, 32, 16, 8, 4, 2, 1)
_INSERTS = {count: insert_rows(count) for count in _CHUNKS}
#: Columns of a row in :func:`insert_rows`.
_COLUMNS = 9


class Batch:
    """Changes collected on the loop for one transaction."""

    __slots__ = (
        "inserts", "expires", "arrived", "deletes", "ops", "delivered", "counts", "dead",
        "confirms", "callbacks", "written",
    )

    def __init__(self) -> None:
        #: pos -> (queue id, message key, message): rows to insert
        self.inserts: dict[int, tuple[int, int, Message]] = {}
        #: pos -> deadline (ms since the epoch) of rows to insert that expire
        self.expires: dict[int, int] = {}
        #: pos -> arrival time (ms since the epoch) of rows to insert of streams
        self.arrived: dict[int, int] = {}
        #: pos of rows to delete (written in an earlier batch)
        self.deletes: list[int] = []
        #: other statements, in order (definitions, users, queue ids...)
        self.ops: list[tuple[str, tuple[Any, ...]]] = []
        #: pos of rows to mark delivered (after the inserts)
        self.delivered: list[int] = []
        #: pos -> delivery count, pos -> dead-letter reason: rows of quorum queues to
        #: update (after the inserts)
        self.counts: dict[int, int] = {}
        self.dead: dict[int, str] = {}
        #: channel -> sequence numbers of its publishes confirmed by this commit
        self.confirms: dict[ConfirmWaiter, list[int]] = {}
        self.callbacks: list[Callback] = []
        #: True once committed (only the watermark is still to be written)
        self.written = False

    def empty(self) -> bool:
        return not (
            self.inserts or self.deletes or self.ops or self.delivered or self.counts
            or self.dead or self.confirms or self.callbacks
        )

    def take_confirms(self, durable: bool) -> list[Callable[[], None]]:
        """The batch's confirms as calls (acks if ``durable``, else nacks); it keeps none."""
        confirms, self.confirms = self.confirms, {}
        if durable:
            return [partial(w.commit_confirmed, seqs) for w, seqs in confirms.items()]
        return [partial(w.commit_nacked, seqs) for w, seqs in confirms.items()]


def _runs(positions: list[int]) -> list[tuple[int, int]]:
    """``positions`` as runs of consecutive numbers: (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    first = last = positions[0]
    for pos in positions:
        if pos != last + 1 and pos != last:
            runs.append((first, last))
            first = pos
        last = pos
    runs.append((first, last))
    return runs


def _insert(db: sqlite3.Connection, batch: Batch) -> None:
    """The batch's new rows, as few multi-row INSERT statements."""
    expires = batch.expires.get
    arrived = batch.arrived.get
    params: list[Any] = []
    for pos, (qid, key, m) in batch.inserts.items():
        params += (
            pos, qid, key, m.exchange, m.routing_key, m.raw_properties, m.body, expires(pos),
            arrived(pos),
        )
    start = 0
    left = len(batch.inserts)
    for count in _CHUNKS:
        while left >= count:
            end = start + count * _COLUMNS
            db.execute(_INSERTS[count], params[start:end])
            start = end
            left -= count


def _apply(db: sqlite3.Connection, batch: Batch, seq: int) -> None:
    """Write one batch in one transaction numbered ``seq`` (any thread)."""
    db.execute("BEGIN")
    try:
        db.execute(SET_META, ("commit_seq", seq))
        for sql, params in batch.ops:
            db.execute(sql, params)
        if batch.inserts:
            _insert(db, batch)
        if batch.deletes:
            db.executemany(DELETE_RANGE, _runs(batch.deletes))
        if batch.delivered:
            db.executemany(MARK_DELIVERED, [(pos,) for pos in batch.delivered])
        if batch.counts:
            db.executemany(SET_DELIVERY_COUNT, [(n, pos) for pos, n in batch.counts.items()])
        if batch.dead:
            db.executemany(SET_DEAD, [(why, pos) for pos, why in batch.dead.items()])
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class Writer:
    """Writes the batches of one open store, one transaction each, in order.

    The store fills :attr:`batch` and calls :meth:`schedule` when it was not
    :attr:`scheduled` yet; statements other than message rows go through :meth:`op`.
    """

    def __init__(self, path: Path) -> None:
        #: The database (for log lines).
        self.path = path
        #: The batch filling up on the loop.
        self.batch = Batch()
        #: The batch being written (or waiting to be retried).
        self.inflight: Batch | None = None
        #: True while a flush of :attr:`batch` is scheduled.
        self.scheduled = False
        #: since start: transactions committed, message rows written (statistics)
        self.commits = 0
        self.rows_written = 0
        self._db: sqlite3.Connection | None = None
        self._loop: AbstractEventLoop | None = None
        self._jobs: queue_module.SimpleQueue[Batch | None] | None = None
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._watermark: Watermark | None = None
        #: The number of the last commit (see :mod:`~kiltmq.broker.store.watermark`).
        self.seq = 0
        #: Told when the store cannot write, and when it can again.
        self.alarm: AlarmHandler | None = None

    def start(
        self,
        db: sqlite3.Connection,
        loop: AbstractEventLoop | None,
        threaded: bool,
        watermark: Watermark,
        seq: int,
    ) -> None:
        """Write to ``db`` from now on: in a thread if ``threaded`` and there is a loop
        to report back to. ``seq``: the number of the last commit, which ``watermark``
        records."""
        self._db = db
        self._loop = loop
        self._watermark = watermark
        self.seq = seq
        if threaded and loop is not None:
            self._jobs = queue_module.SimpleQueue()
            self._thread = threading.Thread(
                target=self._run,
                args=(db, self._jobs, loop),
                name="kiltmq-store",
                daemon=True,
            )
            self._thread.start()

    def close(self, last: list[tuple[str, tuple[Any, ...]]]) -> list[Callable[[], None]]:
        """Write what is pending, then the statements ``last``, and stop. Returns the
        callbacks of the final batch, for the caller to run once the store is closed (a
        write that fails now is logged, not retried)."""
        db = self._db
        if db is None:
            return []
        self._db = None
        final = self.batch
        self.batch = Batch()
        final.ops.extend(last)
        jobs, thread = self._jobs, self._thread
        self._jobs = None
        self._thread = None
        try:
            if jobs is not None and thread is not None:
                if self.inflight is not None and self._failures:
                    jobs.put(self.inflight)  # a failed batch waiting for its retry
                jobs.put(final)
                jobs.put(None)
                thread.join()
            else:
                for batch in (self.inflight, final):
                    if batch is not None:
                        self._write(db, batch)
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.error("store %s: the last writes failed at close: %s", self.path, exc)
        finally:
            self.inflight = None
            self._watermark = None
        # The writer's own report of the final batch, if the loop still runs it, then
        # finds nothing to run.
        confirms = final.take_confirms(final.written)
        callbacks, final.callbacks = final.callbacks, []
        if not final.written:  # not durable: callbacks that can say so do
            return confirms + [failed or ok for ok, failed in callbacks]
        return confirms + [ok for ok, _failed in callbacks]

    # -- on the loop -------------------------------------------------------------------------

    def op(self, sql: str, params: tuple[Any, ...]) -> None:
        """Run a statement in the next transaction (nothing once closed)."""
        if self._db is None:
            return
        self.batch.ops.append((sql, params))
        if not self.scheduled:
            self.schedule()

    def after_commit(
        self, callback: Callable[[], None], failed: Callable[[], None] | None = None
    ) -> None:
        """Run ``callback`` once everything reported so far is committed; while the store
        cannot write, run ``failed`` at once instead, if given."""
        if self._db is None:
            callback()
            return
        if failed is not None and self._failures:
            failed()
            return
        batch = self.batch
        if not batch.empty():
            batch.callbacks.append((callback, failed))
        elif self.inflight is not None:
            self.inflight.callbacks.append((callback, failed))
        else:
            callback()

    def confirm_after_commit(self, waiter: ConfirmWaiter, seq: int) -> None:
        """Tell ``waiter`` that publish ``seq`` is durable once everything reported so far
        is committed, together with the other publishes of the same batch (at once if
        nothing is pending; while the store cannot write, nacked at once)."""
        batch = self.batch
        if not self._failures and self._db is not None and (batch.inserts or not batch.empty()):
            seqs = batch.confirms.get(waiter)
            if seqs is None:
                batch.confirms[waiter] = [seq]
            else:
                seqs.append(seq)
            return
        self.after_commit(
            partial(waiter.commit_confirmed, [seq]), partial(waiter.commit_nacked, [seq])
        )

    def definitions_pending(self) -> bool:
        """True while a statement other than message rows is not committed yet."""
        if self.batch.ops:
            return True
        inflight = self.inflight
        return inflight is not None and bool(inflight.ops)

    def pending(self, pos: int) -> Message | None:
        """The message of row ``pos`` if it is still to be written (or being written)."""
        row = self.batch.inserts.get(pos)
        if row is None and self.inflight is not None:
            row = self.inflight.inserts.get(pos)
        return None if row is None else row[2]

    def schedule(self) -> None:
        """Flush :attr:`batch` at the next loop iteration (at once without a loop)."""
        if self.scheduled:
            return
        loop = self._loop
        if loop is None:
            self._flush()  # no event loop: write at once
            return
        self.scheduled = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.scheduled = False
        if self.inflight is not None or self._db is None:
            return  # the next batch goes when the one in flight has committed
        batch = self.batch
        if batch.empty():
            return
        self.batch = Batch()
        self._send(batch)

    def _send(self, batch: Batch) -> None:
        self.inflight = batch
        if self._jobs is not None:
            self._jobs.put(batch)
            return
        assert self._db is not None
        try:
            self._write(self._db, batch)
        except sqlite3.Error as exc:
            self._write_failed(batch, exc)
            return
        self._committed(batch)

    def _committed(self, batch: Batch) -> None:
        if self.inflight is batch:
            self.inflight = None
        if self._failures:
            log.warning("store %s: writing again after %d failures", self.path, self._failures)
            self._failures = 0
            if self.alarm is not None:
                self.alarm(False, "")
        # the writer thread still refers to the batch: let go of what the callbacks hold
        # (confirms first: a reply waiting for the same commit follows them on the wire)
        callbacks: list[Callback] = [(confirm, None) for confirm in batch.take_confirms(True)]
        callbacks += batch.callbacks
        batch.callbacks = []
        for callback, _failed in callbacks:
            try:
                callback()
            except Exception:
                log.exception("after-commit callback failed")
        if self._db is not None and self.inflight is None and not self.batch.empty():
            if self._jobs is not None:
                self._flush()
            else:
                self.schedule()

    def _write_failed(self, batch: Batch, exc: BaseException) -> None:
        """A transaction failed (disk full, I/O error): it was rolled back; try the same
        batch again in a second. Meanwhile the store is in alarm and callbacks with a
        failure path take it."""
        if self._db is None:
            return  # closed meanwhile: close() reported the last batch
        self._failures += 1
        if self._failures == 1 or self._failures % 60 == 0:
            log.error(
                "store %s: cannot write (%s); publishers are blocked and confirms of "
                "persistent messages are nacked until a write succeeds, retrying every second",
                self.path,
                exc,
            )
        if self._failures == 1 and self.alarm is not None:
            self.alarm(True, "low on disk" if "full" in str(exc) else "disk write error")
        for failing in (batch, self.batch):  # the batch filling up cannot go first
            for nack in failing.take_confirms(False):
                try:
                    nack()
                except Exception:
                    log.exception("after-commit failure callback failed")
            waiting: list[Callback] = []
            for callback, failed in failing.callbacks:
                if failed is None:
                    waiting.append((callback, failed))
                    continue
                try:
                    failed()
                except Exception:
                    log.exception("after-commit failure callback failed")
            failing.callbacks = waiting
        if self._loop is not None:
            self._loop.call_later(1.0, self._retry, batch)

    def _retry(self, batch: Batch) -> None:
        if self._db is None or self.inflight is not batch:
            return
        self._send(batch)

    # -- in the writer thread (or on the loop) -------------------------------------------

    def _write(self, db: sqlite3.Connection, batch: Batch) -> None:
        """Commit ``batch``, then record its number in the watermark (a batch committed
        whose watermark write failed only retries that)."""
        if not batch.written:
            seq = self.seq + 1
            _apply(db, batch, seq)
            self.seq = seq
            batch.written = True
            self.commits += 1
            self.rows_written += len(batch.inserts)
        if self._watermark is not None:
            try:
                self._watermark.advance(self.seq)
            except OSError as exc:
                raise sqlite3.OperationalError(
                    f"cannot write the commit watermark: {exc.strerror or exc}"
                ) from None

    def _run(
        self,
        db: sqlite3.Connection,
        jobs: queue_module.SimpleQueue[Batch | None],
        loop: AbstractEventLoop,
    ) -> None:
        while True:
            batch = jobs.get()
            if batch is None:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return
            try:
                self._write(db, batch)
            except Exception as exc:  # reported on the loop
                done: Callable[..., None] = self._write_failed
                args: tuple[Any, ...] = (batch, exc)
            else:
                done = self._committed
                args = (batch,)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(done, *args)
