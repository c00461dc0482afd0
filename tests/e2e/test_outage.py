"""The broker goes away and comes back: orders taken meanwhile are kept and go on.

The store runs on an embedded broker of its own, which is stopped and started again
on the same port. The web store still takes an order while the broker is away (saved
with its message in the outbox); once the broker is back, the client's connection
recovery re-declares the topology and resubscribes, the outbox relay publishes the
order, and it is approved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kiltmq.broker import Broker
from kiltstore import samples
from kiltstore.demo import Store

from .conftest import eventually, get_json, post_form, status_path

#: Client recovery backs off up to 10 s between attempts.
RECOVERY_WAIT = 40.0


@pytest.fixture
async def own_broker_store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(data_dir=tmp_path / "data", amqp_url=None) as store:
        yield store


async def test_orders_taken_while_the_broker_is_down_go_through_after(
    own_broker_store: Store, http: aiohttp.ClientSession
) -> None:
    store = own_broker_store
    port = store.broker.port
    await store.broker.stop()

    await post_form(http, store.urls["web store"] + "/checkout", samples.WEB_FORM)
    status = await get_json(http, store.urls["web store"] + status_path(store, 1) + ".json")
    assert status["state"] == "placed"

    store.broker = Broker(port=port)
    await store.broker.start()

    async def approved() -> Any:
        status = await get_json(http, store.urls["web store"] + status_path(store, 1) + ".json")
        return status["state"] == "approved"

    await eventually(approved, "the order to be approved after the outage", RECOVERY_WAIT)
    charges = (await get_json(http, store.urls["payment gateway"] + "/charges"))["charges"]
    assert [c["idempotency_key"] for c in charges] == ["web-1"]
