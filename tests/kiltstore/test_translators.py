"""Message Translators: each source's format to the canonical order."""

from __future__ import annotations

import json
import xmlrpc.client
from typing import Any

import pytest

from kiltstore import samples
from kiltstore.domain import CanonicalOrder, Source
from kiltstore.translators import (
    CRM_TYPE,
    PHONE_TYPE,
    WEB_TYPE,
    TranslationError,
    parse_kilt_line,
    translate,
    translate_crm,
    translate_phone,
    translate_web,
)


def essence(order: CanonicalOrder) -> dict[str, Any]:
    """What the customer ordered, without where and when it was entered."""
    data = order.to_dict()
    for key in ("order_id", "source", "source_ref", "placed_at", "notes"):
        data.pop(key)
    return data


def test_the_same_order_from_three_sources_has_one_canonical_form() -> None:
    web = translate(WEB_TYPE, samples.web_body(7))
    crm = translate(CRM_TYPE, samples.crm_body(7))
    phone = translate(PHONE_TYPE, samples.phone_body(7))
    assert essence(web) == essence(crm) == essence(phone)
    assert (web.order_id, crm.order_id, phone.order_id) == ("web-7", "crm-7", "phone-7")
    assert (web.source, crm.source, phone.source) == (Source.WEB, Source.CRM, Source.PHONE)
    line = web.lines[0]
    assert (line.tartan, line.size, line.waist_cm, line.hip_cm, line.length_cm) == (
        "Black Watch", "L", 86.4, 96.5, 61.0,
    )
    assert line.unit_price_pence == 42_000
    assert web.address.country == crm.address.country == "GB"
    assert web.payment.card_number == "4242424242424242"


def test_crm_translation_converts_units_and_address() -> None:
    order = translate_crm(samples.crm_body(3, waist_in=40, price="1,045.50"))
    assert order.lines[0].waist_cm == 101.6
    assert order.lines[0].unit_price_pence == 104_550
    assert order.address.street == "1 High Street"
    assert order.address.city == "Inverness"
    assert order.address.postcode == "IV1 1AA"
    assert order.placed_at == "2024-05-01T10:00:00"
    assert order.customer.name == "Jamie Fraser"


def test_phone_kilt_line_units_and_size_from_waist() -> None:
    line = parse_kilt_line(" 2 x Royal Stewart, waist 80cm, hip 92cm, length 58cm")
    assert (line.quantity, line.tartan, line.size, line.waist_cm) == (2, "Royal Stewart", "S", 80)
    assert line.unit_price_pence == 45_000
    inches = parse_kilt_line("1 x Black Watch, size m, waist 33in, hip 37 in, length 23\"")
    assert (inches.size, inches.waist_cm, inches.hip_cm, inches.length_cm) == (
        "M", 83.8, 94.0, 58.4,
    )


def test_canonical_order_survives_json() -> None:
    order = translate_web(samples.web_body(1))
    assert CanonicalOrder.from_dict(json.loads(json.dumps(order.to_dict()))) == order


@pytest.mark.parametrize(
    ("message_type", "body", "reason"),
    [
        (None, b"{}", "no type property"),
        ("fax.v1", b"...", "no translator for message type 'fax.v1'"),
        (WEB_TYPE, b"{not json", "not valid JSON"),
        (WEB_TYPE, b"[1, 2]", "web checkout document is missing or not a record"),
        (WEB_TYPE, json.dumps({"order_number": 1, "customer": {}, "ship_to": {},
                               "cart": []}).encode(), "cart is missing or empty"),
        (CRM_TYPE, b"<methodCall><params>", "not valid XML-RPC"),
        (CRM_TYPE, xmlrpc.client.dumps((1, 2), methodname="crm.order").encode(),
         "should hold one record"),
        (PHONE_TYPE, b"Dear MacGrudder, one kilt please", "must start with"),
        (PHONE_TYPE, b"\xff\xfe", "not UTF-8"),
    ],
)
def test_untranslatable_messages_say_why(
    message_type: str | None, body: bytes, reason: str
) -> None:
    with pytest.raises(TranslationError) as info:
        translate(message_type, body)
    assert reason in info.value.reason


def test_web_item_with_text_for_a_number() -> None:
    doc = json.loads(samples.web_body(1))
    doc["cart"][0]["qty"] = "lots"
    with pytest.raises(TranslationError, match="quantity of cart item 1 is not a number"):
        translate_web(json.dumps(doc).encode())


def test_crm_address_too_short() -> None:
    record = samples.crm_record(1)
    record["customer"]["address"] = "Inverness"
    body = xmlrpc.client.dumps((record,), methodname="crm.order").encode()
    with pytest.raises(TranslationError, match="street, town, postcode and country"):
        translate_crm(body)


def test_phone_slip_missing_line_and_bad_kilt_line() -> None:
    no_card = samples.phone_body(1).replace(b"Card: 4242 4242 4242 4242\n", b"")
    with pytest.raises(TranslationError, match="no 'Card:' line"):
        translate_phone(no_card)
    bad_kilt = samples.phone_body(1).replace(b"waist 34in", b"waist big")
    with pytest.raises(TranslationError, match="cannot read kilt line"):
        translate_phone(bad_kilt)
