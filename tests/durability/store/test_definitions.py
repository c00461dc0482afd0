"""SQLiteStore definitions: vhosts, users, permissions, exchanges, queues and bindings
written and given back."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from kiltmq.broker.auth import User, hash_password
from kiltmq.broker.store import SQLiteStore

from .conftest import committed, reopen

pytestmark = pytest.mark.timeout(60)


# -- definitions ------------------------------------------------------------------------


async def test_definitions_vhosts_users_permissions_survive(
    store: SQLiteStore, tmp_path: Path
) -> None:
    arguments = {
        "x-message-ttl": 60000,
        "x-dead-letter-exchange": "dlx",
        "flag": True,
        "big": 2**40,
        "ratio": 0.5,
        "raw": b"\x00\xff",
        "nested": {"a": [1, "two", None]},
        "price": Decimal("12.50"),
        "at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    }
    store.vhost_added("/")
    store.vhost_added("shop")
    user = User("shop", hash_password("kilts"), frozenset({"administrator"}))
    store.user_added(user)
    store.permission_set("shop", "shop", "^orders", ".*", "")
    store.definition_added(
        "shop",
        "exchange",
        {"name": "orders", "type": "topic", "durable": True, "auto_delete": False,
         "internal": False, "arguments": {"alternate-exchange": "unrouted"}},
    )
    store.definition_added(
        "shop",
        "exchange",
        {"name": "audit", "type": "fanout", "durable": True, "auto_delete": True,
         "internal": True, "arguments": {}},
    )
    store.definition_added(
        "shop", "queue", {"name": "new", "durable": True, "auto_delete": False,
                          "arguments": arguments},
    )
    binding = {"source": "orders", "destination": "new", "destination_type": "queue",
               "routing_key": "order.*", "arguments": {"b": 1, "a": "x"}}
    store.definition_added("shop", "binding", binding)
    store.definition_added(
        "shop", "binding", {"source": "orders", "destination": "audit",
                            "destination_type": "exchange", "routing_key": "#",
                            "arguments": {}},
    )
    await committed(store)
    store.close()

    again, recovered = reopen(tmp_path)
    try:
        assert recovered.vhosts == ["/", "shop"]
        assert recovered.users == [user]
        assert recovered.permissions == [("shop", "shop", "^orders", ".*", "")]
        kinds = [kind for _v, kind, _d in recovered.definitions]
        assert kinds == ["exchange", "exchange", "queue", "binding", "binding"]
        queue = recovered.definitions[2][2]
        assert queue["name"] == "new"
        assert queue["arguments"] == arguments
        assert recovered.definitions[3][2] == binding
        assert recovered.definitions[0][2]["arguments"] == {"alternate-exchange": "unrouted"}
        # the same binding with its arguments in another order is the same definition
        again.definition_removed("shop", "binding", {**binding, "arguments": {"a": "x", "b": 1}})
        again.definition_removed("shop", "exchange", {"name": "audit"})
        again.user_removed("shop")
        await committed(again)
    finally:
        again.close()
    third, recovered = reopen(tmp_path)
    third.close()
    assert [d["name"] if k != "binding" else d["destination"]
            for _v, k, d in recovered.definitions] == ["orders", "new", "audit"]
    assert recovered.users == []
    assert recovered.permissions == []
