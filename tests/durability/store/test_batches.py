"""SQLiteStore batches: the rows of a group commit go in a few statements, and the
publisher confirms waiting for a commit are told per channel, a batch at a time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from kiltmq.broker.store import SQLiteStore

from .conftest import QUEUE, committed, persistent, reopen, rows

pytestmark = pytest.mark.timeout(60)


class Waiter:
    """A confirm waiter (a channel, to the store) that records what it is told."""

    def __init__(self) -> None:
        self.acked: list[list[int]] = []
        self.nacked: list[list[int]] = []

    def commit_confirmed(self, seqs: list[int]) -> None:
        self.acked.append(list(seqs))

    def commit_nacked(self, seqs: list[int]) -> None:
        self.nacked.append(list(seqs))


def _trace_messages(store: SQLiteStore) -> list[str]:
    """The statements on the messages table the writer runs from now on (one entry per
    statement run, as sqlite3 reports them)."""
    statements: list[str] = []

    def traced(sql: str) -> None:
        if "messages" in sql and sql.lstrip().startswith(("INSERT", "DELETE")):
            statements.append(sql.split()[0])

    assert store._db is not None
    store._db.set_trace_callback(traced)
    return statements


async def test_a_batch_of_rows_is_written_in_a_few_statements(
    store: SQLiteStore, tmp_path: Path
) -> None:
    store.definition_added("/", "queue", QUEUE)
    await committed(store)
    statements = _trace_messages(store)
    messages = [persistent(b"m%d" % i, headers={"i": i}) for i in range(300)]
    deadline = time.time() + 3600
    for i, message in enumerate(messages):
        store.message_enqueued("/", "q", message)
        if i % 7 == 0:
            store.message_expires("/", "q", message, deadline + i)
    await committed(store)
    # 300 rows = 256 + 32 + 8 + 4: one statement per size, not one per row
    assert statements == ["INSERT"] * 4
    del statements[:]
    for message in messages[:200]:  # consecutive rows: one statement
        store.message_removed("/", "q", message)
    for message in messages[201:210:2]:  # rows apart: one run each
        store.message_removed("/", "q", message)
    await committed(store)
    assert statements == ["DELETE"] * 6
    store.close()

    kept = [200, 202, 204, 206, 208, *range(210, 300)]
    assert [body for _q, body in rows(tmp_path)] == [b"m%d" % i for i in kept]
    again, recovered = reopen(tmp_path)
    try:
        loaded = again.load("/", "q", [s.message for s in recovered.messages])
        assert [m.body for m in loaded] == [b"m%d" % i for i in kept]
        assert [m.properties.headers for m in loaded] == [{"i": i} for i in kept]
        expiring = {
            s.message.properties.headers["i"]: s.expires_at  # type: ignore[index]
            for s in recovered.messages
            if s.expires_at is not None
        }
        wanted = {i: deadline + i for i in kept if i % 7 == 0}
        assert expiring == pytest.approx(wanted, abs=0.002)
    finally:
        again.close()


async def test_confirms_of_one_batch_are_told_together(store: SQLiteStore) -> None:
    store.definition_added("/", "queue", QUEUE)
    await committed(store)
    first, second = Waiter(), Waiter()
    for seq in range(1, 6):
        store.message_enqueued("/", "q", persistent(b"m%d" % seq))
        store.confirm_after_commit(first if seq != 3 else second, seq)
    assert first.acked == [] and second.acked == []  # they wait for the commit
    await committed(store)
    assert first.acked == [[1, 2, 4, 5]]
    assert second.acked == [[3]]
    assert first.nacked == second.nacked == []


async def test_a_confirm_reported_after_its_batch_went_waits_for_the_next(
    store: SQLiteStore,
) -> None:
    store.definition_added("/", "queue", QUEUE)
    await committed(store)
    waiter = Waiter()
    store.message_enqueued("/", "q", persistent(b"one"))
    store.confirm_after_commit(waiter, 1)
    await asyncio.sleep(0)  # the batch goes to the writer
    store.message_enqueued("/", "q", persistent(b"two"))
    store.confirm_after_commit(waiter, 2)
    await committed(store)
    assert waiter.acked == [[1], [2]]


async def test_a_confirm_with_nothing_pending_is_told_at_once(store: SQLiteStore) -> None:
    waiter = Waiter()
    store.confirm_after_commit(waiter, 7)
    assert waiter.acked == [[7]]


async def test_confirms_of_the_last_batch_are_told_at_close(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    store.open()
    store.definition_added("/", "queue", QUEUE)
    waiter = Waiter()
    store.message_enqueued("/", "q", persistent(b"last"))
    store.confirm_after_commit(waiter, 1)
    store.close()
    assert waiter.acked == [[1]]
    assert [body for _q, body in rows(tmp_path)] == [b"last"]
