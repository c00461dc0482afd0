"""Failures on the way, on RabbitMQ and on kiltmq's embedded broker: a passing one is
retried with back-off, then given up on; a permanent one is given up on at once. Both
end in the Dead Letter Channel with the reason, and the order board's retry and
discard buttons work on them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import kiltmq
from kiltstore import samples
from kiltstore.demo import Store
from kiltstore.domain import OrderEvent, State
from kiltstore.translators import translate_web

from .conftest import Observer, eventually, get_json, post_form, status_path

#: Short back-off delays, so that a test waits milliseconds, not minutes.
DELAYS = (0.02, 0.05, 0.1)


@pytest.fixture
async def quick_store(
    amqp_url: str, prefix: str, tmp_path: Path, cleanup: None
) -> AsyncIterator[Store]:
    async with Store(
        data_dir=tmp_path / "data", amqp_url=amqp_url, prefix=prefix, poll_interval=0.2,
        retry_delays=DELAYS,
    ) as running:
        yield running


async def dead_letter_observer(amqp_url: str, store: Store) -> Observer:
    conn = await kiltmq.connect(amqp_url)
    ch = await conn.channel()
    ok = await ch.queue_declare("", exclusive=True)
    await ch.queue_bind(ok.queue, store.service("board").topology.exchange("dead-letters"), "")
    return Observer(conn, ok.queue)


async def dead_letters(http: aiohttp.ClientSession, store: Store) -> list[Any]:
    board = await get_json(http, store.urls["order board"] + "/orders.json")
    return list(board["dead_letters"])


async def press(http: aiohttp.ClientSession, store: Store, letter: int, button: str) -> Any:
    url = f"{store.urls['order board']}/dead-letters/{letter}/{button}"
    async with http.post(url, headers={"Accept": "application/json"}) as response:
        response.raise_for_status()
        return await response.json()


async def test_a_passing_failure_is_retried_with_back_off_then_dead_lettered(
    quick_store: Store, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    store = quick_store
    gateway = store.urls["payment gateway"]
    async with http.post(gateway + "/outage", json={"down": True}) as response:
        assert (await response.json()) == {"down": True}
    dead = await dead_letter_observer(amqp_url, store)
    try:
        await post_form(http, store.urls["web store"] + "/checkout", samples.WEB_FORM)
        (message,) = await dead.take(1)
    finally:
        await dead.conn.close()
    billing = store.service("billing").topology.queue("billing")
    assert message.properties.message_id == "web-1:valid"
    assert message.headers["x-dead-queue"] == billing
    assert message.headers["x-retry-count"] == len(DELAYS)
    assert message.headers["x-dead-permanent"] is False
    reason = message.headers["x-dead-reason"]
    assert reason.startswith(f"gave up after {len(DELAYS) + 1} attempts")
    assert "gateway answered HTTP 503" in reason
    # Each retry waited in its own delay queue and came back from there.
    deaths = {death["queue"]: death["count"] for death in message.headers["x-death"]}
    topology = store.service("billing").topology
    assert deaths == {topology.queue(f"retry-{n}"): 1 for n in range(1, len(DELAYS) + 1)}

    (letter,) = await eventually(lambda: dead_letters(http, store), "the dead letter on the board")
    assert letter["queue"] == billing and letter["attempts"] == len(DELAYS) + 1
    assert samples.APPROVED_CARD.replace(" ", "") not in json.dumps(letter)

    # The processor is back; the retry button sends the order on its way.
    async with http.post(gateway + "/outage", json={"down": False}):
        pass
    assert (await press(http, store, letter["id"], "retry"))["dead_letters"] == []

    async def approved() -> Any:
        status = await get_json(http, store.urls["web store"] + status_path(store, 1) + ".json")
        return status if status["state"] == State.APPROVED else None

    await eventually(approved, "web-1 approved after the retry")
    charges = (await get_json(http, gateway + "/charges"))["charges"]
    assert [(c["idempotency_key"], c["status"]) for c in charges] == [("web-1", "approved")]


async def test_an_smtp_refusal_is_dead_lettered_at_once_and_can_be_discarded(
    quick_store: Store, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    """A mail the SMTP server refuses for good (here ``500 Line too long``, for a header
    that cannot be folded) is not retried: the event is dead-lettered with the server's
    answer."""
    store = quick_store
    order = translate_web(samples.web_body(1))
    order = type(order)(**{**order.__dict__, "order_id": "web-" + "9" * 2000})
    event = OrderEvent(state=State.APPROVED, order=order)
    dead = await dead_letter_observer(amqp_url, store)
    try:
        await store.service("webstore").the_bus.publish(
            "orders", "order.approved.crm", event.to_json(), message_id="long-order:approved",
            content_type="application/json", type="kiltstore.order-event.v1",
        )
        messages = await dead.take(1)
    finally:
        await dead.conn.close()
    (message,) = messages
    assert message.headers["x-dead-queue"] == store.service("mailer").topology.queue("mailer")
    assert message.headers["x-dead-permanent"] is True
    assert "x-retry-count" not in message.headers
    assert "the SMTP server refused the mail: 500" in message.headers["x-dead-reason"]

    (letter,) = await eventually(lambda: dead_letters(http, store), "the dead letter on the board")
    assert letter["permanent"] and letter["attempts"] == 1
    # Retried, it fails again and comes back as a new dead letter; discarded, it's gone.
    assert (await press(http, store, letter["id"], "retry"))["dead_letters"] == []

    async def back() -> Any:
        letters = await dead_letters(http, store)
        return letters if letters and letters[0]["id"] != letter["id"] else None

    (again,) = await eventually(back, "the retried letter back on the board")
    assert again["message_id"] == "long-order:approved"
    assert (await press(http, store, again["id"], "discard"))["dead_letters"] == []
    assert await dead_letters(http, store) == []
    async with http.post(f"{store.urls['order board']}/dead-letters/{again['id']}/discard") as r:
        assert r.status == 404


async def _mail_refused_recipient(
    store: Store, amqp_url: str, reply: str
) -> tuple[Any, OrderEvent]:
    """Publish an approved order for a customer whose mail server answers ``reply`` to
    ``RCPT TO``; return the dead letter the mailer makes of it."""
    order = translate_web(samples.web_body(1))
    address = "nobody@lallybroch.example"
    order = replace(order, order_id="crm-77", customer=replace(order.customer, email=address))
    event = OrderEvent(state=State.APPROVED, order=order)
    store.service("mailbox").refusals[address] = reply
    dead = await dead_letter_observer(amqp_url, store)
    try:
        await store.service("webstore").the_bus.publish(
            "orders", "order.approved.crm", event.to_json(), message_id="crm-77:approved",
            content_type="application/json", type="kiltstore.order-event.v1",
        )
        (message,) = await dead.take(1)
    finally:
        await dead.conn.close()
    assert message.headers["x-dead-queue"] == store.service("mailer").topology.queue("mailer")
    assert store.service("mailer").db.query("SELECT * FROM sent") == []
    assert store.service("mailbox").mails() == []
    return message, event


async def test_a_recipient_refused_for_good_is_dead_lettered_at_once(
    quick_store: Store, amqp_url: str
) -> None:
    """``550`` to ``RCPT TO`` (no such mailbox): permanent, not retried, not forgotten."""
    message, _event = await _mail_refused_recipient(
        quick_store, amqp_url, "550 5.1.1 no such mailbox here")
    assert message.headers["x-dead-permanent"] is True
    assert "x-retry-count" not in message.headers
    assert message.headers["x-dead-reason"] == (
        "the SMTP server refused the recipient nobody@lallybroch.example: "
        "550 5.1.1 no such mailbox here")


async def test_a_recipient_deferred_is_retried_then_dead_lettered(
    quick_store: Store, amqp_url: str
) -> None:
    """``450`` to ``RCPT TO`` (mailbox busy): retried with back-off up to the limit."""
    message, _event = await _mail_refused_recipient(
        quick_store, amqp_url, "450 4.2.1 mailbox busy, try later")
    assert message.headers["x-dead-permanent"] is False
    assert message.headers["x-retry-count"] == len(DELAYS)
    reason = message.headers["x-dead-reason"]
    assert reason.startswith(f"gave up after {len(DELAYS) + 1} attempts")
    assert "450 4.2.1 mailbox busy, try later" in reason

