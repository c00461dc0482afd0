"""How long each field of an order may be.

Every source checks its own fields against these limits before it accepts an order
(the web store's form, the phone form, the CRM's API), and the validator checks the
canonical order again, so an order that bypassed a source is refused too. A limit is
generous for a real value and keeps pages, labels and e-mails (whose lines SMTP limits
to 998 characters) readable.
"""

from __future__ import annotations

from collections.abc import Mapping

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
