"""Message Translators: one per order source, each to the Canonical Data Model.

The three sources speak their own formats, chosen by their own silos:

``web``   ``application/json``, type ``webstore.checkout.v1``: the web store's checkout
          document, measurements in centimetres, prices in pence.
``crm``   ``text/xml``, type ``crm.order.v1``: the CRM's XML-RPC order record
          (``xmlrpc.client.dumps`` of one struct), measurements in inches, prices as
          pound strings, the address as free text lines ending with the country name.
``phone`` ``text/plain``, type ``phone.slip.v1``: the shop's phone-order slip, one
          ``Key: value`` per line, measurements with units (``86cm`` or ``34in``).

:func:`translate` picks the translator by the message's ``type`` property. Each raises
:class:`TranslationError` with a reason a person can act on; the Normalizer sends such
messages to the invalid-message channel. Translators check structure only (is this an
order at all?); whether the order makes sense is :mod:`kiltstore.validation`'s job.
"""

from __future__ import annotations

import json
import re
import xmlrpc.client
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.parsers.expat import ExpatError

from kiltstore.domain import (
    DEFAULT_STYLE,
    SHIPPING_COUNTRIES,
    TARTANS,
    Address,
    CanonicalOrder,
    Customer,
    OrderLine,
    Payment,
    Source,
    now_iso,
    size_for_waist,
)

WEB_TYPE = "webstore.checkout.v1"
CRM_TYPE = "crm.order.v1"
PHONE_TYPE = "phone.slip.v1"
WEB_CONTENT_TYPE = "application/json"
CRM_CONTENT_TYPE = "text/xml"
PHONE_CONTENT_TYPE = "text/plain; charset=utf-8"

CM_PER_INCH = 2.54


class TranslationError(ValueError):
    """The message cannot be turned into a canonical order; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _digits(text: str) -> str:
    return re.sub(r"[\s-]", "", text)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise TranslationError(f"{what} is not a number: {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TranslationError(f"{what} is not a number: {value!r}") from None


def _integer(value: Any, what: str) -> int:
    number = _number(value, what)
    if number != int(number):
        raise TranslationError(f"{what} is not a whole number: {value!r}")
    return int(number)


def _text(data: dict[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if value is None:
        raise TranslationError(f"{what} is missing")
    if not isinstance(value, str | int):
        raise TranslationError(f"{what} is not text: {value!r}")
    return str(value).strip()


def _struct(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TranslationError(f"{what} is missing or not a record")
    return value


# ------------------------------------------------------------------------------ web store


def translate_web(body: bytes) -> CanonicalOrder:
    """The web store's checkout JSON."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TranslationError(f"web checkout is not valid JSON: {exc}") from None
    doc = _struct(doc, "web checkout document")
    number = _text(doc, "order_number", "order number")
    customer = _struct(doc.get("customer"), "customer")
    ship_to = _struct(doc.get("ship_to"), "shipping address")
    cart = doc.get("cart")
    if not isinstance(cart, list) or not cart:
        raise TranslationError("the cart is missing or empty")
    lines = []
    for index, item in enumerate(cart, 1):
        item = _struct(item, f"cart item {index}")
        lines.append(
            OrderLine(
                tartan=_text(item, "tartan", f"tartan of cart item {index}"),
                size=_text(item, "size", f"size of cart item {index}"),
                waist_cm=_number(item.get("waist_cm"), f"waist of cart item {index}"),
                hip_cm=_number(item.get("hip_cm"), f"hip of cart item {index}"),
                length_cm=_number(item.get("length_cm"), f"length of cart item {index}"),
                quantity=_integer(item.get("qty"), f"quantity of cart item {index}"),
                unit_price_pence=_integer(item.get("price_pence"), f"price of cart item {index}"),
                style=str(item.get("style") or DEFAULT_STYLE),
            )
        )
    street = ", ".join(
        part for part in (ship_to.get("line1", ""), ship_to.get("line2", "")) if part
    )
    return CanonicalOrder(
        order_id=f"web-{number}",
        source=Source.WEB,
        source_ref=number,
        placed_at=str(doc.get("created") or now_iso()),
        customer=Customer(
            name=_text(customer, "full_name", "customer name"),
            email=_text(customer, "email", "customer e-mail"),
            phone=str(customer.get("phone", "")).strip(),
        ),
        address=Address(
            street=str(street).strip(),
            city=_text(ship_to, "town", "town"),
            postcode=_text(ship_to, "postcode", "postcode"),
            country=_text(ship_to, "country", "country").upper(),
        ),
        lines=tuple(lines),
        payment=Payment(card_number=_digits(_text(doc, "card_number", "card number"))),
        notes=str(doc.get("notes", "")).strip(),
    )


# ------------------------------------------------------------------------------ CRM

#: Country names as the sales rep types them, to ISO codes.
_COUNTRY_NAMES: dict[str, str] = {
    **{name.lower(): code for code, name in SHIPPING_COUNTRIES.items()},
    **{code.lower(): code for code in SHIPPING_COUNTRIES},
    "uk": "GB",
    "scotland": "GB",
    "england": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "great britain": "GB",
    "usa": "US",
    "united states of america": "US",
    "eire": "IE",
}


def _country_code(name: str) -> str:
    """Map a country name to its code; an unknown name is kept as typed (validation
    rejects it with a clear message)."""
    return _COUNTRY_NAMES.get(name.strip().lower(), name.strip())


def _pence(value: Any, what: str) -> int:
    try:
        amount = Decimal(str(value).replace("£", "").replace(",", "").strip())
    except InvalidOperation:
        raise TranslationError(f"{what} is not an amount: {value!r}") from None
    return int((amount * 100).to_integral_value())


def _inches_to_cm(value: Any, what: str) -> float:
    return round(_number(value, what) * CM_PER_INCH, 1)


def translate_crm(body: bytes) -> CanonicalOrder:
    """The CRM's XML-RPC order record."""
    try:
        params, _method = xmlrpc.client.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ExpatError, xmlrpc.client.ResponseError, ValueError) as exc:
        raise TranslationError(f"CRM record is not valid XML-RPC: {exc}") from None
    if len(params) != 1:
        raise TranslationError(f"CRM message should hold one record, not {len(params)}")
    record = _struct(params[0], "CRM order record")
    ref = _text(record, "id", "CRM order id")
    customer = _struct(record.get("customer"), "CRM customer")
    address_lines = [
        line.strip() for line in str(customer.get("address", "")).splitlines() if line.strip()
    ]
    if len(address_lines) < 4:
        raise TranslationError(
            "CRM address needs at least street, town, postcode and country lines, "
            f"got {len(address_lines)}"
        )
    *street_lines, town, postcode, country = address_lines
    items = record.get("items")
    if not isinstance(items, list) or not items:
        raise TranslationError("CRM order has no items")
    lines = []
    for index, item in enumerate(items, 1):
        item = _struct(item, f"CRM item {index}")
        lines.append(
            OrderLine(
                tartan=_text(item, "pattern", f"pattern of CRM item {index}"),
                size=_text(item, "kilt_size", f"size of CRM item {index}").upper(),
                waist_cm=_inches_to_cm(item.get("waist_in"), f"waist of CRM item {index}"),
                hip_cm=_inches_to_cm(item.get("hips_in"), f"hips of CRM item {index}"),
                length_cm=_inches_to_cm(item.get("drop_in"), f"drop of CRM item {index}"),
                quantity=_integer(item.get("qty"), f"quantity of CRM item {index}"),
                unit_price_pence=_pence(item.get("price"), f"price of CRM item {index}"),
            )
        )
    entered = record.get("entered")
    if isinstance(entered, xmlrpc.client.DateTime):
        placed_at = entered.value
        # xmlrpc's compact form 20240131T10:00:00 -> ISO 8601.
        match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})T(.*)", placed_at)
        if match:
            placed_at = f"{match[1]}-{match[2]}-{match[3]}T{match[4]}"
    else:
        placed_at = str(entered or now_iso())
    name = " ".join(
        str(customer.get(key, "")).strip() for key in ("first_name", "last_name")
    ).strip()
    if not name:
        raise TranslationError("CRM customer has no name")
    return CanonicalOrder(
        order_id=f"crm-{ref}",
        source=Source.CRM,
        source_ref=ref,
        placed_at=placed_at,
        customer=Customer(
            name=name,
            email=_text(customer, "email", "CRM customer e-mail"),
            phone=str(customer.get("telephone", "")).strip(),
        ),
        address=Address(
            street=", ".join(street_lines),
            city=town,
            postcode=postcode,
            country=_country_code(country),
        ),
        lines=tuple(lines),
        payment=Payment(card_number=_digits(_text(record, "card", "CRM card number"))),
        notes=str(record.get("rep_notes", "")).strip(),
    )


# ------------------------------------------------------------------------------ phone slip

_KILT_LINE = re.compile(
    r"""^\s*(?P<qty>\d+)\s*x\s*(?P<tartan>[^,]+?)\s*
        (?:,\s*size\s+(?P<size>[A-Za-z]+)\s*)?
        ,\s*waist\s+(?P<waist>[\d.]+)\s*(?P<waist_unit>cm|in|")?\s*
        ,\s*hips?\s+(?P<hip>[\d.]+)\s*(?P<hip_unit>cm|in|")?\s*
        ,\s*length\s+(?P<length>[\d.]+)\s*(?P<length_unit>cm|in|")?\s*$""",
    re.VERBOSE | re.IGNORECASE,
)


def _measure(value: str, unit: str | None) -> float:
    number = float(value)
    if unit and unit.lower() in ("in", '"'):
        return round(number * CM_PER_INCH, 1)
    return number


def parse_kilt_line(text: str) -> OrderLine:
    """``1 x Black Watch, size L, waist 86cm, hip 96cm, length 61cm`` (size optional;
    units cm or in, cm if absent). The price comes from the price list."""
    match = _KILT_LINE.match(text)
    if match is None:
        raise TranslationError(
            f"cannot read kilt line {text.strip()!r}; expected "
            "'1 x Black Watch, size L, waist 86cm, hip 96cm, length 61cm'"
        )
    tartan = " ".join(match["tartan"].split())
    waist = _measure(match["waist"], match["waist_unit"])
    size = (match["size"] or size_for_waist(waist) or "?").upper()
    return OrderLine(
        tartan=tartan,
        size=size,
        waist_cm=waist,
        hip_cm=_measure(match["hip"], match["hip_unit"]),
        length_cm=_measure(match["length"], match["length_unit"]),
        quantity=int(match["qty"]),
        unit_price_pence=TARTANS.get(tartan, 0),
    )


def translate_phone(body: bytes) -> CanonicalOrder:
    """The shop's phone-order slip."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise TranslationError("phone slip is not UTF-8 text") from None
    fields: dict[str, str] = {}
    kilts: list[OrderLine] = []
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip().upper() != "PHONE ORDER SLIP":
        raise TranslationError("phone slip must start with the line 'PHONE ORDER SLIP'")
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if not sep:
            raise TranslationError(f"phone slip line without 'Key:' : {line.strip()!r}")
        key = key.strip().lower()
        if key == "kilt":
            kilts.append(parse_kilt_line(value))
        else:
            fields[key] = value.strip()
    for required in ("slip", "name", "email", "address", "card"):
        if not fields.get(required):
            raise TranslationError(f"phone slip has no '{required.capitalize()}:' line")
    if not kilts:
        raise TranslationError("phone slip has no 'Kilt:' line")
    parts = [part.strip() for part in fields["address"].split(",")]
    if len(parts) < 4:
        raise TranslationError(
            "phone slip address should read 'street, town, postcode, country', "
            f"got {fields['address']!r}"
        )
    *street, town, postcode, country = parts
    return CanonicalOrder(
        order_id=f"phone-{fields['slip']}",
        source=Source.PHONE,
        source_ref=fields["slip"],
        placed_at=fields.get("taken") or now_iso(),
        customer=Customer(
            name=fields["name"], email=fields["email"], phone=fields.get("phone", "")
        ),
        address=Address(
            street=", ".join(street), city=town, postcode=postcode, country=_country_code(country)
        ),
        lines=tuple(kilts),
        payment=Payment(card_number=_digits(fields["card"])),
        notes=fields.get("notes", ""),
    )


# ------------------------------------------------------------------------------ dispatch

#: Message type -> (source it must come from, translator).
TRANSLATORS: dict[str, tuple[Source, Callable[[bytes], CanonicalOrder]]] = {
    WEB_TYPE: (Source.WEB, translate_web),
    CRM_TYPE: (Source.CRM, translate_crm),
    PHONE_TYPE: (Source.PHONE, translate_phone),
}


def translate(message_type: str | None, body: bytes) -> CanonicalOrder:
    """Translate a raw order message, choosing the translator by its ``type`` property."""
    if not message_type:
        raise TranslationError("message has no type property; cannot choose a translator")
    entry = TRANSLATORS.get(message_type)
    if entry is None:
        known = ", ".join(sorted(TRANSLATORS))
        raise TranslationError(f"no translator for message type {message_type!r} (known: {known})")
    _source, translator = entry
    return translator(body)
