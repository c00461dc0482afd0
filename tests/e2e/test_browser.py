"""The kilt store in a real browser (Playwright driving Debian's chromium).

A customer checks out in the web store and keeps the order's status page open;
MacGrudder presses "kilt finished" in the workshop; the customer's page changes to
"shipped" by itself (Server-Sent Events, no reload). Screenshots of each page go to a
temporary folder; with KILTSTORE_SCREENSHOTS=docs/screenshots they refresh the README's
(``make screenshots``).

Needs /usr/bin/chromium (``apt-get install chromium``; .ci/run installs it). Without
it the test is skipped, or fails under CI.
"""

from __future__ import annotations

import json
import os
import tempfile
import xmlrpc.client
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kiltstore import samples
from kiltstore.demo import Store
from kiltstore.domain import OrderEvent, State
from kiltstore.translators import translate_web

from .conftest import eventually, get_json, post_form, run_in_thread, status_path

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS_ENV = "KILTSTORE_SCREENSHOTS"
BROWSER_TIMEOUT_MS = 20_000
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI requires the browser tests to run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed: {exc}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=BROWSER_TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Any) -> Any:
    page = await browser.new_page(viewport={"width": 1200, "height": 860})
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    return page


_shots: list[Path] = []


def screenshots_folder() -> Path:
    """docs/screenshots only when asked (KILTSTORE_SCREENSHOTS), so a test run leaves the
    tracked pictures alone; otherwise one temporary folder per run."""
    if not _shots:
        chosen = os.environ.get(SCREENSHOTS_ENV)
        _shots.append(Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="kilt-shots-")))
    return _shots[0]


async def screenshot(page: Any, name: str, *, full_page: bool = False) -> None:
    folder = screenshots_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    await page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 0


async def accept_dialogs(page: Any) -> None:
    """Answer "OK" to every confirm() of ``page`` (the "Kilt finished" and cancel buttons
    ask first)."""

    async def accept(dialog: Any) -> None:
        await dialog.accept()

    page.on("dialog", accept)


async def add_to_basket(
    page: Any, shop_url: str, tartan: str, *, style: str = "Traditional 8-yard",
    size: str = "M", waist: str = "84", qty: str = "1",
) -> None:
    """Choose ``tartan`` in the catalogue and put one kilt of it in the basket."""
    await page.goto(shop_url)
    await page.click(f"a.product[data-tartan='{tartan}']")
    await page.check(f"input[name=style][value='{style}']")
    await page.select_option("select[name=size]", size)
    await page.fill("input[name=waist_cm]", waist)
    await page.fill("input[name=qty]", qty)
    await page.click("#add-to-basket")
    await page.wait_for_url(shop_url + "/basket")


async def fill_checkout(page: Any, card: str, **changes: str) -> None:
    """Type the customer's details into the checkout form."""
    fields = {"full_name": "Jamie Fraser", "email": "jamie@lallybroch.example",
              "line1": "1 High Street", "town": "Inverness", "postcode": "IV1 1AA",
              "card_number": card, **changes}
    for name, value in fields.items():
        await page.fill(f"#checkout input[name={name}]", value)


def crm_order(rpc_url: str) -> None:
    with xmlrpc.client.ServerProxy(rpc_url, allow_none=True) as crm:
        customer = dict(samples.CRM_CUSTOMER, first_name="Flora", last_name="MacDonald",
                        email="flora@skye.example",
                        address="Kingsburgh\nIsle of Skye\nIV51 9UT\nScotland")
        customer_id = crm.crm.add_customer(customer)
        item = dict(samples.CRM_ITEM, pattern="Isle of Skye", price="430.00", kilt_size="M",
                    waist_in=31, hips_in=36)
        crm.crm.add_order(customer_id, [item], samples.APPROVED_CARD, "")


# The browser test runs on the embedded broker only: the flow is the same on RabbitMQ
# (see test_flow.py), and one browser run keeps the suite quick.
@pytest.mark.parametrize("broker_kind", ["kiltmq"])
async def test_checkout_finish_and_live_status_in_a_browser(
    store: Store, browser: Any, http: aiohttp.ClientSession
) -> None:
    shop = await new_page(browser)
    await shop.goto(store.urls["web store"])
    await screenshot(shop, "webstore.png", full_page=True)

    # The customer puts a kilt in the basket and checks out.
    await add_to_basket(shop, store.urls["web store"], "Royal Stewart")
    await shop.click("#to-checkout")
    await fill_checkout(shop, samples.APPROVED_CARD, notes="For the Gathering, please")
    await shop.click("#place-order")
    await shop.wait_for_url(store.urls["web store"] + status_path(store, 1))
    await shop.wait_for_selector("#state:text('approved')")
    assert "MacGrudder is making your kilt" in await shop.inner_text("#status-text")
    await screenshot(shop, "order-approved.png")
    # Marks this page load: still there later means the page was never reloaded.
    await shop.evaluate("window.kiltMarker = 'same page'")

    # MacGrudder finishes the kilt.
    workshop = await new_page(browser)
    await accept_dialogs(workshop)
    await workshop.goto(store.urls["workshop"])
    button = workshop.locator("#finish-web-1")
    await button.wait_for()
    assert "Royal Stewart" in await workshop.inner_text("#todo")
    await screenshot(workshop, "workshop.png")
    await button.click()
    await workshop.wait_for_selector("#no-jobs")
    assert "web-1" in await workshop.inner_text("#done")

    # The customer's page changes by itself.
    await shop.wait_for_selector("#state:text('shipped')")
    assert await shop.evaluate("window.kiltMarker") == "same page"
    tracking = await shop.inner_text("#tracking")
    assert tracking.startswith("HP")
    assert "finished" in await shop.inner_text("ol.timeline")
    await screenshot(shop, "order-shipped.png", full_page=True)

    # More orders for the board and the mailbox: CRM, phone (invalid), web (declined).
    await run_in_thread(crm_order, store.urls["CRM XML-RPC"])
    await post_form(http, store.urls["phone orders"] + "/slips",
                    dict(samples.PHONE_FORM, name="Angus Og", email="angus@example.org",
                         country="Narnia", tartan="Dress Gordon"))
    await post_form(http, store.urls["web store"] + "/checkout",
                    dict(samples.WEB_FORM, full_name="Morag Bain", email="morag@example.org",
                         tartan="MacLeod of Lewis", card_number=samples.DECLINED_CARD))

    async def board_settled() -> Any:
        orders = (await get_json(http, store.urls["order board"] + "/orders.json"))["orders"]
        latest = {o["order_id"]: o["latest"] for o in orders}
        return latest == {"web-1": "shipped", "crm-1": "approved", "phone-1": "invalid",
                          "web-2": "declined"}

    await eventually(board_settled, "four orders in their final states on the board")
    board = await new_page(browser)
    await board.goto(store.urls["order board"])
    await board.wait_for_selector("tr[data-order='web-2'][data-latest='declined']")
    await screenshot(board, "board.png")

    mailbox = await new_page(browser)
    await mailbox.goto(store.urls["mailbox"])
    await mailbox.wait_for_selector(f"text=tracking {tracking}")
    await screenshot(mailbox, "mailbox.png")

    crm = await new_page(browser)
    await crm.goto(store.urls["CRM"])
    await screenshot(crm, "crm.png")
    phone = await new_page(browser)
    await phone.goto(store.urls["phone orders"])
    await screenshot(phone, "phone.png")


async def fits_the_window(page: Any) -> bool:
    """Nothing sticks out to the right of the window (no horizontal scrolling)."""
    return bool(await page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"
    ))


@pytest.mark.parametrize("broker_kind", ["kiltmq"])
async def test_long_text_wraps_and_dead_letters_have_working_buttons(
    store: Store, browser: Any, http: aiohttp.ClientSession
) -> None:
    """An order with a 10,000-character name (one that bypassed the sources' limits)
    keeps the workshop and the board within the window, with the "Kilt finished"
    button on screen; a dead letter on the board is retried and discarded by its
    buttons."""
    order = translate_web(samples.web_body(1))
    for index, name in enumerate(("A" * 10_000, "Jamie " * 1_700), 1):
        long_order = replace(order, order_id=f"web-{index}", source_ref=str(index),
                             customer=replace(order.customer, name=name), notes=name)
        event = OrderEvent(state=State.APPROVED, order=long_order)
        await store.service("webstore").the_bus.publish(
            "orders", "order.approved.web", event.to_json(), message_id=event.message_id,
            content_type="application/json", type="kiltstore.order-event.v1",
        )
    # And a poison message, for the board's dead letters.
    poison = json.loads(OrderEvent(state=State.VALID, order=order).to_json())
    poison["version"] = 99
    await store.service("webstore").the_bus.publish(
        "orders", "order.valid.crm", json.dumps(poison).encode(), message_id="poison-1",
        content_type="application/json", type="kiltstore.order-event.v99",
    )

    async def both_in_workshop() -> Any:
        jobs = await get_json(http, store.urls["workshop"] + "/jobs.json")
        return len(jobs["todo"]) == 2

    await eventually(both_in_workshop, "the long orders in the workshop")
    workshop = await new_page(browser)
    await accept_dialogs(workshop)
    await workshop.goto(store.urls["workshop"])
    assert await fits_the_window(workshop)
    for index in (1, 2):
        button = workshop.locator(f"#finish-web-{index}")
        box = await button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1200
    await workshop.locator("#finish-web-1").click()
    await workshop.wait_for_selector("#done tr[data-order='web-1']")
    assert await fits_the_window(workshop)

    async def board_ready() -> Any:
        data = await get_json(http, store.urls["order board"] + "/orders.json")
        return len(data["orders"]) == 2 and len(data["dead_letters"]) == 1

    await eventually(board_ready, "the long orders and the dead letter on the board")
    board = await new_page(browser)
    await board.goto(store.urls["order board"])
    await board.wait_for_selector("#dead-letters tr[data-message='poison-1']")
    assert await fits_the_window(board)
    assert "unsupported kiltstore.order-event version 99" in await board.inner_text(
        "#dead-letters")
    # Retry: billing gives up on it again, and it is back with a new entry.
    first = await board.get_attribute("#dead-letters tr[data-message='poison-1']", "data-letter")
    await board.click("#dead-letters tr[data-message='poison-1'] button.retry")
    await board.wait_for_selector(
        f"#dead-letters tr[data-message='poison-1']:not([data-letter='{first}'])"
    )
    # Discard: gone for good.
    await board.click("#dead-letters tr[data-message='poison-1'] button.discard")
    await board.wait_for_selector("#dead-letters", state="detached")
    data = await get_json(http, store.urls["order board"] + "/orders.json")
    assert data["dead_letters"] == []


@pytest.mark.parametrize("broker_kind", ["kiltmq"])
async def test_phone_page_says_no_slip_was_sent_until_one_is(
    store: Store, browser: Any, http: aiohttp.ClientSession
) -> None:
    page = await new_page(browser)
    await page.goto(store.urls["phone orders"])
    assert "No slips sent yet" in await page.inner_text("#slips #no-slips")
    # A slip sent from another phone: the list shows it without a reload, and the
    # empty-list note is gone.
    await post_form(http, store.urls["phone orders"] + "/slips", samples.PHONE_FORM)
    await page.wait_for_selector("#slips .slip[data-slip]")
    assert await page.locator("#no-slips").count() == 0


@pytest.mark.parametrize("broker_kind", ["kiltmq"])
async def test_a_refused_phone_slip_keeps_every_choice(store: Store, browser: Any) -> None:
    """A slip the form refuses comes back with the reason and as it was typed, the menus
    included: measurements in inches stay in inches."""
    page = await new_page(browser)
    await page.goto(store.urls["phone orders"])
    for name, value in samples.PHONE_FORM.items():
        if name not in ("tartan", "size", "unit"):
            await page.fill(f"form input[name={name}]", value)
    await page.fill("form input[name=qty]", "11")
    await page.select_option("form select[name=tartan]", "Isle of Skye")
    await page.select_option("form select[name=size]", "M")
    await page.select_option("form select[name=unit]", "in")
    await page.click("form button[type=submit]")
    await page.wait_for_selector("#refused")
    assert "11 kilts in one order; the most we take is 10" in await page.inner_text(
        "#refused")
    assert await page.input_value("form select[name=tartan]") == "Isle of Skye"
    assert await page.input_value("form select[name=size]") == "M"
    assert await page.input_value("form select[name=unit]") == "in"
    assert await page.input_value("form input[name=waist]") == samples.PHONE_FORM["waist"]
    assert await page.input_value("form input[name=qty]") == "11"
    assert store.service("phone").db.query("SELECT * FROM slips") == []


async def test_the_crm_answers_and_the_boards_invalid_messages_and_management_links(
    tmp_path: Path, browser: Any, http: aiohttp.ClientSession
) -> None:
    """On the demo's own embedded broker (with its management UI): the CRM's answer
    column follows each order to its payment; the board lists an untranslatable message
    with its reason, and its queue links open the queue's page in the management UI."""
    async with Store(data_dir=tmp_path / "data", amqp_url=None, persistent_broker=False,
                     poll_interval=0.2) as store:
        with xmlrpc.client.ServerProxy(store.urls["CRM XML-RPC"], allow_none=True) as crm:
            customer: Any = await run_in_thread(crm.crm.add_customer, samples.CRM_CUSTOMER)
            for card in (samples.APPROVED_CARD, samples.DECLINED_CARD):
                await run_in_thread(crm.crm.add_order, customer, [samples.CRM_ITEM], card, "")
        await store.service("webstore").the_bus.publish(
            "intake", "phone", b"Dear MacGrudder, one kilt please.", message_id="letter-1",
            content_type="text/plain", type="phone.slip.v1")

        page = await new_page(browser)
        await page.goto(store.urls["CRM"])
        paid = page.locator("#orders tr[data-order='1'][data-status='approved'] td.answer")
        await page.reload()
        await paid.wait_for()  # (the CRM page doesn't update live: reloaded until then)
        assert "approved as crm-1: paid, on to the workshop" in " ".join(
            (await paid.inner_text()).split())
        await page.reload()
        declined = page.locator("#orders tr[data-order='2'][data-status='declined'] td.answer")
        await declined.wait_for()
        assert "payment declined: card declined by the issuer" in await declined.inner_text()

        board = await new_page(browser)
        await board.goto(store.urls["order board"])
        row = board.locator("#untranslatable tr[data-message='letter-1:invalid']")
        await row.wait_for()  # the board updates live
        assert await board.locator("#no-invalid").count() == 0
        text = await row.inner_text()
        assert "phone" in text and "must start with the line 'PHONE ORDER SLIP'" in text
        assert "Dear MacGrudder, one kilt please." in text

        management = store.urls["management"]
        links = board.locator("#queue-links a")
        assert await links.count() == len(store.service("board").topology.queues)
        billing = f"{store.prefix}.billing"
        link = board.locator(f"#queue-links a:text-is('{billing}')")
        assert await link.get_attribute("href") == f"{management}/queues/%2F/{billing}"
        await link.click()
        await board.wait_for_url(lambda url: url.startswith(f"{management}/login"))
        await board.fill("input[name=username]", "guest")
        await board.fill("input[name=password]", "guest")
        await board.click("button[type=submit]")
        await board.wait_for_url(f"{management}/queues/%2F/{billing}")
        assert billing in await board.inner_text("h1, h2")
