"""The SQLite store: definitions and persistent messages in one database.

:class:`SQLiteStore` keeps everything in one SQLite database in a data directory (see
docs/durability.md; the tables are in :mod:`~kiltmq.broker.store.schema`, the batching of
writes in :mod:`~kiltmq.broker.store.writer`). It also pages message bodies out of memory:
:meth:`SQLiteStore.page_out` swaps a message for a
:class:`~kiltmq.broker.message.PagedMessage` stand-in; :meth:`SQLiteStore.load_later`
reads the bodies back in a reader thread (:mod:`~kiltmq.broker.store.reader`), a few
hundred per query, and :meth:`SQLiteStore.load` on the loop where an answer is needed
at once (basic.get, dead-lettering).

Where a message is: messages are shared by every queue they are in and never changed, so
the store keeps its own record. Per durable queue it maps the id of each published
message still in that queue to the position (``pos``) of its row. The entry goes when
the message leaves the queue (:meth:`~SQLiteStore.message_removed`, also for a purge),
when the queue pages the message out (the stand-in takes its place), and with the queue
(a deleted queue or vhost; rows of deliveries still unacknowledged then are orphans,
deleted at the next start). The record outlives a close: a broker stopped and started
again keeps its messages in memory. Messages the store creates itself (stand-ins, and messages
read back by ``load``) carry the position of their row as their id instead: positions
start at ``KEY_BASE``, above every id a published message gets, so the two never meet.

A message routed to several durable queues gets one row per queue; a fan-out reports its
queues one after another, so the store remembers the message enqueued last and writes
the position of its first row as the ``key`` of the others.

A message enqueued and removed before its batch was handed to the writer (a consumer
that keeps up) is never written at all; its confirm still waits for the batch.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from asyncio import get_running_loop
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from kiltmq.broker.auth import User
from kiltmq.broker.message import Message, PagedMessage
from kiltmq.broker.store.interface import (
    ConfirmWaiter,
    Definition,
    Recovered,
    Store,
    StoreError,
)
from kiltmq.broker.store.lock import DirectoryLock
from kiltmq.broker.store.reader import Reader, read_rows
from kiltmq.broker.store.recovery import read_back
from kiltmq.broker.store.schema import (
    DB_NAME,
    KEY_BASE,
    SET_META,
    connect,
    damaged,
    definition_key,
)
from kiltmq.broker.store.watermark import WATERMARK_NAME, Watermark
from kiltmq.broker.store.writer import AlarmHandler, Writer
from kiltmq.protocol.codec import encode_table

__all__ = [
    "DEFAULT_PAGE_BYTES",
    "DEFAULT_PAGE_MESSAGES",
    "SQLiteStore",
    "default_data_dir",
]

log = logging.getLogger("kiltmq.broker.store")

DEFAULT_PAGE_MESSAGES = 10_000
DEFAULT_PAGE_BYTES = 64 * 1024 * 1024


def default_data_dir() -> Path:
    """The user's data directory for kiltmq: ``$XDG_DATA_HOME/kiltmq``, else
    ``~/.local/share/kiltmq``."""
    base = os.environ.get("XDG_DATA_HOME")
    root = Path(base) if base else Path.home() / ".local" / "share"
    return root / "kiltmq"


class _Queue:
    """A durable queue as the store knows it."""

    __slots__ = ("id", "positions")

    def __init__(self, qid: int) -> None:
        #: Its id in the ``queues`` table.
        self.id = qid
        #: id of a published message in the queue -> position of its row
        self.positions: dict[int, int] = {}


class SQLiteStore(Store):
    """Definitions and persistent messages in one SQLite database in ``data_dir``.

    ``page_messages`` / ``page_bytes``: a durable queue keeps at most about this many
    ready persistent messages (or bytes of their bodies) in memory; the bodies of further
    ones stay in the store until consumers get near them (None: no limit).
    ``threaded``: commit in a writer thread (default) rather than on the event loop.

    Opening takes an exclusive lock on the directory (a second broker on it fails with
    :class:`StoreError`), and refuses a database written by a newer kiltmq, and a damaged
    one or one behind its commit watermark (:class:`StoreDamaged`), leaving the files as
    they are.
    """

    defers_confirms = True

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        page_messages: int | None = DEFAULT_PAGE_MESSAGES,
        page_bytes: int | None = DEFAULT_PAGE_BYTES,
        threaded: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self.page_messages = page_messages
        self.page_bytes = page_bytes
        self.threaded = threaded
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        #: The reader thread (while open on an event loop).
        self.body_reader: Reader | None = None
        self._lock = DirectoryLock(self.data_dir)
        self._watermark: Watermark | None = None
        self._alarm: AlarmHandler | None = None
        self._queues: dict[tuple[str, str], _Queue] = {}
        self._reset()

    def _reset(self) -> None:
        self._writer = Writer(self.path)
        self._writer.alarm = self._alarm
        self._next_pos = KEY_BASE
        self._next_qid = 1
        # The message enqueued last, and the position of its first row.
        self._last_id = 0
        self._last_key = 0
        self._was_clean = True
        #: since open: message rows never written because the message left before its
        #: batch was (statistics)
        self.rows_skipped = 0

    @property
    def commits(self) -> int:
        """Transactions committed since open."""
        return self._writer.commits

    @property
    def rows_written(self) -> int:
        """Message rows written since open."""
        return self._writer.rows_written

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.data_dir)!r})"

    # -- open and close -------------------------------------------------------------------

    def open(self) -> None:
        if self._db is not None:
            return
        self._reset()
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.data_dir.stat().st_uid == os.getuid():
                self.data_dir.chmod(0o700)  # its owner's only, as the files in it
        except OSError as exc:
            raise StoreError(
                f"cannot create data directory {self.data_dir}: {exc.strerror or exc}"
            ) from None
        self._lock.acquire()
        watermark_path = self.data_dir / WATERMARK_NAME
        try:
            opened = connect(self.path, watermark_path)
        except BaseException:
            self._lock.release(untouched=True)
            raise
        try:
            self._db, self._was_clean = opened.db, opened.was_clean
            self._watermark = Watermark(watermark_path, opened.store_id)
            try:
                self._watermark.open(opened.seq)
            except OSError as exc:
                raise StoreError(
                    f"cannot write {watermark_path}: {exc.strerror or exc}"
                ) from None
            self._reader = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._reader.execute("PRAGMA query_only = ON")
        except BaseException:
            self._close_connections()
            self._lock.release()
            raise
        self._lock.claim()
        try:
            loop = get_running_loop()
        except RuntimeError:
            loop = None
        self._writer.start(self._db, loop, self.threaded, self._watermark, opened.seq)
        if loop is not None:
            self.body_reader = Reader(self.path)
            self.body_reader.start(loop)
        log.info("store %s opened", self.path)

    def set_alarm_handler(self, handler: AlarmHandler | None) -> None:
        self._alarm = self._writer.alarm = handler

    def _close_connections(self) -> None:
        body_reader, self.body_reader = self.body_reader, None
        if body_reader is not None:
            body_reader.close()
        for attr in ("_reader", "_db"):
            conn = getattr(self, attr)
            setattr(self, attr, None)
            if conn is not None:
                conn.close()
        watermark, self._watermark = self._watermark, None
        if watermark is not None:
            watermark.close()

    def close(self) -> None:
        """Write what is pending, mark the shutdown clean, release the directory."""
        if self._db is None:
            return
        try:
            callbacks = self._writer.close([(SET_META, ("clean_shutdown", 1))])
        finally:
            self._close_connections()
            self._lock.release()
        for callback in callbacks:
            callback()
        log.info("store %s closed", self.path)

    # -- reports from the broker ------------------------------------------------------------

    def _op(self, sql: str, params: tuple[Any, ...]) -> None:
        self._writer.op(sql, params)

    def after_commit(
        self, callback: Callable[[], None], failed: Callable[[], None] | None = None
    ) -> None:
        self._writer.after_commit(callback, failed)

    def confirm_after_commit(self, waiter: ConfirmWaiter, seq: int) -> None:
        self._writer.confirm_after_commit(waiter, seq)

    def definitions_pending(self) -> bool:
        return self._writer.definitions_pending()

    def vhost_added(self, vhost: str) -> None:
        self._op("INSERT OR IGNORE INTO vhosts (name) VALUES (?)", (vhost,))

    def vhost_removed(self, vhost: str) -> None:
        for where in [where for where in self._queues if where[0] == vhost]:
            del self._queues[where]
        for sql in (
            "DELETE FROM vhosts WHERE name = ?",
            "DELETE FROM definitions WHERE vhost = ?",
            "DELETE FROM queues WHERE vhost = ?",
            "DELETE FROM permissions WHERE vhost = ?",
            "DELETE FROM topic_permissions WHERE vhost = ?",
        ):
            self._op(sql, (vhost,))

    def user_added(self, user: User) -> None:
        self._op(
            "INSERT OR REPLACE INTO users (name, password_hash, tags, limits)"
            " VALUES (?, ?, ?, ?)",
            (
                user.name, user.password_hash, json.dumps(sorted(user.tags)),
                json.dumps(user.limits, sort_keys=True) if user.limits else None,
            ),
        )

    def user_removed(self, name: str) -> None:
        self._op("DELETE FROM users WHERE name = ?", (name,))
        self._op("DELETE FROM permissions WHERE user = ?", (name,))
        self._op("DELETE FROM topic_permissions WHERE user = ?", (name,))

    def permission_set(
        self, user: str, vhost: str, configure: str, write: str, read: str
    ) -> None:
        self._op(
            "INSERT OR REPLACE INTO permissions (user, vhost, configure, write, read)"
            " VALUES (?, ?, ?, ?, ?)",
            (user, vhost, configure, write, read),
        )

    def permission_removed(self, user: str, vhost: str) -> None:
        self._op("DELETE FROM permissions WHERE user = ? AND vhost = ?", (user, vhost))

    def topic_permission_set(
        self, user: str, vhost: str, exchange: str, write: str, read: str
    ) -> None:
        self._op(
            "INSERT OR REPLACE INTO topic_permissions (user, vhost, exchange, write, read)"
            " VALUES (?, ?, ?, ?, ?)",
            (user, vhost, exchange, write, read),
        )

    def topic_permission_removed(self, user: str, vhost: str, exchange: str | None) -> None:
        if exchange is None:
            self._op(
                "DELETE FROM topic_permissions WHERE user = ? AND vhost = ?", (user, vhost)
            )
        else:
            self._op(
                "DELETE FROM topic_permissions WHERE user = ? AND vhost = ? AND exchange = ?",
                (user, vhost, exchange),
            )

    def definition_added(self, vhost: str, kind: str, definition: Definition) -> None:
        if self._db is None:
            return
        if kind == "queue":
            self._new_queue(vhost, str(definition["name"]))
        self._op(
            "INSERT OR REPLACE INTO definitions (vhost, kind, key, data) VALUES (?, ?, ?, ?)",
            (vhost, kind, definition_key(kind, definition), encode_table(definition)),
        )

    def definition_removed(self, vhost: str, kind: str, definition: Definition) -> None:
        if self._db is None:
            return
        if kind == "queue":
            known = self._queues.pop((vhost, str(definition["name"])), None)
            if known is not None:
                self._op("DELETE FROM queues WHERE id = ?", (known.id,))
        self._op(
            "DELETE FROM definitions WHERE vhost = ? AND kind = ? AND key = ?",
            (vhost, kind, definition_key(kind, definition)),
        )

    def _new_queue(self, vhost: str, name: str) -> _Queue:
        qid = self._next_qid
        self._next_qid = qid + 1
        self._queues[(vhost, name)] = known = _Queue(qid)
        self._op("INSERT INTO queues (id, vhost, name) VALUES (?, ?, ?)", (qid, vhost, name))
        return known

    # -- messages ---------------------------------------------------------------------------

    def message_enqueued(self, vhost: str, queue: str, message: Message) -> None:
        if self._db is None:
            return
        known = self._queues.get((vhost, queue))
        if known is None:
            known = self._new_queue(vhost, queue)
        pos = self._next_pos
        self._next_pos = pos + 1
        mid = message.id
        if mid == self._last_id:
            key = self._last_key  # a further queue of the same message
        else:
            self._last_id = mid
            self._last_key = key = pos
        known.positions[mid] = pos
        writer = self._writer
        writer.batch.inserts[pos] = (known.id, key, message)
        if not writer.scheduled:
            writer.schedule()

    def message_expires(self, vhost: str, queue: str, message: Message, at: float) -> None:
        self._message_time(vhost, queue, message, at, "expires")

    def message_arrived(self, vhost: str, queue: str, message: Message, at: float) -> None:
        self._message_time(vhost, queue, message, at, "arrived")

    def _message_time(
        self, vhost: str, queue: str, message: Message, at: float,
        column: Literal["expires", "arrived"],
    ) -> None:
        """Keep ``at`` (seconds since the epoch, kept in milliseconds) in the message's
        row, column ``column``: with its insert if that is still to be written."""
        known = self._queues.get((vhost, queue))
        if known is None or self._db is None:
            return
        pos = known.positions.get(message.id)
        if pos is None:
            return
        millis = int(at * 1000)
        batch = self._writer.batch
        if pos in batch.inserts:
            pending = batch.expires if column == "expires" else batch.arrived
            pending[pos] = millis
        else:  # written already (not the usual order of calls)
            self._op(f"UPDATE messages SET {column} = ? WHERE pos = ?", (millis, pos))

    def message_removed(self, vhost: str, queue: str, message: Message) -> None:
        if self._db is None:
            return
        known = self._queues.get((vhost, queue))
        if known is None:
            return
        pos = known.positions.pop(message.id, None)
        if pos is None:
            pos = message.id  # a stand-in, or a message read back
            if pos < KEY_BASE:
                return  # never stored
        writer = self._writer
        batch = writer.batch
        if batch.inserts.pop(pos, None) is None:
            batch.deletes.append(pos)
            if not writer.scheduled:
                writer.schedule()
        else:
            if batch.expires:
                batch.expires.pop(pos, None)
            if batch.arrived:
                batch.arrived.pop(pos, None)
            self.rows_skipped += 1

    def _position(self, vhost: str, queue: str, message: Message) -> int | None:
        """The position of the row of ``message`` in ``queue`` (None: not stored)."""
        known = self._queues.get((vhost, queue)) if self._db is not None else None
        if known is None:
            return None
        pos = known.positions.get(message.id)
        if pos is None:
            pos = message.id  # a stand-in, or a message read back
        return pos if pos >= KEY_BASE else None

    def message_returned(
        self, vhost: str, queue: str, message: Message, delivery_count: int
    ) -> None:
        pos = self._position(vhost, queue, message)
        if pos is not None:
            self._writer.batch.counts[pos] = delivery_count
            self._writer.schedule()

    def message_dead(self, vhost: str, queue: str, message: Message, reason: str) -> None:
        pos = self._position(vhost, queue, message)
        if pos is not None:
            self._writer.batch.dead[pos] = reason
            self._writer.schedule()

    def mark_redelivered(self, vhost: str, queue: str, messages: Iterable[Message]) -> None:
        position = self._position
        marks = [p for m in messages if (p := position(vhost, queue, m)) is not None]
        if marks:
            self._writer.batch.delivered.extend(marks)
            self._writer.schedule()

    # -- paging -----------------------------------------------------------------------------

    def page_out(self, vhost: str, queue: str, message: Message) -> Message:
        if self._db is None or message.paged:
            return message
        known = self._queues.get((vhost, queue))
        pos = known.positions.pop(message.id, None) if known is not None else None
        if pos is None:
            if message.id < KEY_BASE:
                return message  # not in the store
            pos = message.id
        return PagedMessage.stub(pos, message.size, message.raw_properties)

    def _unwritten(self, messages: Sequence[Message]) -> tuple[list[Message], dict[int, int]]:
        """``messages`` with the stand-ins of rows still to be written replaced (from the
        writer's batches), and the positions to read: pos -> index."""
        out = list(messages)
        wanted: dict[int, int] = {}
        pending = self._writer.pending
        for i, message in enumerate(out):
            if not message.paged:
                continue
            pos = message.id
            unwritten = pending(pos)
            if unwritten is not None:
                out[i] = Message.restored(
                    pos,
                    unwritten.exchange,
                    unwritten.routing_key,
                    unwritten.raw_properties,
                    unwritten.body,
                    unwritten.deliver_tail,
                )
            else:
                wanted[pos] = i
        return out, wanted

    def _fill(
        self, queue: str, out: list[Message], wanted: dict[int, int], found: dict[int, Message]
    ) -> list[Message]:
        for pos, i in wanted.items():
            message = found.get(pos)
            if message is None:
                lost = len(wanted) - len(found)
                raise StoreError(
                    f"the store {self.path} lost {lost} message(s) of queue '{queue}'"
                )
            out[i] = message
        return out

    def load(self, vhost: str, queue: str, messages: Sequence[Message]) -> list[Message]:
        out, wanted = self._unwritten(messages)
        if not wanted:
            return out
        reader = self._reader
        if reader is None:
            raise StoreError(f"the store {self.path} is closed")
        try:
            found = read_rows(reader, list(wanted))
        except sqlite3.Error as exc:
            raise damaged(self.path, exc) from None
        return self._fill(queue, out, wanted, found)

    def load_later(
        self,
        vhost: str,
        queue: str,
        messages: Sequence[Message],
        done: Callable[[list[Message] | None], None],
    ) -> None:
        out, wanted = self._unwritten(messages)
        body_reader = self.body_reader
        if not wanted or body_reader is None:
            done(out if not wanted else None)
            return

        def finish(found: dict[int, Message] | BaseException) -> None:
            if isinstance(found, BaseException):
                log.error("store %s: reading messages back failed: %s", self.path, found)
                done(None)
                return
            try:
                done(self._fill(queue, out, wanted, found))
            except StoreError as exc:
                log.error("%s", exc)
                done(None)

        if not body_reader.read(list(wanted), finish):
            done(None)

    # -- recovery ---------------------------------------------------------------------------

    def recover(self) -> Recovered:
        db = self._db
        if db is None:
            return Recovered()
        try:
            recovered, queue_ids, top = read_back(db, self.path, not self._was_clean)
        except sqlite3.Error as exc:
            raise damaged(self.path, exc) from None
        # A broker stopped and started again keeps its messages in memory: what the
        # store knew of them before its close still holds for the queues that remain.
        before, self._queues = self._queues, {}
        for where, qid in queue_ids.items():
            known = before.get(where)
            if known is None or known.id != qid:
                known = _Queue(qid)
            self._queues[where] = known
            self._next_qid = max(self._next_qid, qid + 1)
        self._next_pos = max(KEY_BASE, (top or 0) + 1)
        return recovered
