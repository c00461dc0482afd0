"""The store's pages under hostile or careless use: closed tabs, overlong input,
guessed links, card numbers (on the embedded broker; the pages don't depend on it)."""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
import pytest

from kiltstore import samples
from kiltstore.demo import Store
from kiltstore.domain import OrderEvent
from kiltstore.topology import INTAKE
from kiltstore.translators import PHONE_TYPE
from kiltstore.web import readable_time

from .conftest import eventually, get_json, post_form, run_in_thread
from .test_flow import crm_enter_order

pytestmark = pytest.mark.parametrize("broker_kind", ["kiltmq"])


async def test_closing_live_pages_logs_nothing(
    store: Store, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    pages = ("workshop", "order board", "mailbox", "web store")
    for page in pages:
        response = await http.get(store.urls[page] + "/events")
        assert (await response.content.readline()) == b"retry: 1000\n"
        response.close()  # the tab is closed
    hubs = [store.service(name).hub for name in ("workshop", "board", "mailbox", "webstore")]
    for hub in hubs:
        hub.publish("jobs", {})
    # The next stream sees its event only after the closed streams were written to.
    response = await http.get(store.urls["workshop"] + "/events")
    await response.content.readline()
    await response.content.readline()
    for hub in hubs:
        hub.publish("jobs", {})
    assert (await response.content.readline()) == b"event: jobs\n"
    response.close()
    noisy = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert noisy == [], [r.getMessage() for r in noisy]


LONG = "A" * 10_000


async def test_every_source_refuses_overlong_fields(
    store: Store, http: aiohttp.ClientSession
) -> None:
    async with http.post(store.urls["web store"] + "/checkout",
                         data=dict(samples.WEB_FORM, full_name=LONG),
                         allow_redirects=False) as response:
        assert response.status == 400
        page = await response.text()
    assert "Name is too long (10,000 characters; at most 100)" in page
    async with http.post(store.urls["phone orders"] + "/slips",
                         data=dict(samples.PHONE_FORM, name=LONG, notes=LONG),
                         allow_redirects=False) as response:
        assert response.status == 400
        page = await response.text()
    assert "Name is too long (10,000 characters; at most 100)" in page
    assert "Notes is too long (10,000 characters; at most 500)" in page
    assert store.service("webstore").db.query("SELECT * FROM orders") == []
    assert store.service("phone").db.query("SELECT * FROM slips") == []
    # (The CRM's API refuses them too: tests/kiltstore/test_services.py.)


async def _refused(http: aiohttp.ClientSession, url: str, form: dict[str, str]) -> str:
    async with http.post(url, data=form, allow_redirects=False) as response:
        assert response.status == 400
        return await response.text()


async def test_every_source_refuses_what_the_validator_would_throw_away(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """The limits as the validator applies them, to the order as the store reads it: two
    street lines joined, every kilt of an order counted."""
    web, phone = store.urls["web store"], store.urls["phone orders"]
    half = "Lallybroch Estate, Broch Tuarach, " * 4 + "Highlands"  # 145 characters, twice
    page = await _refused(http, web + "/checkout", dict(samples.WEB_FORM, line1=half,
                                                        line2=half))
    assert "the street address is too long (292 characters; at most 200)" in page
    page = await _refused(http, web + "/checkout", dict(samples.WEB_FORM, qty="11"))
    assert "kilt 1: quantity 11 must be between 1 and 10" in page
    page = await _refused(http, phone + "/slips", dict(samples.PHONE_FORM, qty="11"))
    assert "11 kilts in one order; the most we take is 10" in page

    # A basket takes ten kilts, not eleven, in however many lines.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as shopper:
        line = {"slug": "black-watch", "tartan": "Black Watch", "size": "L",
                "waist_cm": "86", "hip_cm": "97", "length_cm": "61"}
        assert await post_form(shopper, web + "/basket", dict(line, qty="6")) == "/basket"
        page = await _refused(shopper, web + "/basket", dict(line, qty="5"))
        assert "a basket holds at most 10 kilts (this one would hold 11)" in page
        assert await post_form(shopper, web + "/basket", dict(line, qty="4")) == "/basket"
        async with shopper.get(web + "/basket") as response:
            assert 'id="basket-count">10<' in await response.text()
    assert store.service("webstore").db.query("SELECT * FROM orders") == []
    assert store.service("phone").db.query("SELECT * FROM slips") == []


async def test_the_validator_refuses_overlong_fields_that_bypassed_a_source(
    store: Store, http: aiohttp.ClientSession
) -> None:
    await store.service("webstore").the_bus.publish(
        INTAKE, "phone", samples.phone_body(7, name=LONG), message_id="phone-7",
        content_type="text/plain", type=PHONE_TYPE,
    )

    async def invalid() -> Any:
        board = await get_json(http, store.urls["order board"] + "/orders.json")
        return [o for o in board["orders"] if o["latest"] == "invalid"]

    (order,) = await eventually(invalid, "the order refused by the validator")
    assert "the name is too long (10,000 characters; at most 100)" in order["events"][
        "invalid"]["note"]
    charges = (await get_json(http, store.urls["payment gateway"] + "/charges"))["charges"]
    assert charges == []

    # The customer hears why: the e-mail goes out, the name shortened to its limit.
    async def mail() -> Any:
        mails = (await get_json(http, store.urls["mailbox"] + "/mails.json"))["mails"]
        return [m for m in mails if m["order_id"] == order["order_id"]]

    (sent,) = await eventually(mail, "the e-mail about the refused order")
    assert "the name is too long (10,000 characters; at most 100)" in sent["body"]
    assert sent["body"].startswith("Dear " + "A" * 100 + ",")


async def test_order_links_are_unguessable(store: Store, http: aiohttp.ClientSession) -> None:
    first = await post_form(http, store.urls["web store"] + "/checkout", samples.WEB_FORM)
    second = await post_form(http, store.urls["web store"] + "/checkout", samples.WEB_FORM)
    tokens = [link.removeprefix("/orders/") for link in (first, second)]
    assert all(len(token) >= 20 and not token.isdigit() for token in tokens)
    assert tokens[0] != tokens[1]
    for link in (first, f"{first}/status", f"{first}.json"):
        async with http.get(store.urls["web store"] + link) as response:
            assert response.status == 200
    for guess in ("/orders/1", "/orders/2.json", "/orders/1/status",
                  "/orders/" + tokens[0][:-1] + ("A" if tokens[0][-1] != "A" else "B")):
        async with http.get(store.urls["web store"] + guess) as response:
            assert response.status == 404, guess


async def test_an_order_placed_with_someone_elses_address_shows_not_their_orders(
    store: Store, http: aiohttp.ClientSession
) -> None:
    """Anyone can check out with any e-mail address: the status page and its JSON of such
    an order must not lead to the address owner's orders (names, addresses, Cancel)."""
    web = store.urls["web store"]
    victim = await post_form(http, web + "/checkout", samples.WEB_FORM)

    async def approved_mail() -> Any:
        mails = (await get_json(http, store.urls["mailbox"] + "/mails.json"))["mails"]
        return [m for m in mails if m["order_id"] == "web-1" and "confirmed" in m["subject"]]

    (mail,) = await eventually(approved_mail, "the customer's confirmation e-mail")
    orders_path = mail["body"].split("All your orders: " + web, 1)[1].split()[0]
    assert orders_path.startswith("/my-orders/")
    async with http.get(web + orders_path) as response:  # the owner's list, from the mail
        assert "web-1" in await response.text()

    impostor = await post_form(http, web + "/checkout", dict(
        samples.WEB_FORM, full_name="Black Jack Randall", card_number=samples.DECLINED_CARD))
    assert impostor != victim

    async def declined() -> Any:
        status = await get_json(http, web + impostor + ".json")
        return status if status["state"] == "declined" else None

    await eventually(declined, "the impostor's order to be declined")
    for link in (impostor, impostor + ".json", impostor + "/status"):
        async with http.get(web + link) as response:
            text = await response.text()
        assert response.status == 200 and "declined" in text, link
        assert orders_path not in text and "/my-orders/" not in text, link
        assert orders_path.removeprefix("/my-orders/") not in text, link


async def test_card_numbers_are_kept_nowhere_after_the_payment_step(
    store: Store, http: aiohttp.ClientSession
) -> None:
    digits = samples.APPROVED_CARD.replace(" ", "")
    web = await post_form(http, store.urls["web store"] + "/checkout", samples.WEB_FORM)
    await post_form(http, store.urls["phone orders"] + "/slips", samples.PHONE_FORM)
    await run_in_thread(crm_enter_order, store.urls["CRM XML-RPC"])

    async def all_approved() -> Any:
        jobs = await get_json(http, store.urls["workshop"] + "/jobs.json")
        return len(jobs["todo"]) == 3

    await eventually(all_approved, "three approved orders in the workshop")
    await post_form(http, store.urls["workshop"] + "/orders/web-1/finish", {})

    async def shipped() -> Any:
        status = await get_json(http, store.urls["web store"] + web + ".json")
        return status["state"] == "shipped"

    await eventually(shipped, "web-1 shipped")

    async def shipped_mail() -> Any:
        mails = (await get_json(http, store.urls["mailbox"] + "/mails.json"))["mails"]
        return [m for m in mails if m["order_id"] == "web-1" and "shipped" in m["subject"]]

    (mail,) = await eventually(shipped_mail, "the shipped e-mail")
    assert f"Follow your order at {store.urls['web store']}{web}\n" in mail["body"]

    async def crm_answered() -> Any:
        rows = store.service("crm").db.query("SELECT card FROM orders")
        return all(digits not in row["card"] for row in rows)

    await eventually(crm_answered, "the CRM to forget the card")
    # Every page...
    for page in ("web store", "workshop", "CRM", "phone orders", "mailbox", "order board",
                 "payment gateway"):
        async with http.get(store.urls[page]) as response:
            assert digits not in await response.text(), page
    for link in (web, web + ".json"):
        async with http.get(store.urls["web store"] + link) as response:
            assert digits not in await response.text()
    # ... every table of every service's database (outboxes once sent included) ...
    for name, service in store.services.items():
        for (table,) in service.db.query("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in service.db.query(f"SELECT * FROM {table}"):
                text = " ".join(str(bytes(v) if isinstance(v, bytes) else v) for v in row)
                assert digits not in text, (name, table)
    # ... every byte of every file of the data folder (databases, write-ahead logs and
    # their indexes, labels), while the services run: no old page keeps it ...
    typed = samples.APPROVED_CARD.encode()  # as the web form and the phone slip had it
    files = [path for path in store.data_dir.rglob("*") if path.is_file()]
    assert any(path.name.endswith("-wal") for path in files), files
    for path in files:
        data = path.read_bytes()
        assert digits.encode() not in data and typed not in data, path
    # ... and the workshop's approved orders carry the gateway's token instead.
    job = store.service("workshop").db.query_one("SELECT event FROM jobs WHERE order_id='web-1'")
    payment = OrderEvent.from_json(job["event"].encode()).order.payment
    assert (payment.card_number, payment.last4) == ("", "4242")
    assert payment.token.startswith("tok_")


async def test_phone_slips_and_mails_show_readable_dates(
    store: Store, http: aiohttp.ClientSession
) -> None:
    await post_form(http, store.urls["phone orders"] + "/slips", samples.PHONE_FORM)
    (slip,) = store.service("phone").db.query("SELECT taken FROM slips")
    async with http.get(store.urls["phone orders"]) as response:
        page = await response.text()
    assert f"Taken: {readable_time(slip['taken'])}\n" in page
    assert "+00:00" not in page  # the slip's message keeps ISO 8601; the page doesn't

    async def mails() -> Any:
        return (await get_json(http, store.urls["mailbox"] + "/mails.json"))["mails"]

    (mail,) = await eventually(mails, "the e-mail about phone-1")
    received = readable_time(mail["received"])
    assert re.fullmatch(r"\d{1,2} \w{3} \d{4}, \d\d:\d\d:\d\d UTC", received), received
    async with http.get(store.urls["mailbox"]) as response:
        assert f'<span class="received">received {received}</span>' in await response.text()
