"""The store interface: what the broker tells durable storage, and when.

The broker keeps everything in memory and tells a :class:`Store` about the parts that must
survive a restart; a store never drives routing or delivery. The calls:

* :meth:`Store.definition_added` / :meth:`Store.definition_removed`: a durable exchange,
  a durable queue, or a binding between durable ends was declared or deleted
  (definitions are plain dicts shaped like RabbitMQ's definitions export).
* :meth:`Store.message_enqueued`: a persistent message (delivery-mode 2) entered a durable
  queue; :meth:`Store.message_removed`: it left that queue for good (acked, dropped,
  expired, dead-lettered, purged, or the queue was deleted). Requeueing is not removal.
  :meth:`Store.message_expires` follows ``message_enqueued`` for a message with a TTL in
  that queue: its deadline, kept across a restart.
* :meth:`Store.after_commit`: publisher confirms for persistent messages wait for this:
  the callback runs once everything enqueued so far is safely written. A store that
  batches writes (group commit) calls it after the batch commits. Replies to
  declarations of durable objects wait for it too while :meth:`Store.definitions_pending`.
* :meth:`Store.recover`: at start, the definitions and messages to rebuild.

:class:`MemoryStore` implements it with no storage at all: nothing is written, nothing is
recovered, and ``after_commit`` callbacks run at once (``defers_confirms`` is False, so the
broker does not even ask).

:class:`SQLiteStore` keeps everything in one SQLite database in a data directory (see
docs/durability.md). It also pages message bodies out of memory: a durable queue holding
more than :attr:`Store.page_messages` ready messages (or :attr:`Store.page_bytes` bytes)
swaps the bodies of further persistent messages for :class:`PagedMessage` stand-ins
(:meth:`Store.page_out`) and reads them back in batches before delivery
(:meth:`Store.load`). Users, permissions and vhosts are reported too
(:meth:`Store.user_added`, :meth:`Store.permission_set`, :meth:`Store.vhost_added`), and
at a clean shutdown the broker reports which waiting messages had been delivered before
(:meth:`Store.mark_redelivered`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import queue as queue_module
import sqlite3
import threading
from asyncio import AbstractEventLoop, get_running_loop
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kiltmq.broker.auth import User
from kiltmq.broker.message import Message, PagedMessage
from kiltmq.protocol.codec import decode_table, encode_table

__all__ = [
    "Definition",
    "MemoryStore",
    "PagedMessage",
    "Recovered",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoredMessage",
    "default_data_dir",
]

log = logging.getLogger("kiltmq.broker.store")

Definition = dict[str, Any]
"""A definition: for ``kind == "exchange"`` keys name, type, durable, auto_delete,
internal, arguments; for ``"queue"`` name, durable, auto_delete, arguments; for
``"binding"`` source, destination, destination_type ("queue" or "exchange"),
routing_key, arguments."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A persistent message waiting in a durable queue, as recovered at start."""

    vhost: str
    queue: str
    message: Message
    redelivered: bool = False
    #: When it expires in this queue (seconds since the epoch; None: no TTL, or a store
    #: that did not record it).
    expires_at: float | None = None


@dataclass(slots=True)
class Recovered:
    """What a store hands back at start: definitions in dependency order (exchanges and
    queues before the bindings between them) and the messages of durable queues in
    queue order."""

    vhosts: list[str] = field(default_factory=list)
    definitions: list[tuple[str, str, Definition]] = field(default_factory=list)
    messages: list[StoredMessage] = field(default_factory=list)
    #: Users as stored (the broker's configured users take precedence).
    users: list[User] = field(default_factory=list)
    #: (user, vhost, configure, write, read) as stored.
    permissions: list[tuple[str, str, str, str, str]] = field(default_factory=list)


class Store:
    """Base class and interface of broker storage. Every method is a no-op here."""

    #: True when confirms of persistent messages must wait for :meth:`after_commit`.
    defers_confirms: bool = False
    #: A durable queue pages out the bodies of persistent messages that arrive while it
    #: holds more than this many ready messages (None: never).
    page_messages: int | None = None
    #: ... or more than this many bytes of ready message bodies (None: never).
    page_bytes: int | None = None

    def open(self) -> None:
        """Prepare the storage (create files, tables)."""

    def close(self) -> None:
        """Flush and release the storage."""

    def recover(self) -> Recovered:
        """Definitions and messages to rebuild at start."""
        return Recovered()

    def vhost_added(self, vhost: str) -> None:
        """A virtual host was created."""

    def definition_added(self, vhost: str, kind: str, definition: Definition) -> None:
        """A durable exchange or queue, or a binding between durable ends, was created."""

    def definition_removed(self, vhost: str, kind: str, definition: Definition) -> None:
        """A durable definition was deleted (deleting a queue or exchange also reports its
        bindings)."""

    def message_enqueued(self, vhost: str, queue: str, message: Message) -> None:
        """A persistent message entered a durable queue."""

    def message_expires(self, vhost: str, queue: str, message: Message, at: float) -> None:
        """The persistent message just reported with :meth:`message_enqueued` expires in
        that queue at ``at`` (seconds since the epoch: per-message TTL or x-message-ttl),
        so that it keeps its deadline across a restart."""

    def message_removed(self, vhost: str, queue: str, message: Message) -> None:
        """A persistent message left a durable queue for good."""

    def queue_purged(self, vhost: str, queue: str, messages: Iterable[Message]) -> None:
        """Many messages left a durable queue at once (purge, delete)."""
        for message in messages:
            self.message_removed(vhost, queue, message)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything reported so far is durable."""
        callback()

    def definitions_pending(self) -> bool:
        """True while a reported definition (exchange, queue, binding, vhost, user,
        permission) is not yet durable: replies to declarations then wait for
        :meth:`after_commit`."""
        return False

    def vhost_removed(self, vhost: str) -> None:
        """A virtual host and everything in it was deleted."""

    def user_added(self, user: User) -> None:
        """A user was created or changed."""

    def user_removed(self, name: str) -> None:
        """A user was deleted."""

    def permission_set(
        self, user: str, vhost: str, configure: str, write: str, read: str
    ) -> None:
        """A user's permissions in a vhost were set."""

    def permission_removed(self, user: str, vhost: str) -> None:
        """A user's permissions in a vhost were cleared."""

    def mark_redelivered(self, vhost: str, queue: str, messages: Iterable[Message]) -> None:
        """At a clean shutdown: these persistent messages waiting in a durable queue had
        been delivered before (they come back with redelivered=true)."""

    def page_out(self, vhost: str, queue: str, message: Message) -> Message:
        """A stand-in without the body for ``message`` (already reported with
        :meth:`message_enqueued`), or ``message`` itself when the store keeps no bodies."""
        return message

    def load(self, vhost: str, queue: str, messages: Sequence[Message]) -> list[Message]:
        """The full messages for ``messages``, in order (stand-ins are read back from the
        store; other messages are returned as they are)."""
        return list(messages)


class MemoryStore(Store):
    """No persistence: the broker's in-memory state is all there is."""

    defers_confirms = False


# -- SQLite ------------------------------------------------------------------------------
#
# Theory of operation
# -------------------
# One database file, ``kiltmq.db``, in the data directory, in WAL mode with
# ``synchronous=FULL``: every commit appends to the write-ahead log and fsyncs it, so a
# committed transaction survives a power cut or a kill -9, and a torn write can only lose
# an uncommitted one.
#
# The broker reports changes on the event loop; they collect in a :class:`_Batch`. The
# first change of a batch schedules a flush for the next loop iteration; the flush hands
# the batch to a writer thread (one transaction: inserts, deletes, definitions, then
# fsync) and starts a new batch. While a batch is being written the next one fills up, so
# the batch size follows the disk's fsync time (group commit). When the transaction has
# committed, the writer schedules :meth:`SQLiteStore._committed` on the loop, which runs
# the batch's ``after_commit`` callbacks (publisher confirms, tx.commit-ok) and sends the
# next batch. At most one batch is in flight.
#
# A message enqueued and removed before its batch was handed to the writer (a consumer
# that keeps up) is never written at all; its confirm still waits for the batch.
#
# Messages: one row per (queue, message) in ``messages``; ``pos`` (the rowid) is a
# counter, so a queue's rows in pos order are the queue's order. The first row of a message
# has ``pos == key``, where ``key`` is the message's store key, which the store writes into
# ``message.id`` (keys start at KEY_BASE, above the ids the process counter hands out, so
# ids stay unique). A message routed to several durable queues gets one row per queue (as
# RabbitMQ embeds small messages in each queue's index); rows after the first are found
# through ``_extra``. Rows of a deleted queue that were not removed one by one (deliveries
# still unacknowledged when it went) are orphans, deleted at the next start.
#
# Expiry: a message with a TTL in a queue (expiration property or x-message-ttl) has its
# absolute deadline in its row (``expires``, milliseconds since the epoch), so that it
# expires at the same moment after a restart, as in RabbitMQ.
#
# Format versions (``PRAGMA user_version``): 1, the first; 2 adds ``messages.expires``.
# An older store is upgraded in place at open, one step per version, each in one
# transaction (``_MIGRATIONS``); nothing is dropped. A newer store is refused.
#
# Redelivered flags: after a clean shutdown the broker reported (mark_redelivered) which
# waiting messages had been delivered before; exactly those come back redelivered. After
# a crash the store cannot know which messages a consumer saw in the last moments, so
# every recovered message comes back redelivered=true (a message is never redelivered
# without the flag).

SCHEMA_VERSION = 2
DB_NAME = "kiltmq.db"
LOCK_NAME = "kiltmq.lock"
#: Store keys of messages start here, above any id ``Message`` hands out in a process.
KEY_BASE = 1 << 48
DEFAULT_PAGE_MESSAGES = 10_000
DEFAULT_PAGE_BYTES = 64 * 1024 * 1024
_IN_CHUNK = 500  # parameters per "IN (...)" query when reading bodies back

_SCHEMA = """
BEGIN;
CREATE TABLE meta (key TEXT PRIMARY KEY, value);
CREATE TABLE vhosts (name TEXT PRIMARY KEY);
CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT, tags TEXT NOT NULL);
CREATE TABLE permissions (
    user TEXT NOT NULL, vhost TEXT NOT NULL,
    configure TEXT NOT NULL, write TEXT NOT NULL, read TEXT NOT NULL,
    PRIMARY KEY (user, vhost));
CREATE TABLE definitions (
    vhost TEXT NOT NULL, kind TEXT NOT NULL, key BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (vhost, kind, key));
CREATE TABLE queues (id INTEGER PRIMARY KEY, vhost TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE messages (
    pos INTEGER PRIMARY KEY, queue_id INTEGER NOT NULL, key INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0, exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL, properties BLOB NOT NULL, body BLOB NOT NULL,
    expires INTEGER);
INSERT INTO meta VALUES ('clean_shutdown', 1);
PRAGMA user_version = 2;
COMMIT;
"""
#: Format version -> the statements that turn it into the next one (run in one
#: transaction with the new user_version).
_MIGRATIONS: dict[int, str] = {
    1: "ALTER TABLE messages ADD COLUMN expires INTEGER;",
}
_INSERT = (
    "INSERT INTO messages"
    " (pos, queue_id, key, exchange, routing_key, properties, body, expires)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELETE = "DELETE FROM messages WHERE pos = ?"
_MARK_DELIVERED = "UPDATE messages SET delivered = 1 WHERE pos = ?"
_SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
_KIND_ORDER = {"exchange": 0, "queue": 1, "binding": 2}


class StoreError(Exception):
    """The store cannot be used: locked by another broker, written by a newer version,
    damaged, or unreadable. The message is one line fit for the command line."""


def default_data_dir() -> Path:
    """The user's data directory for kiltmq: ``$XDG_DATA_HOME/kiltmq``, else
    ``~/.local/share/kiltmq``."""
    base = os.environ.get("XDG_DATA_HOME")
    root = Path(base) if base else Path.home() / ".local" / "share"
    return root / "kiltmq"


def _binding_key(definition: Definition) -> bytes:
    arguments = definition.get("arguments") or {}
    return encode_table(
        {
            "s": definition["source"],
            "t": definition.get("destination_type", "queue"),
            "d": definition["destination"],
            "k": definition["routing_key"],
            "a": dict(sorted(arguments.items())),
        }
    )


def _definition_key(kind: str, definition: Definition) -> bytes:
    if kind == "binding":
        return _binding_key(definition)
    return str(definition["name"]).encode()


class _Batch:
    """Changes collected on the loop for one transaction."""

    __slots__ = ("inserts", "expires", "deletes", "ops", "delivered", "callbacks")

    def __init__(self) -> None:
        #: pos -> (queue id, message): rows to insert
        self.inserts: dict[int, tuple[int, Message]] = {}
        #: pos -> deadline (ms since the epoch) of rows to insert that expire
        self.expires: dict[int, int] = {}
        #: pos of rows to delete (written in an earlier batch)
        self.deletes: list[int] = []
        #: other statements, in order (definitions, users, queue ids...)
        self.ops: list[tuple[str, tuple[Any, ...]]] = []
        #: pos of rows to mark delivered (after the inserts)
        self.delivered: list[int] = []
        self.callbacks: list[Callable[[], None]] = []

    def empty(self) -> bool:
        return not (self.inserts or self.deletes or self.ops or self.delivered or self.callbacks)


class SQLiteStore(Store):
    """Definitions and persistent messages in one SQLite database in ``data_dir``.

    ``page_messages`` / ``page_bytes``: a durable queue keeps at most about this many
    ready persistent messages (or bytes of their bodies) in memory; the bodies of further
    ones stay in the store until consumers get near them (None: no limit).
    ``threaded``: commit in a writer thread (default) rather than on the event loop.

    Opening takes an exclusive lock on the directory (a second broker on it fails with
    :class:`StoreError`), and refuses a database written by a newer kiltmq or a damaged
    one, leaving the files as they are.
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
        self._lock_file: IO[str] | None = None
        self._loop: AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._jobs: queue_module.SimpleQueue[_Batch | None] | None = None
        self._reset()

    def _reset(self) -> None:
        self._batch = _Batch()
        self._inflight: _Batch | None = None
        self._scheduled = False
        self._qids: dict[tuple[str, str], int] = {}
        self._extra: dict[tuple[int, int], int] = {}
        self._next_pos = KEY_BASE
        self._next_qid = 1
        self._was_clean = True
        self._failures = 0
        #: since open: transactions committed, message rows written, message rows never
        #: written because the message left before its batch was (statistics)
        self.commits = 0
        self.rows_written = 0
        self.rows_skipped = 0

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.data_dir)!r})"

    # -- open and close -------------------------------------------------------------------

    def open(self) -> None:
        if self._db is not None:
            return
        self._reset()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create data directory {self.data_dir}: {exc.strerror or exc}"
            ) from None
        self._lock()
        try:
            self._db = self._connect()
            self._reader = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._reader.execute("PRAGMA query_only = ON")
        except BaseException:
            self._close_connections()
            self._unlock()
            raise
        try:
            self._loop = get_running_loop()
        except RuntimeError:
            self._loop = None
        if self.threaded and self._loop is not None:
            self._jobs = queue_module.SimpleQueue()
            self._thread = threading.Thread(
                target=self._writer,
                args=(self._db, self._jobs, self._loop),
                name="kiltmq-store",
                daemon=True,
            )
            self._thread.start()
        log.info("store %s opened", self.path)

    def _lock(self) -> None:
        path = self.data_dir / LOCK_NAME
        try:
            handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held while open)
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
                f"data directory {self.data_dir} is in use by another broker{who}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def _unlock(self) -> None:
        handle, self._lock_file = self._lock_file, None
        if handle is not None:
            handle.close()  # closing the descriptor releases the flock

    def _damaged(self, exc: BaseException) -> StoreError:
        return StoreError(
            f"the store {self.path} cannot be read ({exc}); kiltmq will not start on it "
            "and has not changed it: move the data directory away to start empty, or "
            "restore a backup"
        )

    def _check(self) -> int:
        """The store's format version, read without changing anything (a read-only
        connection never checkpoints or rolls back): refuse a newer, foreign or damaged
        database before the read-write connection could touch it."""
        if not self.path.exists():
            return 0
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {self.path} has format {version}, written by a newer "
                    f"kiltmq (this one reads format {SCHEMA_VERSION} at most): refusing "
                    "to open it"
                )
            if version == 0:
                tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    raise StoreError(
                        f"{self.path} is an SQLite database but not a kiltmq store: "
                        "refusing to touch it"
                    )
            elif db.execute("PRAGMA quick_check(1)").fetchone()[0] != "ok":
                raise self._damaged(sqlite3.DatabaseError("integrity check failed"))
            return version
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        version = self._check()
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot put {self.path} in WAL mode (got {mode})")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA journal_size_limit = 67108864")
            if version == 0:
                db.executescript(_SCHEMA)
            elif version < SCHEMA_VERSION:
                self._migrate(db, version)
            row = db.execute("SELECT value FROM meta WHERE key = 'clean_shutdown'").fetchone()
            self._was_clean = bool(row and row[0])
            # From now on an unclean stop is detectable: the marker is set again by close().
            db.execute(_SET_META, ("clean_shutdown", 0))
        except StoreError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            raise self._damaged(exc) from None
        return db

    def _migrate(self, db: sqlite3.Connection, version: int) -> None:
        """Upgrade a store of an older format in place, one version at a time, each step
        in one transaction (a failed step leaves the store as it was)."""
        for old in range(version, SCHEMA_VERSION):
            try:
                db.executescript(
                    f"BEGIN; {_MIGRATIONS[old]} PRAGMA user_version = {old + 1}; COMMIT;"
                )
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            log.info("store %s: format %d upgraded to %d", self.path, old, old + 1)

    def _close_connections(self) -> None:
        for attr in ("_reader", "_db"):
            conn = getattr(self, attr)
            setattr(self, attr, None)
            if conn is not None:
                conn.close()

    def close(self) -> None:
        """Write what is pending, mark the shutdown clean, release the directory."""
        db = self._db
        if db is None:
            return
        final = self._batch
        self._batch = _Batch()
        final.ops.append((_SET_META, ("clean_shutdown", 1)))
        pending = [b for b in (self._inflight,) if b is not None and self._thread is None]
        jobs, thread = self._jobs, self._thread
        self._jobs = None
        self._thread = None
        try:
            if jobs is not None and thread is not None:
                if self._inflight is not None and self._failures:
                    jobs.put(self._inflight)  # a failed batch waiting for its retry
                jobs.put(final)
                jobs.put(None)
                thread.join()
            else:
                for batch in [*pending, final]:
                    self._apply(db, batch)
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.error("store %s: the last writes failed at close: %s", self.path, exc)
        finally:
            self._inflight = None
            self._close_connections()
            self._unlock()
        # Run the last callbacks here (the writer's own report, if the loop still runs it,
        # then finds an empty list).
        callbacks, final.callbacks = final.callbacks, []
        for callback in callbacks:
            callback()
        log.info("store %s closed", self.path)

    # -- the writer -----------------------------------------------------------------------

    def _apply(self, db: sqlite3.Connection, batch: _Batch) -> None:
        """Write one batch in one transaction (any thread)."""
        db.execute("BEGIN")
        try:
            for sql, params in batch.ops:
                db.execute(sql, params)
            if batch.inserts:
                expires = batch.expires.get
                db.executemany(
                    _INSERT,
                    [
                        (
                            pos, qid, m.id, m.exchange, m.routing_key, m.raw_properties,
                            m.body, expires(pos),
                        )
                        for pos, (qid, m) in batch.inserts.items()
                    ],
                )
            if batch.deletes:
                db.executemany(_DELETE, [(pos,) for pos in batch.deletes])
            if batch.delivered:
                db.executemany(_MARK_DELIVERED, [(pos,) for pos in batch.delivered])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.commits += 1
        self.rows_written += len(batch.inserts)

    def _writer(
        self,
        db: sqlite3.Connection,
        jobs: queue_module.SimpleQueue[_Batch | None],
        loop: AbstractEventLoop,
    ) -> None:
        while True:
            batch = jobs.get()
            if batch is None:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return
            try:
                self._apply(db, batch)
            except Exception as exc:  # reported on the loop
                done: Callable[..., None] = self._write_failed
                args: tuple[Any, ...] = (batch, exc)
            else:
                done = self._committed
                args = (batch,)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(done, *args)

    def _committed(self, batch: _Batch) -> None:
        if self._inflight is batch:
            self._inflight = None
        if self._failures:
            log.warning("store %s: writing again after %d failures", self.path, self._failures)
            self._failures = 0
        for callback in batch.callbacks:
            try:
                callback()
            except Exception:
                log.exception("after-commit callback failed")
        if self._db is not None and self._inflight is None and not self._batch.empty():
            if self._jobs is not None:
                self._flush()
            else:
                self._schedule()

    def _write_failed(self, batch: _Batch, exc: BaseException) -> None:
        """A transaction failed (disk full, I/O error): it was rolled back; try the same
        batch again in a second. Confirms wait meanwhile."""
        self._failures += 1
        if self._failures == 1 or self._failures % 60 == 0:
            log.error(
                "store %s: cannot write (%s); confirms of persistent messages wait, "
                "retrying every second",
                self.path,
                exc,
            )
        if self._loop is not None:
            self._loop.call_later(1.0, self._retry, batch)

    def _retry(self, batch: _Batch) -> None:
        if self._db is None or self._inflight is not batch:
            return
        self._send(batch)

    def _schedule(self) -> None:
        if self._scheduled:
            return
        loop = self._loop
        if loop is None:
            self._flush()  # no event loop: write at once
            return
        self._scheduled = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._inflight is not None or self._db is None:
            return  # the next batch goes when the one in flight has committed
        batch = self._batch
        if batch.empty():
            return
        self._batch = _Batch()
        self._send(batch)

    def _send(self, batch: _Batch) -> None:
        self._inflight = batch
        if self._jobs is not None:
            self._jobs.put(batch)
            return
        assert self._db is not None
        try:
            self._apply(self._db, batch)
        except sqlite3.Error as exc:
            self._write_failed(batch, exc)
            return
        self._committed(batch)

    # -- reports from the broker ------------------------------------------------------------

    def _op(self, sql: str, params: tuple[Any, ...]) -> None:
        if self._db is None:
            return
        self._batch.ops.append((sql, params))
        if not self._scheduled:
            self._schedule()

    def after_commit(self, callback: Callable[[], None]) -> None:
        if self._db is None:
            callback()
            return
        batch = self._batch
        if not batch.empty():
            batch.callbacks.append(callback)
        elif self._inflight is not None:
            self._inflight.callbacks.append(callback)
        else:
            callback()

    def definitions_pending(self) -> bool:
        if self._batch.ops:
            return True
        inflight = self._inflight
        return inflight is not None and bool(inflight.ops)

    def vhost_added(self, vhost: str) -> None:
        self._op("INSERT OR IGNORE INTO vhosts (name) VALUES (?)", (vhost,))

    def vhost_removed(self, vhost: str) -> None:
        for (v, name), _qid in list(self._qids.items()):
            if v == vhost:
                del self._qids[(v, name)]
        for sql in (
            "DELETE FROM vhosts WHERE name = ?",
            "DELETE FROM definitions WHERE vhost = ?",
            "DELETE FROM queues WHERE vhost = ?",
            "DELETE FROM permissions WHERE vhost = ?",
        ):
            self._op(sql, (vhost,))

    def user_added(self, user: User) -> None:
        self._op(
            "INSERT OR REPLACE INTO users (name, password_hash, tags) VALUES (?, ?, ?)",
            (user.name, user.password_hash, json.dumps(sorted(user.tags))),
        )

    def user_removed(self, name: str) -> None:
        self._op("DELETE FROM users WHERE name = ?", (name,))
        self._op("DELETE FROM permissions WHERE user = ?", (name,))

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

    def definition_added(self, vhost: str, kind: str, definition: Definition) -> None:
        if self._db is None:
            return
        if kind == "queue":
            self._new_queue_id(vhost, str(definition["name"]))
        self._op(
            "INSERT OR REPLACE INTO definitions (vhost, kind, key, data) VALUES (?, ?, ?, ?)",
            (vhost, kind, _definition_key(kind, definition), encode_table(definition)),
        )

    def definition_removed(self, vhost: str, kind: str, definition: Definition) -> None:
        if self._db is None:
            return
        if kind == "queue":
            qid = self._qids.pop((vhost, str(definition["name"])), None)
            if qid is not None:
                self._op("DELETE FROM queues WHERE id = ?", (qid,))
        self._op(
            "DELETE FROM definitions WHERE vhost = ? AND kind = ? AND key = ?",
            (vhost, kind, _definition_key(kind, definition)),
        )

    def _new_queue_id(self, vhost: str, name: str) -> int:
        qid = self._next_qid
        self._next_qid = qid + 1
        self._qids[(vhost, name)] = qid
        self._op("INSERT INTO queues (id, vhost, name) VALUES (?, ?, ?)", (qid, vhost, name))
        return qid

    def message_enqueued(self, vhost: str, queue: str, message: Message) -> None:
        if self._db is None:
            return
        qid = self._qids.get((vhost, queue))
        if qid is None:
            qid = self._new_queue_id(vhost, queue)
        pos = self._next_pos
        self._next_pos = pos + 1
        key = message.id
        if key < KEY_BASE:
            message.id = pos  # the message's store key from now on
        else:
            self._extra[(qid, key)] = pos  # a further queue of the same message
        self._batch.inserts[pos] = (qid, message)
        if not self._scheduled:
            self._schedule()

    def message_expires(self, vhost: str, queue: str, message: Message, at: float) -> None:
        qid = self._qids.get((vhost, queue))
        if qid is None or message.id < KEY_BASE or self._db is None:
            return
        pos = self._pos_of(qid, message.id)
        deadline = int(at * 1000)
        if pos in self._batch.inserts:
            self._batch.expires[pos] = deadline
        else:  # written already (not the usual order of calls)
            self._op("UPDATE messages SET expires = ? WHERE pos = ?", (deadline, pos))

    def _pos_of(self, qid: int, key: int) -> int:
        if self._extra:
            return self._extra.get((qid, key), key)
        return key

    def message_removed(self, vhost: str, queue: str, message: Message) -> None:
        key = message.id
        if key < KEY_BASE or self._db is None:
            return
        qid = self._qids.get((vhost, queue))
        if qid is None:
            return
        pos = self._extra.pop((qid, key), key) if self._extra else key
        batch = self._batch
        if batch.inserts.pop(pos, None) is None:
            batch.deletes.append(pos)
            if not self._scheduled:
                self._schedule()
        else:
            if batch.expires:
                batch.expires.pop(pos, None)
            self.rows_skipped += 1

    def mark_redelivered(self, vhost: str, queue: str, messages: Iterable[Message]) -> None:
        if self._db is None:
            return
        qid = self._qids.get((vhost, queue))
        if qid is None:
            return
        marks = [self._pos_of(qid, m.id) for m in messages if m.id >= KEY_BASE]
        if marks:
            self._batch.delivered.extend(marks)
            if not self._scheduled:
                self._schedule()

    # -- paging -----------------------------------------------------------------------------

    def page_out(self, vhost: str, queue: str, message: Message) -> Message:
        if self._db is None or message.id < KEY_BASE or message.paged:
            return message
        return PagedMessage.stub(message.id, message.size, message.raw_properties)

    def load(self, vhost: str, queue: str, messages: Sequence[Message]) -> list[Message]:
        out = list(messages)
        qid = self._qids.get((vhost, queue))
        wanted: dict[int, int] = {}  # pos -> index in out
        current = self._batch.inserts
        inflight = self._inflight.inserts if self._inflight is not None else {}
        for i, message in enumerate(out):
            if not message.paged:
                continue
            pos = self._pos_of(qid, message.id) if qid is not None else message.id
            pending = current.get(pos) or inflight.get(pos)
            if pending is not None:
                out[i] = pending[1]
            else:
                wanted[pos] = i
        if not wanted:
            return out
        reader = self._reader
        if reader is None:
            raise StoreError(f"the store {self.path} is closed")
        positions = list(wanted)
        for start in range(0, len(positions), _IN_CHUNK):
            chunk = positions[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            try:
                rows = reader.execute(
                    "SELECT pos, exchange, routing_key, properties, body FROM messages"
                    f" WHERE pos IN ({marks})",
                    chunk,
                ).fetchall()
            except sqlite3.Error as exc:
                raise self._damaged(exc) from None
            for pos, exchange, routing_key, properties, body in rows:
                i = wanted.pop(pos)
                message = Message(exchange, routing_key, properties, body)
                message.id = out[i].id
                out[i] = message
        if wanted:
            raise StoreError(
                f"the store {self.path} lost {len(wanted)} message(s) of queue '{queue}'"
            )
        return out

    # -- recovery ---------------------------------------------------------------------------

    def recover(self) -> Recovered:
        db = self._db
        if db is None:
            return Recovered()
        try:
            return self._recover(db)
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None

    def _recover(self, db: sqlite3.Connection) -> Recovered:
        recovered = Recovered()
        recovered.vhosts = [r[0] for r in db.execute("SELECT name FROM vhosts ORDER BY rowid")]
        for name, password_hash, tags in db.execute(
            "SELECT name, password_hash, tags FROM users ORDER BY rowid"
        ):
            recovered.users.append(User(name, password_hash, frozenset(json.loads(tags))))
        recovered.permissions = [
            (u, v, c, w, r)
            for u, v, c, w, r in db.execute(
                "SELECT user, vhost, configure, write, read FROM permissions ORDER BY rowid"
            )
        ]
        definitions = []
        for rowid, vhost, kind, data in db.execute(
            "SELECT rowid, vhost, kind, data FROM definitions"
        ):
            definitions.append((_KIND_ORDER.get(kind, 3), rowid, vhost, kind, data))
        definitions.sort()
        for _order, _rowid, vhost, kind, data in definitions:
            recovered.definitions.append((vhost, kind, decode_table(data, 0)[0]))
        names: dict[int, tuple[str, str]] = {}
        for qid, vhost, name in db.execute("SELECT id, vhost, name FROM queues"):
            names[qid] = (vhost, name)
            self._qids[(vhost, name)] = qid
            self._next_qid = max(self._next_qid, qid + 1)
        top = db.execute("SELECT max(pos) FROM messages").fetchone()[0]
        self._next_pos = max(KEY_BASE, (top or 0) + 1)
        crashed = not self._was_clean
        if crashed:
            log.warning(
                "store %s: the broker did not stop cleanly; recovered messages are marked "
                "redelivered",
                self.path,
            )
        orphans = 0
        extra = self._extra
        append = recovered.messages.append
        for pos, qid, key, delivered, size, properties, expires in db.execute(
            "SELECT pos, queue_id, key, delivered, length(body), properties, expires"
            " FROM messages ORDER BY pos"
        ):
            where = names.get(qid)
            if where is None:
                orphans += 1
                continue
            if pos != key:
                extra[(qid, key)] = pos
            append(
                StoredMessage(
                    where[0],
                    where[1],
                    PagedMessage.stub(key, size, properties),
                    crashed or bool(delivered),
                    None if expires is None else expires / 1000.0,
                )
            )
        if orphans:
            db.execute("DELETE FROM messages WHERE queue_id NOT IN (SELECT id FROM queues)")
            log.info("store %s: dropped %d messages of deleted queues", self.path, orphans)
        if recovered.messages:
            log.info("store %s: recovered %d messages", self.path, len(recovered.messages))
        return recovered
