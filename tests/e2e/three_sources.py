"""Orders from the store's three sources, and the checks that each was handled once:
approved, charged once, one confirmation e-mail (used by the quorum-queue test here and
by the end-to-end test on the RabbitMQ cluster)."""

from __future__ import annotations

import xmlrpc.client
from collections import Counter
from typing import Any

import aiohttp
from aiosmtpd.smtp import Envelope

from kiltstore import samples
from kiltstore.demo import Store
from kiltstore.storage import Database

from .conftest import eventually, get_json, post_form, run_in_thread

#: Subject words of the e-mail sent when an order is approved.
APPROVED_MAIL = "on the loom"


def crm_enter_order(rpc_url: str) -> int:
    """What the sales rep's tools do: enter a customer and an order over XML-RPC."""
    with xmlrpc.client.ServerProxy(rpc_url, allow_none=True) as crm:
        customer_id = crm.crm.add_customer(samples.CRM_CUSTOMER)
        card = samples.APPROVED_CARD
        order_id: Any = crm.crm.add_order(customer_id, [samples.CRM_ITEM], card, "")
        return int(order_id)


async def place_one_of_each(http: aiohttp.ClientSession, store: Store) -> list[str]:
    """A web order, a phone slip and a CRM order; their order ids (web and phone ones
    are numbered by the store: ids of the whole run are checked by :func:`check_once`)."""
    await post_form(http, store.urls["web store"] + "/checkout", samples.WEB_FORM)
    await post_form(http, store.urls["phone orders"] + "/slips", samples.PHONE_FORM)
    crm_id = await run_in_thread(crm_enter_order, store.urls["CRM XML-RPC"])
    return [f"crm-{crm_id}"]


def count_smtp_deliveries(store: Store) -> Counter[str]:
    """Count every message the mailbox's SMTP server receives, by Message-ID (the
    mailbox itself keeps a repeated one once, which would hide a second sending)."""
    mailbox = store.service("mailbox")
    received: Counter[str] = Counter()
    keep = mailbox.receive

    def receive(envelope: Envelope) -> None:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        for line in data.split(b"\n"):
            if line.lower().startswith(b"message-id:"):
                received[line.split(b":", 1)[1].strip().decode()] += 1
        keep(envelope)

    mailbox.receive = receive
    return received


async def check_once(
    http: aiohttp.ClientSession,
    store: Store,
    *,
    web: int,
    phone: int,
    crm: list[str],
    smtp: Counter[str],
    timeout: float,
) -> None:
    """Every order placed is approved once, charged once, mailed once; none is lost."""
    expected = sorted(
        [f"web-{n}" for n in range(1, web + 1)]
        + [f"phone-{n}" for n in range(1, phone + 1)]
        + crm
    )

    async def all_approved() -> Any:
        todo = (await get_json(http, store.urls["workshop"] + "/jobs.json"))["todo"]
        return todo if len(todo) >= len(expected) else None

    todo = await eventually(all_approved, f"{len(expected)} orders approved", timeout)
    assert sorted(todo) == expected

    # Charged once each: one charge per idempotency key at the gateway, one row in
    # billing's database per order.
    charges = (await get_json(http, store.urls["payment gateway"] + "/charges"))["charges"]
    assert sorted(c["idempotency_key"] for c in charges) == expected
    assert {c["status"] for c in charges} == {"approved"}
    billing_db = Database(store.data_dir / "billing.sqlite3")
    try:
        rows = billing_db.query("SELECT order_id FROM charges ORDER BY order_id")
        assert sorted(row["order_id"] for row in rows) == expected
    finally:
        billing_db.close()

    async def approved_mails() -> Any:
        data = await get_json(http, store.urls["mailbox"] + "/mails.json?to=@")
        mails = [m for m in data["mails"] if APPROVED_MAIL in m["subject"]]
        return mails if len(mails) >= len(expected) else None

    mails = await eventually(approved_mails, "one confirmation e-mail per order", timeout)
    assert sorted(m["order_id"] for m in mails) == expected
    # Each e-mail went over SMTP once.
    repeated = {message_id: n for message_id, n in smtp.items() if n > 1}
    assert not repeated, f"e-mails sent more than once: {repeated}"
    assert sum(smtp.values()) >= len(expected)
