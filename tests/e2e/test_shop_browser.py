"""The shop in a real browser (Playwright driving Debian's chromium): the catalogue and
basket, checkout with checks as you type (and what the server refuses), a declined
payment paid with another card, a cancellation before the workshop starts (the Saga's
refund), the customer's order list from the e-mail's link, the workshop's start button
and its confirmation, and each order's message path and the queues on the board.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from kiltstore import samples
from kiltstore.demo import Store

from .conftest import eventually, get_json
from .test_browser import (
    accept_dialogs,
    add_to_basket,
    browser,  # noqa: F401  (fixture)
    fill_checkout,
    new_page,
    screenshot,
)

BAD_LUHN = "4242 4242 4242 4241"


async def mail_link(http: aiohttp.ClientSession, store: Store, order_id: str, kind: str) -> str:
    """The link of ``kind`` ("Follow your order at", "All your orders:") in the first
    e-mail about ``order_id``."""

    async def mails() -> Any:
        data = await get_json(http, store.urls["mailbox"] + "/mails.json")
        return [m for m in data["mails"] if m["order_id"] == order_id]

    body = (await eventually(mails, f"an e-mail about {order_id}"))[0]["body"]
    match = re.search(re.escape(kind) + r" (\S+)", body)
    assert match is not None, body
    return match.group(1)


@pytest.mark.parametrize("broker_kind", ["kiltmq"])
async def test_basket_checkout_checks_cancel_and_refund(
    store: Store, browser: Any, http: aiohttp.ClientSession  # noqa: F811
) -> None:
    url = store.urls["web store"]
    page = await new_page(browser)
    await accept_dialogs(page)
    await page.goto(url)
    # Every page of the store links to the others; the shop's pages to each other.
    sites = {await a.inner_text(): await a.get_attribute("href")
             for a in await page.locator("#sites a").all()}
    assert sites["workshop"] == store.urls["workshop"]
    assert sites["order board"] == store.urls["order board"] and len(sites) == 7
    assert await page.locator("#shopnav a[href='/basket']").count() == 1
    # The catalogue: a swatch drawn from each tartan's thread count.
    assert await page.locator("a.product svg.tartan-swatch").count() == 6
    assert "from £340.00" in await page.inner_text("a.product[data-tartan='Black Watch']")

    # An empty basket says so.
    await page.goto(url + "/basket")
    await page.wait_for_selector("#empty-basket")

    # Two kilts in the basket, one taken out again; totals in pounds.
    await add_to_basket(page, url, "Royal Stewart", style="Box-pleated", size="L", waist="90")
    await add_to_basket(page, url, "Black Watch", style="Casual 5-yard", qty="2")
    assert await page.inner_text("#basket-total") == "£1,190.00"  # 510 + 2 x 340
    assert await page.inner_text("#basket-count") == "3"
    await screenshot(page, "basket.png")
    await page.click("#basket tr[data-line='1'] button.remove")
    await page.wait_for_selector("#basket tr[data-line='1']", state="detached")
    assert await page.inner_text("#basket-total") == "£510.00"

    # Checkout checks fields as they are typed.
    await page.click("#to-checkout")
    await fill_checkout(page, BAD_LUHN, email="jamie-at-lallybroch", postcode="NOWHERE")
    assert "e-mail address" in await page.inner_text("#check-email")
    assert "UK postcode" in await page.inner_text("#check-postcode")
    assert "isn't valid" in await page.inner_text("#check-card_number")
    await page.fill("#checkout input[name=email]", "jamie@lallybroch.example")
    await page.fill("#checkout input[name=postcode]", "IV1 1AA")
    assert await page.inner_text("#check-email") == ""
    assert await page.inner_text("#check-postcode") == ""
    await screenshot(page, "checkout.png", full_page=True)
    await page.click("#place-order")  # refused by the page itself: still here
    assert page.url == url + "/checkout"
    assert await page.get_attribute("#checkout input[name=card_number]",
                                    "aria-invalid") == "true"
    # The server refuses it too (without the page's checks), keeping what was typed.
    await page.evaluate("document.getElementById('checkout').submit()")
    await page.wait_for_selector("#form-error")
    assert "Card number is not a valid card number" in await page.inner_text("#form-error")
    assert await page.input_value("#checkout input[name=full_name]") == "Jamie Fraser"
    assert await page.input_value("#checkout input[name=card_number]") == BAD_LUHN
    assert await page.input_value("#checkout input[name=postcode]") == "IV1 1AA"
    assert await page.inner_text("#checkout-total") == "£510.00"  # the basket is kept
    await page.fill("#checkout input[name=card_number]", samples.APPROVED_CARD)
    await page.click("#place-order")
    await page.wait_for_selector("#state:text('approved')")
    assert "£510.00" in await page.inner_text("#status")
    assert "Box-pleated" in await page.inner_text("#status")

    # Cancelled before the workshop starts: the workshop cancels, billing refunds.
    await page.click("#cancel-order")
    await page.wait_for_selector("#state:text('refunded')")
    assert "Refunded £510.00" in await page.inner_text("#refund")
    assert "cancelled" in await page.inner_text("ol.timeline")
    await screenshot(page, "order-refunded.png", full_page=True)
    refunds = (await get_json(http, store.urls["payment gateway"] + "/refunds"))["refunds"]
    assert [(r["idempotency_key"], r["status"], r["amount_pence"]) for r in refunds] == [
        ("refund-web-1", "refunded", 51_000)]
    jobs = await get_json(http, store.urls["workshop"] + "/jobs.json")
    assert jobs == {"todo": [], "done": []}

    # The customer's order list: only from the link in the e-mail, read in the mailbox
    # (the status page doesn't give it: anyone may check out with any e-mail address).
    assert await page.locator("a[href*='/my-orders/']").count() == 0
    orders_link = await mail_link(http, store, "web-1", "All your orders:")
    mailbox = await new_page(browser)
    await mailbox.goto(store.urls["mailbox"])
    await mailbox.locator(f".mail[data-order='web-1'] a[href='{orders_link}']").first.click()
    await mailbox.wait_for_url(orders_link)
    page = mailbox
    row = page.locator("#my-orders tr[data-order='web-1']")
    assert "refunded" in await row.inner_text()
    assert "£510.00" in await row.inner_text()
    await screenshot(page, "my-orders.png")

    # The basket was emptied by the checkout.
    await page.goto(url + "/checkout")
    await page.wait_for_selector("#empty-checkout")


@pytest.mark.parametrize("broker_kind", ["kiltmq"])
async def test_declined_then_another_card_workshop_start_and_board_paths(
    store: Store, browser: Any, http: aiohttp.ClientSession  # noqa: F811
) -> None:
    url = store.urls["web store"]
    page = await new_page(browser)
    await accept_dialogs(page)
    await add_to_basket(page, url, "Isle of Skye")
    await page.click("#to-checkout")
    await fill_checkout(page, samples.DECLINED_CARD)
    await page.click("#place-order")
    await page.wait_for_selector("#state:text('declined')")
    declined_url = page.url

    # Pay with another card: checked as typed, then a new order of the same kilt.
    await page.fill("#pay-again input[name=card_number]", BAD_LUHN)
    assert "isn't valid" in await page.inner_text("#check-card_number")
    await page.fill("#pay-again input[name=card_number]", samples.APPROVED_CARD)
    await page.click("#pay-with-card")
    await page.wait_for_selector("#state:text('approved')")
    assert page.url != declined_url
    assert "Isle of Skye" in await page.inner_text("#status")
    await page.goto(declined_url)
    await page.wait_for_selector("#paid-again")
    assert await page.locator("#pay-again").count() == 0

    # MacGrudder starts the kilt: the customer can no longer cancel it.
    workshop = await new_page(browser)
    await workshop.goto(store.urls["workshop"])
    await workshop.click("#start-web-2")
    await workshop.wait_for_selector("tr[data-order='web-2'][data-started='yes']")
    await page.goto(url + "/orders/" + await _token(store, 2))
    await page.wait_for_selector("#state:text('started')")
    assert await page.locator("#cancel-order").count() == 0
    # "Kilt finished" asks first: "Cancel" leaves the kilt on the loom...
    answers: list[str] = []

    async def answer(dialog: Any) -> None:
        answers.append(dialog.message)
        await (dialog.dismiss() if len(answers) == 1 else dialog.accept())

    workshop.on("dialog", answer)
    await workshop.click("#finish-web-2")
    assert "Kilt finished for order web-2?" in answers[0]
    assert (await get_json(http, store.urls["workshop"] + "/jobs.json"))["todo"] == ["web-2"]
    # ... "OK" finishes it.
    await workshop.click("#finish-web-2")
    await workshop.wait_for_selector("#done tr[data-order='web-2']")
    await page.wait_for_selector("#state:text('shipped')")

    # The board: each order's path through the services, the queues and their depths.
    async def path_complete() -> Any:
        data = await get_json(http, store.urls["order board"] + "/orders.json")
        paths = {o["order_id"]: o["path"] for o in data["orders"]}
        services = {step["service"] for step in paths.get("web-2", [])}
        return {"normalizer", "validator", "billing", "workshop", "shipping"} <= services

    await eventually(path_complete, "web-2's message path on the board")
    board = await new_page(browser)
    await board.goto(store.urls["order board"])
    await board.click("#path-web-2 summary")
    path = await board.inner_text("#path-web-2")
    prefix = store.prefix
    for service, queue in (("normalizer", "normalizer"), ("billing", "billing"),
                           ("workshop", "workshop"), ("shipping", "shipping")):
        assert service in path
        assert f"{prefix}.{queue}" in path
    assert "order.shipped.web" in path
    queues = board.locator("#queues [data-queue-key]")
    assert await queues.count() == len(store.service("board").topology.queues)
    assert await board.locator("#queues [data-queue-key='dead-letters']").count() == 1
    await board.wait_for_selector("#no-dead-letters")
    await screenshot(board, "board-path.png", full_page=True)


async def _token(store: Store, number: int) -> str:
    row = store.service("webstore").db.query_one(
        "SELECT token FROM orders WHERE number = ?", (number,))
    assert row is not None
    return str(row["token"])
