"""The kilt store end to end, on RabbitMQ and on kiltmq's embedded broker.

Orders come in through the real front doors (the web store's checkout form, the
CRM's XML-RPC API, the phone-order form) and are followed through the real services
to the pages, the mailbox and the databases.
"""

from __future__ import annotations

import json
import xmlrpc.client
from typing import Any

import aiohttp

import kiltmq
from kiltstore import samples
from kiltstore.demo import Store
from kiltstore.domain import CanonicalOrder, OrderEvent, Source, State
from kiltstore.topology import INTAKE
from kiltstore.translators import PHONE_TYPE, translate_web

from .conftest import Observer, eventually, get_json, post_form, run_in_thread, status_path


def essence(order: CanonicalOrder) -> dict[str, Any]:
    data = order.to_dict()
    for key in ("order_id", "source", "source_ref", "placed_at", "notes"):
        data.pop(key)
    return data


def crm_enter_order(rpc_url: str, card: str = samples.APPROVED_CARD) -> int:
    """What the sales rep's tools do: enter a customer and an order over XML-RPC."""
    with xmlrpc.client.ServerProxy(rpc_url, allow_none=True) as crm:
        customer_id = crm.crm.add_customer(samples.CRM_CUSTOMER)
        order_id: Any = crm.crm.add_order(customer_id, [samples.CRM_ITEM], card, "")
        return int(order_id)


async def web_status(http: aiohttp.ClientSession, store: Store, number: int) -> Any:
    return await get_json(http, f"{store.urls['web store']}{status_path(store, number)}.json")


async def mails_about(http: aiohttp.ClientSession, store: Store, order_id: str) -> list[Any]:
    data = await get_json(http, f"{store.urls['mailbox']}/mails.json")
    return [mail for mail in data["mails"] if mail["order_id"] == order_id]


async def board(http: aiohttp.ClientSession, store: Store) -> Any:
    return await get_json(http, f"{store.urls['order board']}/orders.json")


async def test_orders_from_three_sources_reach_one_canonical_form(
    store: Store, http: aiohttp.ClientSession, observe: Any
) -> None:
    received: Observer = await observe("orders", "order.received.*")

    web = await post_form(http, store.urls["web store"] + "/checkout", samples.WEB_FORM)
    assert web == status_path(store, 1)
    crm_id = await run_in_thread(crm_enter_order, store.urls["CRM XML-RPC"])
    await post_form(http, store.urls["phone orders"] + "/slips", samples.PHONE_FORM)

    messages = await received.take(3)
    events = {OrderEvent.from_json(m.body).order.source: m for m in messages}
    assert set(events) == {Source.WEB, Source.CRM, Source.PHONE}
    orders = {source: OrderEvent.from_json(m.body).order for source, m in events.items()}
    assert essence(orders[Source.WEB]) == essence(orders[Source.CRM]) == essence(
        orders[Source.PHONE]
    )
    assert orders[Source.CRM].order_id == f"crm-{crm_id}"
    for message in messages:
        assert message.properties.content_type.startswith(
            "application/vnd.kiltstore.order-event+json"
        )
        assert message.properties.delivery_mode == 2
        assert message.properties.message_id.endswith(":received")

    # All three go on to be approved and land in the workshop.
    async def all_in_workshop() -> list[str] | None:
        jobs = await get_json(http, store.urls["workshop"] + "/jobs.json")
        return jobs["todo"] if len(jobs["todo"]) == 3 else None

    todo = await eventually(all_in_workshop, "three approved orders in the workshop")
    assert sorted(todo) == sorted(order.order_id for order in orders.values())


async def test_invalid_declined_and_untranslatable_orders_take_their_paths(
    store: Store, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    invalid_form = {**samples.WEB_FORM, "tartan": "Tesco Value", "waist_cm": "300"}
    declined_form = {**samples.WEB_FORM, "card_number": samples.DECLINED_CARD}
    await post_form(http, store.urls["web store"] + "/checkout", invalid_form)  # web-1
    await post_form(http, store.urls["web store"] + "/checkout", declined_form)  # web-2
    # A message no translator can read, straight onto the intake exchange.
    bus = store.service("webstore").the_bus
    await bus.publish(INTAKE, "phone", b"Dear MacGrudder, one kilt please.",
                      message_id="stray-1", content_type="text/plain", type=PHONE_TYPE)

    async def final(number: int, state: str) -> Any:
        status = await web_status(http, store, number)
        return status if status["state"] == state else None

    invalid = await eventually(lambda: final(1, "invalid"), "web-1 to be invalid")
    assert any("Tesco Value" in reason for reason in invalid["reasons"])
    assert any("waist 300 cm" in reason for reason in invalid["reasons"])
    declined = await eventually(lambda: final(2, "declined"), "web-2 to be declined")
    assert declined["reasons"] == ["payment declined: card declined by the issuer"]

    # The customer is told why, by e-mail.
    invalid_mail = (await eventually(lambda: mails_about(http, store, "web-1"), "mail"))[0]
    assert "Tesco Value" in invalid_mail["body"]
    assert invalid_mail["rcpt"] == samples.WEB_FORM["email"]
    declined_mail = (await eventually(lambda: mails_about(http, store, "web-2"), "mail"))[0]
    assert "declined" in declined_mail["subject"]

    # Neither was made; the invalid one was never charged, the declined one was refused.
    jobs = await get_json(http, store.urls["workshop"] + "/jobs.json")
    assert jobs == {"todo": [], "done": []}
    charges = (await get_json(http, store.urls["payment gateway"] + "/charges"))["charges"]
    assert [(c["idempotency_key"], c["status"]) for c in charges] == [("web-2", "declined")]

    # The untranslatable message is on the invalid-message channel, with the reason.
    async def stray_on_board() -> Any:
        return (await board(http, store))["untranslatable"]

    stray = (await eventually(stray_on_board, "the stray message on the board"))[0]
    assert stray["source"] == "phone"
    assert "must start with the line 'PHONE ORDER SLIP'" in stray["reason"]
    assert "one kilt please" in stray["body"]
    async with kiltmq.connect(amqp_url) as conn:
        ch = await conn.channel()
        kept = await ch.basic_get(store.service("board").topology.queue("invalid-messages"))
        assert kept is not None
        assert kept.body == b"Dear MacGrudder, one kilt please."
        assert "PHONE ORDER SLIP" in str(kept.headers["x-invalid-reason"])
        await kept.ack()

    journeys = {j["order_id"]: j for j in (await board(http, store))["orders"]}
    assert journeys["web-1"]["latest"] == "invalid"
    assert journeys["web-2"]["latest"] == "declined"


async def test_workshop_button_ships_mails_and_updates_the_status_page(
    store: Store, http: aiohttp.ClientSession
) -> None:
    await post_form(http, store.urls["web store"] + "/checkout", samples.WEB_FORM)

    async def approved() -> Any:
        jobs = await get_json(http, store.urls["workshop"] + "/jobs.json")
        return jobs["todo"] == ["web-1"]

    await eventually(approved, "web-1 in the workshop")
    assert (await web_status(http, store, 1))["state"] == State.APPROVED

    # MacGrudder presses "kilt finished" (twice: the second press changes nothing).
    for _ in range(2):
        await post_form(http, store.urls["workshop"] + "/orders/web-1/finish", {})

    async def shipped() -> Any:
        status = await web_status(http, store, 1)
        return status if status["state"] == State.SHIPPED else None

    status = await eventually(shipped, "web-1 shipped")
    tracking = status["detail"]["tracking"]
    assert [h["state"] for h in status["history"]] == [
        "placed", "received", "valid", "approved", "finished", "shipped",
    ]

    # Shipping recorded one shipment and printed its label.
    shipping = store.service("shipping")
    shipments = shipping.shipments()
    assert [(s["order_id"], s["tracking"]) for s in shipments] == [("web-1", tracking)]
    label = (store.data_dir / "labels" / "web-1.txt").read_text()
    assert tracking in label and "Jamie Fraser" in label and "IV1 1AA" in label

    # The customer got the confirmation, the "finished" mail and the tracking number.
    async def three_mails() -> Any:
        mails = await mails_about(http, store, "web-1")
        return mails if len(mails) == 3 else None

    mails = await eventually(three_mails, "three mails about web-1")
    subjects = sorted(mail["subject"] for mail in mails)
    assert any("your kilt is on the loom" in s for s in subjects)
    assert any(s.startswith("Your kilt is finished") for s in subjects)
    assert any(tracking in s for s in subjects)

    jobs = await get_json(http, store.urls["workshop"] + "/jobs.json")
    assert jobs == {"todo": [], "done": ["web-1"]}
    journey = (await board(http, store))["orders"][0]
    assert journey["latest"] == "shipped"
    assert list(journey["events"]) == ["received", "valid", "approved", "finished", "shipped"]


async def test_duplicate_deliveries_change_nothing(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """At-least-once delivery: the same message delivered again (same message id) is
    dropped by every Idempotent Receiver on its way."""
    await post_form(http, store.urls["web store"] + "/checkout", samples.WEB_FORM)

    async def approved() -> Any:
        return (await get_json(http, store.urls["workshop"] + "/jobs.json"))["todo"]

    await eventually(approved, "web-1 approved")
    # Re-send the web store's message and the validator's output, as a publisher that
    # crashed before recording its sends would.
    bus = store.service("webstore").the_bus
    await bus.publish(INTAKE, "web", samples.web_body(1), message_id="web-1",
                      content_type="application/json", type="webstore.checkout.v1")
    received = json.loads(samples.web_body(1))
    assert received["order_number"] == 1
    order_event = OrderEvent(
        state=State.VALID,
        order=CanonicalOrder.from_dict(
            json.loads(
                store.service("workshop").db.query_one("SELECT event FROM jobs")["event"]
            )["order"]
        ),
    )
    await bus.publish("orders", order_event.routing_key, order_event.to_json(),
                      message_id=order_event.message_id, content_type="application/json",
                      type="kiltstore.order-event.v1")
    # A marker message behind the duplicates: once it went through, so did they.
    await post_form(http, store.urls["web store"] + "/checkout", samples.WEB_FORM)

    async def second_approved() -> Any:
        todo = (await get_json(http, store.urls["workshop"] + "/jobs.json"))["todo"]
        return todo if len(todo) == 2 else None

    assert await eventually(second_approved, "web-2 approved") == ["web-1", "web-2"]
    charges = (await get_json(http, store.urls["payment gateway"] + "/charges"))["charges"]
    assert [(c["idempotency_key"], c["requests"]) for c in charges] == [
        ("web-1", 1), ("web-2", 1),
    ]
    mails = await mails_about(http, store, "web-1")
    assert len(mails) == 1


async def test_a_poison_message_is_dead_lettered_not_lost(
    store: Store, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    """An order event of a schema version billing doesn't know is given up on at once
    (no retry): it goes to the Dead Letter Channel with the reason and its queue in its
    headers, and the order board lists it."""
    order = translate_web(samples.web_body(1))
    event = json.loads(OrderEvent(state=State.VALID, order=order).to_json())
    event["version"] = 99
    bus = store.service("webstore").the_bus
    dead = await observe_dead_letters(amqp_url, store)
    await bus.publish("orders", "order.valid.web", json.dumps(event).encode(),
                      message_id="from-the-future", content_type="application/json",
                      type="kiltstore.order-event.v99")
    # Both of its subscribers give up on it: billing and the web store's status.
    messages = await dead.take(2)
    topology = store.service("billing").topology
    assert {m.headers["x-dead-queue"] for m in messages} == {
        topology.queue("billing"), topology.queue("webstore-status")}
    for message in messages:
        assert message.properties.message_id == "from-the-future"
        assert "unsupported kiltstore.order-event version 99" in message.headers["x-dead-reason"]
        assert message.headers["x-dead-permanent"] is True
        assert "x-retry-count" not in message.headers

    async def listed() -> Any:
        letters = (await board(http, store))["dead_letters"]
        return letters if len(letters) == 2 else None

    letters = await eventually(listed, "the poison message on the board")
    assert {letter["message_id"] for letter in letters} == {"from-the-future"}
    assert all(letter["permanent"] for letter in letters)
    charges = (await get_json(http, store.urls["payment gateway"] + "/charges"))["charges"]
    assert charges == []
    await dead.conn.close()


async def observe_dead_letters(amqp_url: str, store: Store) -> Observer:
    """A queue of the test's own on the Dead Letter Channel's exchange."""
    conn = await kiltmq.connect(amqp_url)
    ch = await conn.channel()
    ok = await ch.queue_declare("", exclusive=True)
    await ch.queue_bind(ok.queue, store.service("board").topology.exchange("dead-letters"), "")
    return Observer(conn, ok.queue)
