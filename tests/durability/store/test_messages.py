"""SQLiteStore messages: what is written, what comes back and in what order, and what the
store keeps track of while messages are held."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kiltmq.broker.message import Message
from kiltmq.broker.store import DB_NAME, KEY_BASE, PagedMessage, SQLiteStore

from .conftest import QUEUE, committed, persistent, reopen, rows

pytestmark = pytest.mark.timeout(60)


# -- messages ---------------------------------------------------------------------------


async def test_messages_come_back_in_queue_order_without_the_removed_ones(
    store: SQLiteStore, tmp_path: Path
) -> None:
    store.definition_added("/", "queue", QUEUE)
    messages = [persistent(b"m%d" % i, headers={"i": i}) for i in range(10)]
    for message in messages:
        store.message_enqueued("/", "q", message)
    await committed(store)
    for message in messages[:3]:
        store.message_removed("/", "q", message)
    store.queue_purged("/", "q", [messages[5], messages[7]])
    await committed(store)
    store.close()

    again, recovered = reopen(tmp_path)
    try:
        assert [s.queue for s in recovered.messages] == ["q"] * 5
        assert all(type(s.message) is PagedMessage for s in recovered.messages)
        assert not any(s.redelivered for s in recovered.messages)
        loaded = again.load("/", "q", [s.message for s in recovered.messages])
        assert [m.body for m in loaded] == [b"m3", b"m4", b"m6", b"m8", b"m9"]
        assert [m.properties.headers for m in loaded] == [{"i": i} for i in (3, 4, 6, 8, 9)]
        assert all(m.persistent and m.routing_key == "q" for m in loaded)
        # a stand-in still knows its properties (priority queues need them at recovery)
        assert recovered.messages[0].message.properties.headers == {"i": 3}
        # and the recovered messages can be removed in turn
        again.message_removed("/", "q", loaded[0])
        await committed(again)
    finally:
        again.close()
    assert [body for _q, body in rows(tmp_path)] == [b"m4", b"m6", b"m8", b"m9"]


async def test_a_message_in_two_durable_queues_is_kept_per_queue(
    store: SQLiteStore, tmp_path: Path
) -> None:
    store.definition_added("/", "queue", QUEUE)
    store.definition_added("/", "queue", {**QUEUE, "name": "r"})
    first, shared, last = persistent(b"first"), persistent(b"shared"), persistent(b"last")
    store.message_enqueued("/", "q", first)
    store.message_enqueued("/", "q", shared)
    store.message_enqueued("/", "r", shared)
    store.message_enqueued("/", "r", last)
    await committed(store)
    store.message_removed("/", "q", shared)
    await committed(store)
    store.close()

    again, recovered = reopen(tmp_path)
    try:
        by_queue: dict[str, list[bytes]] = {}
        for stored in recovered.messages:
            (loaded,) = again.load(stored.vhost, stored.queue, [stored.message])
            by_queue.setdefault(stored.queue, []).append(loaded.body)
        assert by_queue == {"q": [b"first"], "r": [b"shared", b"last"]}
        # removing the shared message from its second queue finds the right row
        r_shared = next(s.message for s in recovered.messages if s.queue == "r")
        again.message_removed("/", "r", r_shared)
        await committed(again)
    finally:
        again.close()
    assert [body for _q, body in rows(tmp_path)] == [b"first", b"last"]


async def test_message_removed_before_its_batch_is_written_never_reaches_the_disk(
    store: SQLiteStore, tmp_path: Path
) -> None:
    store.definition_added("/", "queue", QUEUE)
    gone, kept = persistent(b"gone"), persistent(b"kept")
    store.message_enqueued("/", "q", gone)
    store.message_enqueued("/", "q", kept)
    store.message_removed("/", "q", gone)
    confirmed: list[str] = []
    store.after_commit(lambda: confirmed.append("both"))
    assert confirmed == []  # the confirm waits for the commit
    await committed(store)
    assert confirmed == ["both"]
    assert [body for _q, body in rows(tmp_path)] == [b"kept"]


async def test_after_commit_with_nothing_pending_runs_at_once(store: SQLiteStore) -> None:
    ran: list[int] = []
    store.after_commit(lambda: ran.append(1))
    assert ran == [1]


async def test_deleted_queue_rows_are_dropped_at_the_next_start(
    store: SQLiteStore, tmp_path: Path
) -> None:
    store.definition_added("/", "queue", QUEUE)
    store.definition_added("/", "queue", {**QUEUE, "name": "keep"})
    for i in range(3):
        store.message_enqueued("/", "q", persistent(b"q%d" % i))
    store.message_enqueued("/", "keep", persistent(b"keep"))
    await committed(store)
    store.definition_removed("/", "queue", QUEUE)
    store.definition_added("/", "queue", QUEUE)  # a new queue of the same name
    store.message_enqueued("/", "q", persistent(b"new"))
    await committed(store)
    store.close()
    again, recovered = reopen(tmp_path)
    try:
        got = {
            s.queue: again.load(s.vhost, s.queue, [s.message])[0].body
            for s in recovered.messages
        }
    finally:
        again.close()
    assert got == {"keep": b"keep", "q": b"new"}
    assert sorted(body for _q, body in rows(tmp_path)) == [b"keep", b"new"]


async def test_paged_message_is_read_back_before_and_after_its_commit(
    store: SQLiteStore,
) -> None:
    store.definition_added("/", "queue", QUEUE)
    message = persistent(b"x" * 1000, content_type="text/plain")
    published_id = message.id
    store.message_enqueued("/", "q", message)
    stub = store.page_out("/", "q", message)
    assert type(stub) is PagedMessage and stub.id >= KEY_BASE
    assert message.id == published_id < KEY_BASE  # the message itself is not changed
    assert stub.size == 1000 and stub.persistent
    with pytest.raises(AttributeError):
        _ = stub.body
    (pending,) = store.load("/", "q", [stub])
    assert pending.body == message.body
    await committed(store)
    del message, pending
    (loaded,) = store.load("/", "q", [stub])
    assert loaded.body == b"x" * 1000
    assert loaded.properties.content_type == "text/plain"
    assert loaded.id == stub.id


def tracked(store: SQLiteStore) -> int:
    """How many published messages the store keeps a row position for."""
    return sum(len(known.positions) for known in store._queues.values())


def keys(path: Path) -> list[tuple[int, int]]:
    """(pos - first pos, key - first pos) of every message row."""
    with contextlib.closing(sqlite3.connect(path / DB_NAME)) as db, db:
        found = list(db.execute("SELECT pos, key FROM messages ORDER BY pos"))
    base = found[0][0] if found else 0
    return [(pos - base, key - base) for pos, key in found]


def fields(message: Message) -> tuple[Any, ...]:
    return tuple(getattr(message, name) for name in Message.__slots__)


async def test_the_store_never_changes_a_message(store: SQLiteStore) -> None:
    store.definition_added("/", "queue", QUEUE)
    store.definition_added("/", "queue", {**QUEUE, "name": "r"})
    messages = [persistent(b"m%d" % i, expiration="60000") for i in range(4)]
    before = [fields(m) for m in messages]
    for message in messages:
        for queue in ("q", "r"):
            store.message_enqueued("/", queue, message)
            store.message_expires("/", queue, message, 4_000_000_000.0)
    store.page_out("/", "r", messages[3])
    await committed(store)
    store.mark_redelivered("/", "q", messages[:2])
    store.message_removed("/", "q", messages[0])
    store.queue_purged("/", "r", messages[:3])
    await committed(store)
    assert [fields(m) for m in messages] == before


async def test_a_message_in_several_queues_has_one_key_for_its_rows(
    store: SQLiteStore, tmp_path: Path
) -> None:
    store.definition_added("/", "queue", QUEUE)
    store.definition_added("/", "queue", {**QUEUE, "name": "r"})
    shared, alone = persistent(b"shared"), persistent(b"alone")
    store.message_enqueued("/", "q", shared)
    store.message_enqueued("/", "r", shared)
    store.message_enqueued("/", "q", alone)
    await committed(store)
    assert keys(tmp_path) == [(0, 0), (1, 0), (2, 2)]


async def test_the_store_forgets_messages_that_left(store: SQLiteStore) -> None:
    """No per-message memory stays behind: removed, purged, paged out, or gone with
    their queue or vhost."""
    store.vhost_added("v")
    for vhost in ("/", "v"):
        store.definition_added(vhost, "queue", QUEUE)
        store.definition_added(vhost, "queue", {**QUEUE, "name": "r"})
    messages = [persistent(b"m%d" % i) for i in range(12)]
    for message in messages:
        for vhost in ("/", "v"):
            store.message_enqueued(vhost, "q", message)
            store.message_enqueued(vhost, "r", message)
    assert tracked(store) == 48
    await committed(store)
    for message in messages[:4]:
        store.message_removed("/", "q", message)
    store.queue_purged("/", "q", messages[4:])
    stubs = [store.page_out("/", "r", message) for message in messages]
    assert tracked(store) == 24
    for stub in stubs:
        store.message_removed("/", "r", stub)
    store.definition_removed("v", "queue", QUEUE)
    assert tracked(store) == 12
    store.vhost_removed("v")
    assert tracked(store) == 0
    await committed(store)


async def test_a_message_read_back_before_its_commit_is_removed_from_the_store(
    store: SQLiteStore, tmp_path: Path
) -> None:
    store.definition_added("/", "queue", QUEUE)
    early, late = persistent(b"early"), persistent(b"late")
    store.message_enqueued("/", "q", early)
    stub = store.page_out("/", "q", early)
    (loaded,) = store.load("/", "q", [stub])  # from the batch, not yet written
    assert loaded.body == b"early" and loaded.id == stub.id and loaded is not early
    store.message_removed("/", "q", loaded)
    assert store.rows_skipped == 1
    store.message_enqueued("/", "q", late)
    stub = store.page_out("/", "q", late)
    await committed(store)
    (loaded,) = store.load("/", "q", [stub])  # from the disk
    store.mark_redelivered("/", "q", [loaded])
    await committed(store)
    with contextlib.closing(sqlite3.connect(tmp_path / DB_NAME)) as db, db:
        assert list(db.execute("SELECT body, delivered FROM messages")) == [(b"late", 1)]
    store.message_removed("/", "q", loaded)
    await committed(store)
    assert rows(tmp_path) == []


async def test_a_store_closed_and_opened_again_still_knows_the_messages_held(
    tmp_path: Path,
) -> None:
    """A broker stopped and started again keeps its messages in memory."""
    store = SQLiteStore(tmp_path)
    store.open()
    store.definition_added("/", "queue", QUEUE)
    messages = [persistent(b"m%d" % i) for i in range(3)]
    for message in messages:
        store.message_enqueued("/", "q", message)
    store.close()
    store.open()
    try:
        assert len(store.recover().messages) == 3
        store.message_removed("/", "q", messages[1])
        store.mark_redelivered("/", "q", [messages[2]])
        await committed(store)
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / DB_NAME)) as db, db:
        assert list(db.execute("SELECT body, delivered FROM messages")) == [
            (b"m0", 0),
            (b"m2", 1),
        ]


async def test_clean_shutdown_keeps_exactly_the_delivered_flags(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    store.open()
    store.definition_added("/", "queue", QUEUE)
    messages = [persistent(b"%d" % i) for i in range(4)]
    for message in messages:
        store.message_enqueued("/", "q", message)
    store.mark_redelivered("/", "q", messages[:2])
    store.close()
    again, recovered = reopen(tmp_path)
    again.close()
    assert [s.redelivered for s in recovered.messages] == [True, True, False, False]


def test_after_a_crash_every_recovered_message_is_redelivered(tmp_path: Path) -> None:
    """A process that dies without closing the store (os._exit, as kill -9 would)."""
    script = textwrap.dedent(
        f"""
        import asyncio, os
        from kiltmq.broker.message import Message
        from kiltmq.broker.store import SQLiteStore
        from kiltmq.protocol.spec import BasicProperties

        async def main():
            store = SQLiteStore({str(tmp_path)!r})
            store.open()
            store.definition_added("/", "queue", {QUEUE!r})
            for i in range(3):
                store.message_enqueued("/", "q", Message.build(
                    "", "q", b"%d" % i, BasicProperties(delivery_mode=2)))
            done = asyncio.Event()
            store.after_commit(done.set)
            await done.wait()
            os._exit(0)

        asyncio.run(main())
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    store, recovered = reopen(tmp_path)  # the dead process's lock is gone with it
    try:
        assert [s.redelivered for s in recovered.messages] == [True, True, True]
        bodies = [store.load("/", "q", [s.message])[0].body for s in recovered.messages]
        assert bodies == [b"0", b"1", b"2"]
    finally:
        store.close()
