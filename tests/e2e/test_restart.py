"""The demo stops and starts again: orders in flight carry on.

The demo's embedded broker keeps its durable queues and persistent messages in the data
directory (``<data_dir>/broker``). An order is validated while billing is not running,
so it waits in billing's queue in the broker; the whole store stops and starts again,
and billing, now running, finds the order and approves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from kiltstore import samples
from kiltstore.demo import Store

from .conftest import eventually, get_json, post_form, status_path


async def test_orders_in_flight_survive_a_restart_of_the_demo(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    data = tmp_path / "data"
    async with Store(data_dir=data, amqp_url=None, exclude=frozenset({"billing"})) as store:
        assert store.persistent_broker  # the default
        await post_form(http, store.urls["web store"] + "/checkout", samples.WEB_FORM)

        async def waiting_for_billing() -> Any:
            status = await get_json(http, store.urls["web store"] + status_path(store, 1) + ".json")
            queue = store.broker.vhosts["/"].queues[store.prefix + ".billing"]
            return status["state"] == "valid" and len(queue.ready) == 1

        await eventually(waiting_for_billing, "the order waiting in billing's queue")
    assert (data / "broker" / "kiltmq.db").exists()

    async with Store(data_dir=data, amqp_url=None) as store:

        async def approved() -> Any:
            status = await get_json(http, store.urls["web store"] + status_path(store, 1) + ".json")
            return status["state"] == "approved"

        await eventually(approved, "the order approved after the restart")
        charges = (await get_json(http, store.urls["payment gateway"] + "/charges"))["charges"]
        assert [c["idempotency_key"] for c in charges] == ["web-1"]
