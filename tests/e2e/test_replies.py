"""The Return Address, on RabbitMQ and on kiltmq's embedded broker: the phone form and
the CRM learn what became of each order they sent (accepted, with its order id, or
refused, with the reasons; then its payment approved, or declined with the reason),
and what the store would throw away is refused at the source, before anything is
sent."""

from __future__ import annotations

import json
import xmlrpc.client
from typing import Any

import aiohttp

import kiltmq
from kiltstore import samples
from kiltstore.demo import Store
from kiltstore.topology import INTAKE
from kiltstore.translators import PHONE_TYPE

from .conftest import eventually, get_json, post_form, run_in_thread


async def slips(http: aiohttp.ClientSession, store: Store) -> list[Any]:
    return list((await get_json(http, store.urls["phone orders"] + "/slips.json"))["slips"])


async def slip_answered(
    http: aiohttp.ClientSession, store: Store, slip: int, final: tuple[str, ...] = ("refused",
                                                                                 "approved",
                                                                                 "declined")
) -> Any:
    for entry in await slips(http, store):
        if entry["id"] == slip and entry["status"] in final:
            return entry
    return None


async def test_the_phone_form_shows_the_stores_answer(
    store: Store, http: aiohttp.ClientSession
) -> None:
    phone = store.urls["phone orders"]
    # An empty slip is refused on the form: nothing is saved or sent.
    async with http.post(phone + "/slips", data={}, allow_redirects=False) as response:
        assert response.status == 400
        page = await response.text()
    assert "Not sent: Name is missing; E-mail is missing;" in page
    assert "Card is missing" in page
    assert await slips(http, store) == []

    assert await post_form(http, phone + "/slips", samples.PHONE_FORM) == "/?sent=1"
    await post_form(http, phone + "/slips", dict(samples.PHONE_FORM, country="Narnia"))
    await post_form(http, phone + "/slips", dict(samples.PHONE_FORM, card=samples.DECLINED_CARD))
    # Accepted, and later paid: the slip says so.
    approved = await eventually(lambda: slip_answered(http, store, 1), "slip 1 answered")
    assert (approved["status"], approved["order_id"], approved["reasons"]) == (
        "approved", "phone-1", [])
    refused = await eventually(lambda: slip_answered(http, store, 2), "slip 2 answered")
    assert refused["status"] == "refused"
    assert any("we don't ship to" in reason for reason in refused["reasons"]), refused
    # Accepted, then its payment declined: the page doesn't go on saying "accepted".
    declined = await eventually(lambda: slip_answered(http, store, 3), "slip 3 answered")
    assert (declined["status"], declined["order_id"], declined["reasons"]) == (
        "declined", "phone-3", ["payment declined: card declined by the issuer"])
    async with http.get(phone + "/") as response:
        page = await response.text()
    assert "order <strong class=\"order-id\">phone-1</strong> paid" in page
    assert "we don&#39;t ship to" in page
    assert "payment declined: card declined by the issuer" in page
    assert "accepted as order" not in page
    untranslatable = (await get_json(http, store.urls["order board"] + "/orders.json"))[
        "untranslatable"]
    assert untranslatable == []


async def test_the_normalizer_refuses_an_unreadable_message_at_its_return_address(
    store: Store, amqp_url: str
) -> None:
    async with kiltmq.connect(amqp_url) as conn:
        ch = await conn.channel()
        ok = await ch.queue_declare("", exclusive=True)
        await store.service("webstore").the_bus.publish(
            INTAKE, "phone", b"Dear MacGrudder, one kilt please.", message_id="stray-2",
            content_type="text/plain", type=PHONE_TYPE, reply_to=ok.queue,
            correlation_id="letter-2",
        )

        async def reply() -> Any:
            return await ch.basic_get(ok.queue)

        message = await eventually(reply, "the normalizer's reply")
        assert message.properties.correlation_id == "letter-2"
        answer = json.loads(message.body)
        assert answer["status"] == "refused" and answer["correlation_id"] == "letter-2"
        assert "must start with the line 'PHONE ORDER SLIP'" in answer["reasons"][0]
        await message.ack()


def crm_orders(url: str) -> tuple[int, int, int]:
    with xmlrpc.client.ServerProxy(url, allow_none=True) as crm:
        customer_id: Any = crm.crm.add_customer(samples.CRM_CUSTOMER)
        good: Any = crm.crm.add_order(customer_id, [samples.CRM_ITEM], samples.APPROVED_CARD, "")
        bad: Any = crm.crm.add_order(
            customer_id, [dict(samples.CRM_ITEM, pattern="Tesco Value")], samples.APPROVED_CARD, ""
        )
        unpaid: Any = crm.crm.add_order(customer_id, [samples.CRM_ITEM], samples.DECLINED_CARD,
                                        "")
        return int(good), int(bad), int(unpaid)


def crm_order(url: str, order_id: int) -> Any:
    with xmlrpc.client.ServerProxy(url, allow_none=True) as crm:
        return crm.crm.get_order(order_id)


async def test_the_crm_learns_the_stores_answer_and_forgets_the_card(
    store: Store, http: aiohttp.ClientSession
) -> None:
    url = store.urls["CRM XML-RPC"]
    good, bad, unpaid = await run_in_thread(crm_orders, url)

    async def answered(order_id: int) -> Any:
        order = await run_in_thread(crm_order, url, order_id)
        return order if order["status"]["status"] not in ("sent", "accepted") else None

    approved = await eventually(lambda: answered(good), "the CRM order paid")
    assert approved["status"] == {"status": "approved", "order_id": f"crm-{good}", "reasons": []}
    refused = await eventually(lambda: answered(bad), "the CRM order refused")
    assert refused["status"]["status"] == "refused"
    assert any("Tesco Value" in reason for reason in refused["status"]["reasons"])
    declined = await eventually(lambda: answered(unpaid), "the CRM order's payment declined")
    assert declined["status"] == {"status": "declined", "order_id": f"crm-{unpaid}",
                                  "reasons": ["payment declined: card declined by the issuer"]}
    # Answered for, the orders keep only the card's last four digits.
    digits = samples.APPROVED_CARD.replace(" ", "")
    rows = store.service("crm").db.query("SELECT card FROM orders")
    assert [row["card"] for row in rows] == ["…4242", "…4242", "…0002"]
    async with http.get(store.urls["CRM"]) as response:
        page = await response.text()
    assert digits not in page and "Tesco Value" in page and "refused" in page
