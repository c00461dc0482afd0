"""Cancelling an order: the Saga, on RabbitMQ and on kiltmq's embedded broker.

The web store sends the workshop a cancel command; the workshop cancels an order it
has not started (``order.cancelled``) and billing compensates with a refund through
the payment gateway (``order.refunded``). Every step is idempotent: the command asked
for twice, delivered twice or sent again under another id refunds once. An
order the workshop has started is not cancelled.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from kiltstore import samples
from kiltstore.demo import Store
from kiltstore.services.workshop import CANCEL_TYPE, cancel_request
from kiltstore.topology import CANCEL, COMMANDS

from .conftest import eventually, get_json, post_form, status_path


async def web_state(http: aiohttp.ClientSession, store: Store, number: int, state: str) -> Any:
    status = await get_json(http, f"{store.urls['web store']}{status_path(store, number)}.json")
    return status if status["state"] == state else None


async def test_cancel_before_start_is_refunded_once(
    store: Store, http: aiohttp.ClientSession
) -> None:
    web = store.urls["web store"]
    await post_form(http, web + "/checkout", samples.WEB_FORM)
    await eventually(lambda: web_state(http, store, 1, "approved"), "web-1 approved")
    for _ in range(2):  # pressed twice
        assert await post_form(http, web + status_path(store, 1) + "/cancel", {}) == \
            status_path(store, 1)
    # The command delivered again, and once more under another id.
    bus = store.service("webstore").the_bus
    for message_id in ("web-1:cancel", "web-1:cancel-again"):
        await bus.publish(COMMANDS, CANCEL, cancel_request("web-1", "2026-01-01T00:00:00"),
                          message_id=message_id, content_type="application/json",
                          type=CANCEL_TYPE)
    refunded = await eventually(lambda: web_state(http, store, 1, "refunded"), "a refund")
    assert refunded["detail"]["refund_id"].startswith("re_")
    assert [h["state"] for h in refunded["history"]][-2:] == ["cancelled", "refunded"]
    job = store.service("workshop").db.query_one("SELECT * FROM jobs WHERE order_id='web-1'")
    assert job is not None and job["cancelled_at"]
    refunds = (await get_json(http, store.urls["payment gateway"] + "/refunds"))["refunds"]
    assert [(r["idempotency_key"], r["status"], r["requests"]) for r in refunds] == [
        ("refund-web-1", "refunded", 1)]
    assert store.service("billing").db.query("SELECT order_id FROM refunds")[0][0] == "web-1"

    async def mails() -> Any:
        data = await get_json(http, store.urls["mailbox"] + "/mails.json")
        subjects = sorted(m["subject"] for m in data["mails"] if m["order_id"] == "web-1")
        return subjects if len(subjects) == 3 else None

    subjects = await eventually(mails, "approved, cancelled and refund e-mails")
    assert subjects == ["Order web-1 cancelled", "Order web-1 confirmed: your kilt is on the loom",
                        "Refund for order web-1"]
    # Cancelled orders are not made, and not cancelled again.
    async with http.post(web + status_path(store, 1) + "/cancel",
                         allow_redirects=False) as response:
        assert response.status == 409
    jobs = await get_json(http, store.urls["workshop"] + "/jobs.json")
    assert jobs == {"todo": [], "done": []}
    async with http.post(store.urls["workshop"] + "/orders/web-1/finish",
                         allow_redirects=False) as response:
        assert response.status == 404


async def test_an_order_started_in_the_workshop_is_not_cancelled(
    store: Store, http: aiohttp.ClientSession
) -> None:
    web = store.urls["web store"]
    await post_form(http, web + "/checkout", samples.WEB_FORM)
    await eventually(lambda: web_state(http, store, 1, "approved"), "web-1 approved")

    async def in_workshop() -> Any:
        return (await get_json(http, store.urls["workshop"] + "/jobs.json"))["todo"]

    await eventually(in_workshop, "web-1 in the workshop")
    await post_form(http, store.urls["workshop"] + "/orders/web-1/start", {})
    # A cancellation that crossed the start on the way is refused by the workshop.
    await store.service("webstore").the_bus.publish(
        COMMANDS, CANCEL, cancel_request("web-1", "2026-01-01T00:00:00"),
        message_id="web-1:cancel", content_type="application/json", type=CANCEL_TYPE)

    async def refused() -> Any:
        return store.service("workshop").db.query_one(
            "SELECT outcome FROM cancellations WHERE order_id = 'web-1'")

    assert (await eventually(refused, "the workshop's answer"))[0] == "refused: already started"
    await eventually(lambda: web_state(http, store, 1, "started"), "web-1 started")
    async with http.post(web + status_path(store, 1) + "/cancel",
                         allow_redirects=False) as response:
        assert response.status == 409  # the store knows it started
    assert (await get_json(http, store.urls["payment gateway"] + "/refunds"))["refunds"] == []
    assert (await in_workshop()) == ["web-1"]
