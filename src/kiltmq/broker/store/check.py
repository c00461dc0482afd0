"""The checks a store passes before it is opened for writing, made without changing it.

Opening an SQLite database, even read-only, can change files: it creates an empty
``-wal`` and ``-shm`` when they are missing, and rebuilds the ``-shm`` index. So the
checks run on a snapshot: a private directory in the data directory holding hard links
to the database and its write-ahead log (copies where hard links are not possible),
opened read-only there (no ``-shm``: SQLite then keeps its index in memory and verifies
every WAL frame's checksum, as the real open will), and removed afterwards.

Checked: the format version (a newer one is refused), that the file is a kiltmq store,
``PRAGMA quick_check``, and the commit watermark
(:mod:`~kiltmq.broker.store.watermark`): the database must belong to the same store and
have committed at least as far as the watermark says. A refusal raises
:class:`~kiltmq.broker.store.interface.StoreDamaged` (or ``StoreError`` for a newer or
foreign database) with one line, and the data directory is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from kiltmq.broker.store.interface import StoreDamaged, StoreError
from kiltmq.broker.store.watermark import Mark, read_mark

__all__ = ["CHECK_DIR", "Checked", "check", "damaged"]

#: The snapshot directory (in the data directory, only while a check runs).
CHECK_DIR = ".kiltmq-check"

_ADVICE = (
    "kiltmq will not start on it and has not changed it: move the data directory away "
    "to start empty, or restore a backup"
)


class Checked(NamedTuple):
    """What the checks read: format version (0: no database yet), store id and last
    commit number as the database has them (None and 0 for a store written before
    kiltmq kept them), and the watermark (None: none)."""

    version: int
    store_id: bytes | None
    seq: int
    mark: Mark | None


def damaged(path: Path, exc: BaseException | str) -> StoreDamaged:
    """The error for a store that cannot be read."""
    return StoreDamaged(f"the store {path} cannot be read ({exc}); {_ADVICE}")


@contextlib.contextmanager
def _snapshot(path: Path) -> Iterator[Path]:
    """The database ``path`` and its WAL as seen from a private directory."""
    where = path.parent / CHECK_DIR
    shutil.rmtree(where, ignore_errors=True)  # left by a process killed while checking
    where.mkdir(mode=0o700)
    try:
        for suffix in ("", "-wal"):
            source = path.with_name(path.name + suffix)
            if not source.exists():
                continue
            target = where / source.name
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        yield where / path.name
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _read(path: Path, real: Path, newest: int) -> tuple[int, bytes | None, int]:
    """Format version, store id and commit number of the database at ``path`` (a
    snapshot of ``real``), after its checks."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise damaged(real, exc) from None
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > newest:
            raise StoreError(
                f"the store {real} has format {version}, written "
                f"by a newer kiltmq (this one reads format {newest} at most): refusing "
                "to open it"
            )
        if version == 0:
            if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise StoreError(
                    f"{real} is an SQLite database but not a "
                    "kiltmq store: refusing to touch it"
                )
            return 0, None, 0
        if db.execute("PRAGMA quick_check(1)").fetchone()[0] != "ok":
            raise damaged(real, "integrity check failed")
        meta = dict(
            db.execute("SELECT key, value FROM meta WHERE key IN ('store_id', 'commit_seq')")
        )
        store_id = meta.get("store_id")
        return (
            version,
            bytes.fromhex(store_id) if isinstance(store_id, str) else None,
            int(meta.get("commit_seq") or 0),
        )
    except sqlite3.Error as exc:
        raise damaged(real, exc) from None
    finally:
        db.close()


def check(path: Path, watermark: Path, newest: int) -> Checked:
    """Check the store whose database is ``path`` and whose watermark is ``watermark``
    (``newest``: the newest format this kiltmq reads); raise if it must be refused."""
    mark = read_mark(watermark)
    wal = path.with_name(path.name + "-wal")
    if not path.exists():
        if mark is not None and mark.seq > 0:
            raise StoreDamaged(
                f"the store {path} is missing: its commit watermark {watermark} says "
                f"{mark.seq} transactions were committed; {_ADVICE}"
            )
        if wal.exists():
            raise StoreDamaged(
                f"the store {path} is missing but its {wal.name} is there; {_ADVICE}"
            )
        return Checked(0, None, 0, mark)
    try:
        with _snapshot(path) as snapshot:
            version, store_id, seq = _read(snapshot, path, newest)
    except OSError as exc:
        raise StoreError(f"cannot check the store {path}: {exc.strerror or exc}") from None
    if mark is None:
        if seq > 0:
            raise StoreDamaged(
                f"the commit watermark {watermark} of the store {path} is missing; {_ADVICE}"
            )
    elif store_id is not None and store_id != mark.store_id:
        raise StoreDamaged(
            f"the store {path} is not the one its commit watermark {watermark} was "
            f"written for; {_ADVICE}"
        )
    elif seq < mark.seq:  # (a database without an id has not even its first commit)
        raise StoreDamaged(
            f"the store {path} lost committed transactions: it ends at commit {seq} but "
            f"commit {mark.seq} was confirmed (damaged or missing write-ahead log?); "
            f"{_ADVICE}"
        )
    return Checked(version, store_id, seq, mark)
