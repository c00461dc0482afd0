"""Validation of canonical orders: tartan, size, measurements, address, quantity.

:func:`validate` returns every problem it finds, worded for the customer (they are
sent to them by e-mail and shown on the order's status page); an empty list means
the order is valid. The validator service routes on it: a Content-Based Router
sending each order to ``order.valid`` or ``order.invalid``.
"""

from __future__ import annotations

import re

from kiltstore.domain import (
    SHIPPING_COUNTRIES,
    SIZES,
    STYLES,
    TARTANS,
    CanonicalOrder,
    OrderLine,
    unit_price,
)
from kiltstore.domain import luhn_ok as luhn_ok  # re-exported: the card check
from kiltstore.limits import order_problems

#: Plausible ranges of a person's measurements, in centimetres.
WAIST_RANGE = (55.0, 160.0)
HIP_RANGE = (65.0, 175.0)
LENGTH_RANGE = (40.0, 75.0)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_UK_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$", re.IGNORECASE)
_US_ZIP = re.compile(r"^\d{5}(-\d{4})?$")


def _check_line(index: int, line: OrderLine) -> list[str]:
    where = f"kilt {index}"
    problems = []
    if line.tartan not in TARTANS:
        problems.append(
            f"{where}: we don't weave the tartan {line.tartan!r} "
            f"(we weave {', '.join(sorted(TARTANS))})"
        )
    elif line.style not in STYLES:
        problems.append(
            f"{where}: we don't make the style {line.style!r} (we make {', '.join(STYLES)})"
        )
    elif line.unit_price_pence != unit_price(line.tartan, line.style):
        problems.append(
            f"{where}: price {line.unit_price_pence} p doesn't match the price list "
            f"({unit_price(line.tartan, line.style)} p)"
        )
    if line.size not in SIZES:
        problems.append(f"{where}: unknown size {line.size!r} (sizes: {', '.join(SIZES)})")
    for label, value, (low, high) in (
        ("waist", line.waist_cm, WAIST_RANGE),
        ("hip", line.hip_cm, HIP_RANGE),
        ("length", line.length_cm, LENGTH_RANGE),
    ):
        if not low <= value <= high:
            problems.append(f"{where}: {label} {value:g} cm is outside {low:g}-{high:g} cm")
    if line.size in SIZES and WAIST_RANGE[0] <= line.waist_cm <= WAIST_RANGE[1]:
        low, high = SIZES[line.size]
        if not low <= line.waist_cm <= high:
            problems.append(
                f"{where}: a {line.waist_cm:g} cm waist doesn't fit size {line.size} "
                f"({low}-{high} cm)"
            )
    if HIP_RANGE[0] <= line.hip_cm <= HIP_RANGE[1] and line.hip_cm < line.waist_cm - 10:
        problems.append(f"{where}: hip {line.hip_cm:g} cm is much smaller than the waist")
    return problems


def validate(order: CanonicalOrder) -> list[str]:
    """Every reason ``order`` can't be made and shipped; empty if it can."""
    problems: list[str] = order_problems(order)  # lengths and quantities, as at the sources
    if not order.customer.name.strip():
        problems.append("the customer's name is missing")
    if not _EMAIL.match(order.customer.email):
        problems.append(f"the e-mail address {order.customer.email!r} is not valid")
    address = order.address
    if not address.street.strip():
        problems.append("the street address is missing")
    if not address.city.strip():
        problems.append("the town or city is missing")
    if address.country not in SHIPPING_COUNTRIES:
        problems.append(
            f"we don't ship to {address.country!r} "
            f"(we ship to {', '.join(sorted(SHIPPING_COUNTRIES))})"
        )
    if not address.postcode.strip():
        problems.append("the postcode is missing")
    elif address.country == "GB" and not _UK_POSTCODE.match(address.postcode.strip()):
        problems.append(f"{address.postcode!r} is not a UK postcode")
    elif address.country == "US" and not _US_ZIP.match(address.postcode.strip()):
        problems.append(f"{address.postcode!r} is not a US ZIP code")
    if not order.lines:
        problems.append("the order has no kilts")
    for index, line in enumerate(order.lines, 1):
        problems.extend(_check_line(index, line))
    if not luhn_ok(order.payment.card_number):
        problems.append("the card number is not valid")
    return problems
