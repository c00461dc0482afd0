"""Topic permissions in the SQLite store: kept per user, vhost and exchange, removed
with their user or vhost, and a store of format 3 (before topic permissions) upgraded
in place."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from kiltmq.broker import Broker
from kiltmq.broker.admin import Admin
from kiltmq.broker.auth import User, hash_password
from kiltmq.broker.store import DB_NAME, SCHEMA_VERSION, SQLiteStore

from ..old_formats import format_version, write_store
from .conftest import committed, reopen


def _stored(path: Path) -> list[tuple[str, str, str, str, str]]:
    with contextlib.closing(sqlite3.connect(path / DB_NAME)) as db:
        return sorted(db.execute("SELECT user, vhost, exchange, write, read"
                                 " FROM topic_permissions"))


async def test_topic_permissions_are_kept_and_removed(
    store: SQLiteStore, tmp_path: Path
) -> None:
    store.vhost_added("/")
    store.vhost_added("shop")
    for name in ("sales", "clerk"):
        store.user_added(User(name, hash_password("pw"), frozenset()))
    store.topic_permission_set("sales", "/", "amq.topic", "^orders\\.", "")
    store.topic_permission_set("sales", "/", "events", ".*", "^kilt")
    store.topic_permission_set("sales", "/", "amq.topic", "^order\\.", "^r")  # replaced
    store.topic_permission_set("sales", "shop", "amq.topic", "a", "b")
    store.topic_permission_set("clerk", "/", "amq.topic", "c", "d")
    store.topic_permission_set("clerk", "shop", "x", "e", "f")
    await committed(store)
    assert _stored(tmp_path) == [
        ("clerk", "/", "amq.topic", "c", "d"),
        ("clerk", "shop", "x", "e", "f"),
        ("sales", "/", "amq.topic", "^order\\.", "^r"),
        ("sales", "/", "events", ".*", "^kilt"),
        ("sales", "shop", "amq.topic", "a", "b"),
    ]
    store.topic_permission_removed("sales", "/", "events")
    store.topic_permission_removed("sales", "shop", None)
    store.vhost_removed("shop")
    await committed(store)
    assert _stored(tmp_path) == [
        ("clerk", "/", "amq.topic", "c", "d"),
        ("sales", "/", "amq.topic", "^order\\.", "^r"),
    ]
    store.user_removed("sales")
    await committed(store)
    store.close()
    again, recovered = reopen(tmp_path)
    again.close()
    assert recovered.topic_permissions == [("clerk", "/", "amq.topic", "c", "d")]


async def test_a_format_3_store_is_upgraded_and_keeps_topic_permissions_after(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    write_store(data, 3, rows=(
        "INSERT INTO users VALUES ('sales', 'x', '[\"administrator\"]', NULL);"
        " INSERT INTO permissions VALUES ('sales', '/', '.*', '.*', '.*');"
    ))
    assert SCHEMA_VERSION >= 4
    store, recovered = reopen(data)
    try:
        assert format_version(data) == SCHEMA_VERSION
        assert [u.name for u in recovered.users] == ["sales"]
        assert recovered.permissions == [("sales", "/", ".*", ".*", ".*")]
        assert recovered.topic_permissions == []
        store.topic_permission_set("sales", "/", "amq.topic", "^a", "^b")
        await committed(store)
    finally:
        store.close()
    again, recovered = reopen(data)
    again.close()
    assert recovered.topic_permissions == [("sales", "/", "amq.topic", "^a", "^b")]


async def test_a_restarted_broker_has_its_topic_permissions(tmp_path: Path) -> None:
    async with Broker(port=0, data_dir=tmp_path) as broker:
        admin = Admin(broker)
        admin.add_user("sales", "pw")
        admin.add_vhost("shop", users=["sales"])
        assert admin.set_topic_permissions("sales", "shop", "amq.topic", "^o\\.{username}", "")
        assert not admin.set_topic_permissions("sales", "shop", "events", "w", "r")
        admin.add_user("gone", "pw")
        admin.set_topic_permissions("gone", "shop", "amq.topic", "", "")
        admin.delete_user("gone")
        await admin.committed()
    async with Broker(port=0, data_dir=tmp_path) as broker:
        admin = Admin(broker)
        assert [(t.user, t.exchange, t.write, t.read) for t in admin.topic_permissions()] == [
            ("sales", "amq.topic", "^o\\.{username}", ""),
            ("sales", "events", "w", "r"),
        ]
        topics = broker.auth.topic_permission("sales", "shop")
        assert topics is not None
        assert topics["amq.topic"].allows("write", "o.sales.1")
        assert not topics["amq.topic"].allows("write", "o.clerk.1")
        admin.delete_vhost("shop")
        await admin.committed()
    async with Broker(port=0, data_dir=tmp_path) as broker:
        assert Admin(broker).topic_permissions() == []
