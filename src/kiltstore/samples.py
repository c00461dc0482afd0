"""Sample orders in each source's own format: the same kilt ordered three ways.

Used by the tests and handy for trying translators by hand. Jamie orders one Black
Watch kilt, size L, waist 34 in (86.4 cm), hip 38 in (96.5 cm), length 24 in (61 cm),
delivered to Inverness, paid with a test card.
"""

from __future__ import annotations

import datetime as dt
import json
import xmlrpc.client
from typing import Any

from kiltstore.services.crm_adapter import record_body
from kiltstore.services.phone import slip_text
from kiltstore.services.webstore import checkout_document

APPROVED_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"

WEB_FORM: dict[str, str] = {
    "tartan": "Black Watch",
    "size": "L",
    "waist_cm": "86.4",
    "hip_cm": "96.5",
    "length_cm": "61",
    "qty": "1",
    "full_name": "Jamie Fraser",
    "email": "jamie@lallybroch.example",
    "phone": "+44 1463 555 0101",
    "line1": "1 High Street",
    "line2": "",
    "town": "Inverness",
    "postcode": "IV1 1AA",
    "country": "GB",
    "card_number": APPROVED_CARD,
    "notes": "",
}

PHONE_FORM: dict[str, str] = {
    "taken_by": "Morag",
    "name": "Jamie Fraser",
    "email": "jamie@lallybroch.example",
    "phone": "+44 1463 555 0101",
    "street": "1 High Street",
    "town": "Inverness",
    "postcode": "IV1 1AA",
    "country": "GB",
    "tartan": "Black Watch",
    "size": "L",
    "waist": "34",
    "hip": "38",
    "length": "24",
    "unit": "in",
    "qty": "1",
    "card": APPROVED_CARD,
    "notes": "",
}

CRM_CUSTOMER: dict[str, str] = {
    "first_name": "Jamie",
    "last_name": "Fraser",
    "email": "jamie@lallybroch.example",
    "telephone": "+44 1463 555 0101",
    "address": "1 High Street\nInverness\nIV1 1AA\nScotland",
}

CRM_ITEM: dict[str, Any] = {
    "pattern": "Black Watch",
    "kilt_size": "L",
    "waist_in": 34.0,
    "hips_in": 38.0,
    "drop_in": 24.0,
    "qty": 1,
    "price": "420.00",
}


def web_body(number: int = 1, **changes: str) -> bytes:
    """The web store's checkout message for :data:`WEB_FORM` (with ``changes``)."""
    return json.dumps(checkout_document(number, {**WEB_FORM, **changes})).encode()


def phone_body(slip: int = 1, **changes: str) -> bytes:
    """The phone slip for :data:`PHONE_FORM` (with ``changes``)."""
    return slip_text(slip, "2024-05-01T10:00:00+00:00", {**PHONE_FORM, **changes}).encode()


def crm_record(order_id: int = 1, customer_id: int = 1, **item_changes: Any) -> dict[str, Any]:
    """A CRM order record as ``crm.orders_since`` returns it."""
    return {
        "id": order_id,
        "entered": xmlrpc.client.DateTime(dt.datetime(2024, 5, 1, 10, 0, 0)),
        "rep": "Hamish",
        "customer": {"id": customer_id, **CRM_CUSTOMER},
        "items": [{**CRM_ITEM, **item_changes}],
        "card": APPROVED_CARD,
        "rep_notes": "",
    }


def crm_body(order_id: int = 1, **item_changes: Any) -> bytes:
    """The CRM channel adapter's message for :func:`crm_record`."""
    return record_body(crm_record(order_id, **item_changes))
