"""The store's non-messaging parts over their real protocols: the payment gateway
(HTTP), the CRM (XML-RPC), the mailer and the mailbox (SMTP), the command line."""

from __future__ import annotations

import asyncio
import contextlib
import xmlrpc.client
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from kiltstore import samples
from kiltstore.cli import build_parser, settings_from
from kiltstore.config import SERVICES, Settings
from kiltstore.domain import OrderEvent, State
from kiltstore.services.base import Service
from kiltstore.services.crm import CRM
from kiltstore.services.crm_adapter import record_body
from kiltstore.services.mailbox import Mailbox
from kiltstore.services.mailer import compose, send_mail
from kiltstore.services.payment_gateway import PaymentGateway, decide
from kiltstore.translators import translate_crm

TIMEOUT = 20.0
S = TypeVar("S", bound=Service)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, port=0, smtp_port=0)


@contextlib.asynccontextmanager
async def running(service: S) -> AsyncIterator[S]:
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[PaymentGateway]:
    async with running(PaymentGateway(settings)) as service:
        yield service


@pytest.fixture
async def crm(settings: Settings) -> AsyncIterator[CRM]:
    async with running(CRM(settings)) as service:
        yield service


@pytest.fixture
async def mailbox(settings: Settings) -> AsyncIterator[Mailbox]:
    async with running(Mailbox(settings)) as service:
        yield service


@pytest.mark.parametrize(
    ("card", "amount", "answer"),
    [
        ("4242424242424242", 42_000, ("approved", "")),
        ("4000000000000002", 42_000, ("declined", "card declined by the issuer")),
        ("4000000000009995", 42_000, ("declined", "insufficient funds")),
        ("4000000000000069", 42_000, ("declined", "expired card")),
        ("4242424242424241", 42_000, ("declined", "invalid card number")),
        ("4242424242424242", 1_000_001, ("declined", "amount over the card's limit")),
    ],
)
def test_gateway_decides_by_card(card: str, amount: int, answer: tuple[str, str]) -> None:
    assert decide(card, amount) == answer


async def test_gateway_charges_once_per_idempotency_key(gateway: PaymentGateway) -> None:
    url = gateway.urls["payment gateway"]
    charge = {"idempotency_key": "web-1", "amount_pence": 42_000,
              "card_number": "4242424242424242", "description": "a kilt"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http:
        answers = []
        for _ in range(2):
            async with http.post(url + "/charges", json=charge) as response:
                assert response.status == 200
                answers.append(await response.json())
        async with http.post(url + "/charges", json={"amount_pence": 1}) as response:
            assert response.status == 400
        async with http.get(url + "/charges") as response:
            listed = await response.json()
        async with http.get(url + "/") as response:
            assert "web-1" in await response.text()
    assert answers[0]["status"] == "approved"
    assert answers[1]["charge_id"] == answers[0]["charge_id"]
    assert (answers[0]["replayed"], answers[1]["replayed"]) == (False, True)
    assert [(c["idempotency_key"], c["requests"]) for c in listed["charges"]] == [("web-1", 2)]


def _crm_session(url: str) -> tuple[list[dict[str, Any]], str]:
    with xmlrpc.client.ServerProxy(url, allow_none=True) as proxy:
        customer_id = proxy.crm.add_customer(samples.CRM_CUSTOMER)
        proxy.crm.add_order(customer_id, [samples.CRM_ITEM], samples.APPROVED_CARD, "rush")
        try:
            proxy.crm.add_order(999, [samples.CRM_ITEM], samples.APPROVED_CARD, "")
        except xmlrpc.client.Fault as fault:
            error = f"{fault.faultCode} {fault.faultString}"
        else:
            error = "no fault"
        orders: Any = proxy.crm.orders_since(0, 10)
        assert proxy.crm.orders_since(orders[-1]["id"], 10) == []
        methods: Any = proxy.system.listMethods()
        assert "crm.orders_since" in methods
        return orders, error


async def test_crm_xmlrpc_api_and_adapter_format(crm: CRM) -> None:
    orders, error = await asyncio.wait_for(
        asyncio.to_thread(_crm_session, crm.urls["CRM XML-RPC"]), TIMEOUT
    )
    assert error == "404 no customer 999"
    assert len(orders) == 1
    # What the channel adapter publishes for the record translates to the sample order.
    order = translate_crm(record_body(orders[0]))
    expected = translate_crm(samples.crm_body(order_id=orders[0]["id"]))
    assert replace(order, placed_at="", notes="") == replace(expected, placed_at="", notes="")
    assert order.notes == "rush"


async def test_mailer_sends_and_mailbox_keeps_one_copy(mailbox: Mailbox) -> None:
    event = OrderEvent(state=State.RECEIVED, order=translate_crm(samples.crm_body(4)))
    assert compose(event, sender="shop@example.org", store_url="http://shop") is None
    shipped = event.then(State.SHIPPED, detail={"tracking": "HP123", "carrier": "Highland"})
    mail = compose(shipped, sender="shop@example.org", store_url="http://shop")
    assert mail is not None
    assert mail["Message-ID"] == "<crm-4.shipped@kiltstore>"
    assert "HP123" in str(mail["Subject"])
    for _ in range(2):  # sent twice, as after a crash between sending and recording
        await asyncio.wait_for(
            asyncio.to_thread(send_mail, "127.0.0.1", mailbox.smtp_port, mail), TIMEOUT
        )
    mails = mailbox.mails("jamie@lallybroch.example")
    assert len(mails) == 1
    assert mails[0]["order_id"] == "crm-4"
    assert "tracking number HP123" in mails[0]["body"]
    invalid = event.then(State.INVALID, reasons=("we don't ship to 'ZZ'",))
    invalid_mail = compose(invalid, sender="s@example.org", store_url="http://shop")
    assert invalid_mail is not None
    assert "we don't ship to 'ZZ'" in invalid_mail.get_content()


def test_command_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    parser = build_parser()
    monkeypatch.setenv("AMQP_URL", "amqp://u:p@rabbit.example/")
    monkeypatch.setenv("KILTSTORE_PREFIX", "shop2")
    args = parser.parse_args(["billing", "--payment-url", "http://pay:1", "--data-dir",
                              str(tmp_path)])
    settings = settings_from(args)
    assert (settings.amqp_url, settings.prefix, settings.payment_url, settings.data_dir) == (
        "amqp://u:p@rabbit.example/", "shop2", "http://pay:1", tmp_path,
    )
    assert settings_from(parser.parse_args(["webstore"])).port == 8080
    for name in SERVICES:
        assert parser.parse_args([name]).service == name
    assert parser.parse_args(["demo", "--any-ports"]).any_ports


MALFORMED_CALLS: dict[str, tuple[bytes, int]] = {
    "not XML": (b"hello", -32700),
    "an empty body": (b"", -32700),
    "truncated XML": (b"<?xml version='1.0'?><methodCall><methodName>crm.get_order", -32700),
    "an out-of-range i8": (
        b"<?xml version='1.0'?><methodCall><methodName>crm.get_order</methodName><params>"
        b"<param><value><i8>99999999999999999999999</i8></value></param></params></methodCall>",
        400,
    ),
    "an unknown method": (
        b"<?xml version='1.0'?><methodCall><methodName>crm.nothing</methodName>"
        b"</methodCall>",
        -32601,
    ),
    "too few arguments": (
        b"<?xml version='1.0'?><methodCall><methodName>crm.get_order</methodName>"
        b"</methodCall>",
        -32602,
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_CALLS))
async def test_crm_answers_malformed_xmlrpc_with_a_fault(crm: CRM, case: str) -> None:
    body, code = MALFORMED_CALLS[case]
    async with aiohttp.ClientSession() as http, http.post(
        crm.urls["CRM XML-RPC"], data=body, headers={"Content-Type": "text/xml"}
    ) as response:
        assert response.status == 200
        text = await response.text()
    with pytest.raises(xmlrpc.client.Fault) as raised:
        xmlrpc.client.loads(text)
    assert raised.value.faultCode == code, raised.value.faultString


def _introspect(url: str) -> tuple[list[str], dict[str, str], list[Any], str]:
    with xmlrpc.client.ServerProxy(url, allow_none=True) as proxy:
        methods: Any = proxy.system.listMethods()
        helps = {name: str(proxy.system.methodHelp(name)) for name in methods}
        signature: Any = proxy.system.methodSignature("crm.add_order")
        try:
            proxy.system.methodHelp("crm.nothing")
        except xmlrpc.client.Fault as fault:
            error = f"{fault.faultCode} {fault.faultString}"
        else:
            error = "no fault"
        return methods, helps, signature, error


async def test_crm_api_describes_itself(crm: CRM) -> None:
    methods, helps, signature, error = await asyncio.wait_for(
        asyncio.to_thread(_introspect, crm.urls["CRM XML-RPC"]), TIMEOUT
    )
    assert {"crm.add_customer", "crm.add_order", "crm.get_order", "crm.orders_since",
            "crm.set_order_status", "system.listMethods", "system.methodHelp"} <= set(methods)
    assert all(helps[name] for name in methods), helps
    assert "customer_id, items, card, rep_notes" in helps["crm.add_order"]
    assert signature == [["int", "int", "array", "string", "string"]]
    assert error == "-32601 no method 'crm.nothing'"


def _refused(url: str, customer: dict[str, Any], item: dict[str, Any]) -> str:
    with xmlrpc.client.ServerProxy(url, allow_none=True) as proxy:
        try:
            customer_id = proxy.crm.add_customer(customer)
            proxy.crm.add_order(customer_id, [item], samples.APPROVED_CARD, "")
        except xmlrpc.client.Fault as fault:
            return f"{fault.faultCode} {fault.faultString}"
        orders: Any = proxy.crm.orders_since(0, 10)
        return f"accepted; {len(orders)} orders"


async def test_crm_refuses_what_the_store_would_throw_away(crm: CRM) -> None:
    url = crm.urls["CRM XML-RPC"]
    lots = await asyncio.to_thread(_refused, url, samples.CRM_CUSTOMER,
                                   dict(samples.CRM_ITEM, qty="lots"))
    assert lots == "400 quantity of CRM item 1 is not a number: 'lots'"
    long_name = await asyncio.to_thread(
        _refused, url, dict(samples.CRM_CUSTOMER, first_name="A" * 10_000), samples.CRM_ITEM
    )
    assert long_name == "400 first_name is too long (10,000 characters; at most 100)"
    assert crm.db.query("SELECT * FROM orders") == []


async def test_crm_refuses_an_address_or_a_quantity_the_validator_would(crm: CRM) -> None:
    """Limits as the store reads the order: the street lines joined, every kilt counted."""
    url = crm.urls["CRM XML-RPC"]
    street = "12 " + "Long Lane " * 30  # 303 characters: under the address's 400
    address = f"{street}\nInverness\nIV1 1AA\nScotland"
    long_street = await asyncio.to_thread(
        _refused, url, dict(samples.CRM_CUSTOMER, address=address), samples.CRM_ITEM)
    assert long_street == "400 address street is too long (302 characters; at most 200)"
    two_lines = f"{street[:150]}\n{street[150:]}\nInverness\nIV1 1AA\nScotland"
    joined = await asyncio.to_thread(
        _refused, url, dict(samples.CRM_CUSTOMER, address=two_lines), samples.CRM_ITEM)
    assert joined.startswith("400 address street is too long (30")
    too_many = await asyncio.to_thread(
        _refused, url, samples.CRM_CUSTOMER, dict(samples.CRM_ITEM, qty=11))
    assert too_many == ("400 kilt 1: quantity 11 must be between 1 and 10; "
                        "11 kilts in one order; the most we take is 10")
    assert crm.db.query("SELECT * FROM orders") == []
    assert len(crm.db.query("SELECT * FROM customers")) == 1  # the last, valid customer


async def _page(url: str) -> str:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http, \
            http.get(url) as response:
        assert response.status == 200
        return await response.text()


async def test_crm_page_says_when_it_has_no_customers_or_orders(crm: CRM) -> None:
    page = await _page(crm.urls["CRM"])
    assert 'id="no-orders"' in page and 'id="no-customers"' in page
    assert 'id="orders"' not in page and 'id="customers"' not in page
    with xmlrpc.client.ServerProxy(crm.urls["CRM XML-RPC"], allow_none=True) as proxy:
        customer_id: Any = await asyncio.to_thread(proxy.crm.add_customer, samples.CRM_CUSTOMER)
    page = await _page(crm.urls["CRM"])
    assert 'id="no-orders"' in page and 'id="no-customers"' not in page
    assert f'<tr data-customer="{customer_id}">' in page
    with xmlrpc.client.ServerProxy(crm.urls["CRM XML-RPC"], allow_none=True) as proxy:
        await asyncio.to_thread(proxy.crm.add_order, customer_id, [samples.CRM_ITEM],
                                samples.APPROVED_CARD, "")
    page = await _page(crm.urls["CRM"])
    assert 'id="no-orders"' not in page and 'id="orders"' in page


async def test_mailbox_page_says_when_it_has_no_mail(mailbox: Mailbox) -> None:
    page = await _page(mailbox.urls["mailbox"])
    assert 'id="no-mails"' in page and "0 messages" not in page
    event = OrderEvent(state=State.SHIPPED, order=translate_crm(samples.crm_body(4)))
    mail = compose(event, sender="shop@example.org", store_url="http://shop")
    assert mail is not None
    await asyncio.wait_for(
        asyncio.to_thread(send_mail, "127.0.0.1", mailbox.smtp_port, mail), TIMEOUT)
    page = await _page(mailbox.urls["mailbox"])
    assert 'id="no-mails"' not in page and '<p class="muted" id="mail-count">1 message<' in page


def _answers(url: str, answers: list[tuple[str, list[str]]]) -> Any:
    with xmlrpc.client.ServerProxy(url, allow_none=True) as proxy:
        customer_id = proxy.crm.add_customer(samples.CRM_CUSTOMER)
        order_id = proxy.crm.add_order(customer_id, [samples.CRM_ITEM], samples.APPROVED_CARD, "")
        for status, reasons in answers:
            proxy.crm.set_order_status(order_id, status, "crm-1", reasons)
        order: Any = proxy.crm.get_order(order_id)
        return order["status"]


async def test_crm_keeps_the_furthest_answer(crm: CRM) -> None:
    """The payment's answer (approved, declined) is not undone by the validator's
    (accepted) arriving after it."""
    url = crm.urls["CRM XML-RPC"]
    late = await asyncio.to_thread(_answers, url, [("approved", []), ("accepted", [])])
    assert late == {"status": "approved", "order_id": "crm-1", "reasons": []}
    declined = await asyncio.to_thread(
        _answers, url, [("accepted", []), ("declined", ["payment declined: expired card"])])
    assert declined == {"status": "declined", "order_id": "crm-1",
                        "reasons": ["payment declined: expired card"]}
