"""How long each field of an order may be, and how many kilts it may hold.

Every source checks its own fields against these limits before it accepts an order
(the web store's form, the phone form, the CRM's API), then checks the order as the
store will read it (its canonical form, :func:`order_problems`: a street joined from two
lines, every kilt of a basket) exactly as the validator does, so no source accepts an
order that the validator would throw away; the validator checks again, so an order that
bypassed a source is refused too. A limit is generous for a real value and keeps pages,
labels and e-mails (whose lines SMTP limits to 998 characters) readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kiltstore.domain import CanonicalOrder

#: Most kilts in one order line, and in one order.
MAX_QUANTITY = 10

#: Longest value of each canonical field, in characters.
MAX_LENGTH: dict[str, int] = {
    "name": 100,
    "email": 254,
    "phone": 40,
    "street": 200,
    "city": 100,
    "postcode": 16,
    "country": 60,
    "tartan": 60,
    "size": 8,
    "card": 30,
    "notes": 500,
    "taken_by": 60,
}


def too_long(label: str, value: str, limit: int) -> str | None:
    """The problem with ``value`` if it is longer than ``limit``, worded for people."""
    if len(value) <= limit:
        return None
    return f"{label} is too long ({len(value):,} characters; at most {limit:,})"


def length_problems(values: Mapping[str, str], fields: Mapping[str, tuple[str, str]]) -> list[str]:
    """Every field of ``values`` longer than its limit. ``fields`` maps a field's name
    in ``values`` to (label for people, key of :data:`MAX_LENGTH`)."""
    problems = []
    for name, (label, kind) in fields.items():
        problem = too_long(label, str(values.get(name, "")), MAX_LENGTH[kind])
        if problem:
            problems.append(problem)
    return problems


def order_problems(order: CanonicalOrder) -> list[str]:
    """Every field of a canonical order longer than its limit, and every quantity out of
    bounds (each line 1 to :data:`MAX_QUANTITY`, at most as many in the whole order),
    worded for the customer. The validator's checks, which every source runs too."""
    fields = [
        ("the name", order.customer.name, "name"),
        ("the e-mail address", order.customer.email, "email"),
        ("the phone number", order.customer.phone, "phone"),
        ("the street address", order.address.street, "street"),
        ("the town or city", order.address.city, "city"),
        ("the postcode", order.address.postcode, "postcode"),
        ("the notes", order.notes, "notes"),
    ]
    for index, line in enumerate(order.lines, 1):
        fields.append((f"kilt {index}: the tartan", line.tartan, "tartan"))
        fields.append((f"kilt {index}: the size", line.size, "size"))
    problems = [
        problem
        for label, value, kind in fields
        if (problem := too_long(label, value, MAX_LENGTH[kind])) is not None
    ]
    for index, line in enumerate(order.lines, 1):
        if not 1 <= line.quantity <= MAX_QUANTITY:
            problems.append(
                f"kilt {index}: quantity {line.quantity} must be between 1 and {MAX_QUANTITY}"
            )
    total_kilts = sum(line.quantity for line in order.lines)
    if total_kilts > MAX_QUANTITY:
        problems.append(f"{total_kilts} kilts in one order; the most we take is {MAX_QUANTITY}")
    return problems
