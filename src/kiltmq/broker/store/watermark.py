"""The commit watermark: how far the store has committed, kept outside the database.

SQLite drops the end of a damaged write-ahead log without an error (a frame whose
checksum fails ends the log), so a store whose WAL was overwritten, truncated or deleted
opens as if the lost transactions had never happened. The watermark makes that loss
visible. Every transaction of the store's writer sets ``commit_seq`` in the ``meta``
table to the next number; once SQLite's commit has returned (WAL fsynced) the writer
writes the same number to ``kiltmq.watermark`` and fsyncs it, and only then are the
batch's confirms sent. So the watermark never claims more than SQLite has committed
(a kill between the two writes leaves the database one commit ahead, which is fine), and
every confirmed message lies at or below it. At open the database must have committed at
least as far as the watermark says, and belong to the same store (a random id written in
both when the store is created); else the store is refused.

The file is 1,024 bytes: two 512-byte slots, commit ``n`` written to slot ``n % 2`` in
place (no rename, no change of size, so one ``fdatasync``). Each slot holds a magic
string, the store id, the commit number and a CRC-32; the valid slot with the higher
number counts, so a write torn by a power cut falls back to the previous commit. A file
of another size, or without a valid slot, is damaged.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

from kiltmq.broker.store.interface import StoreDamaged

__all__ = ["WATERMARK_NAME", "Mark", "Watermark", "read_mark"]

WATERMARK_NAME = "kiltmq.watermark"

_MAGIC = b"KILTWM01"
_SLOT = 512
_SIZE = 2 * _SLOT
_RECORD = struct.Struct(">8s16sQ")  # magic, store id, commit number
_CRC = struct.Struct(">I")


class Mark(NamedTuple):
    """What a watermark says: the store it belongs to and its last commit number."""

    store_id: bytes
    seq: int


def _slot(store_id: bytes, seq: int) -> bytes:
    record = _RECORD.pack(_MAGIC, store_id, seq)
    return (record + _CRC.pack(zlib.crc32(record))).ljust(_SLOT, b"\0")


def _parse(slot: bytes) -> Mark | None:
    record = slot[: _RECORD.size]
    (crc,) = _CRC.unpack_from(slot, _RECORD.size)
    if zlib.crc32(record) != crc:
        return None
    magic, store_id, seq = _RECORD.unpack(record)
    if magic != _MAGIC:
        return None
    return Mark(store_id, seq)


def read_mark(path: Path) -> Mark | None:
    """The watermark at ``path`` (None: there is none); :class:`StoreDamaged` if the file
    is damaged. Reads only."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreDamaged(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) != _SIZE:
        raise StoreDamaged(
            f"the commit watermark {path} is damaged ({len(data)} bytes, not {_SIZE})"
        )
    marks = [m for m in (_parse(data[:_SLOT]), _parse(data[_SLOT:])) if m is not None]
    if not marks:
        raise StoreDamaged(f"the commit watermark {path} is damaged (no valid record)")
    if len({m.store_id for m in marks}) > 1:
        raise StoreDamaged(f"the commit watermark {path} is damaged (two store ids)")
    return max(marks, key=lambda m: m.seq)


class Watermark:
    """The open watermark file of one store (written by the store's writer only)."""

    def __init__(self, path: Path, store_id: bytes) -> None:
        self.path = path
        self.store_id = store_id
        self._fd: int | None = None

    def open(self, seq: int) -> None:
        """Record commit ``seq``, creating the file (owner only, 0600) if there is none:
        whole, under a temporary name renamed into place, so that a kill never leaves a
        partial watermark behind. (A watermark of another store that committed nothing,
        which the checks let pass, is replaced the same way.)"""
        path = self.path
        try:
            mark = read_mark(path)
        except StoreDamaged:
            mark = None
        if mark is None or mark.store_id != self.store_id:
            new = path.with_name(path.name + ".new")
            fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, _slot(self.store_id, max(seq - 1, 0)) * 2)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(new, path)
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the new directory entry is durable too
            finally:
                os.close(dir_fd)
        fd = os.open(path, os.O_RDWR)
        try:
            os.fchmod(fd, 0o600)
            self._fd = fd
            self.advance(seq)
        except BaseException:
            self._fd = None
            os.close(fd)
            raise

    def advance(self, seq: int) -> None:
        """Record commit ``seq`` durably (write its slot, fdatasync). Raises OSError."""
        fd = self._fd
        if fd is None:
            return
        os.pwrite(fd, _slot(self.store_id, seq), (seq % 2) * _SLOT)
        os.fdatasync(fd)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
