"""Validation of canonical orders."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kiltstore import samples
from kiltstore.domain import Address, CanonicalOrder, Customer, Payment
from kiltstore.translators import translate_web
from kiltstore.validation import luhn_ok, validate


@pytest.fixture
def order() -> CanonicalOrder:
    return translate_web(samples.web_body(1))


def with_line(order: CanonicalOrder, **changes: Any) -> CanonicalOrder:
    return dataclasses.replace(order, lines=(dataclasses.replace(order.lines[0], **changes),))


def test_sample_order_is_valid(order: CanonicalOrder) -> None:
    assert validate(order) == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"tartan": "Tesco Value"}, "we don't weave the tartan 'Tesco Value'"),
        ({"size": "XS"}, "unknown size 'XS'"),
        ({"size": "S"}, "a 86.4 cm waist doesn't fit size S"),
        ({"waist_cm": 300.0}, "waist 300 cm is outside"),
        ({"hip_cm": 20.0}, "hip 20 cm is outside"),
        ({"length_cm": 120.0}, "length 120 cm is outside"),
        ({"quantity": 0}, "quantity 0 must be between 1 and 10"),
        ({"quantity": 11}, "quantity 11 must be between 1 and 10"),
        ({"unit_price_pence": 1}, "doesn't match the price list"),
    ],
)
def test_line_problems(order: CanonicalOrder, changes: dict[str, object], problem: str) -> None:
    problems = validate(with_line(order, **changes))
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("address", Address("1 High St", "Inverness", "IV1 1AA", "ZZ"), "we don't ship to 'ZZ'"),
        ("address", Address("1 High Street", "Inverness", "12345", "GB"), "not a UK postcode"),
        ("address", Address("", "Inverness", "IV1 1AA", "GB"), "street address is missing"),
        ("address", Address("1 Main St", "Boston", "ABC", "US"), "not a US ZIP code"),
        ("customer", Customer("Jamie", "jamie-at-home"), "e-mail address 'jamie-at-home'"),
        ("payment", Payment("4242424242424241"), "card number is not valid"),
    ],
)
def test_order_problems(order: CanonicalOrder, field: str, value: object, problem: str) -> None:
    changes: dict[str, Any] = {field: value}
    problems = validate(dataclasses.replace(order, **changes))
    assert any(problem in p for p in problems), problems


def test_every_problem_is_reported(order: CanonicalOrder) -> None:
    bad = with_line(order, tartan="Plaid", quantity=0)
    bad = dataclasses.replace(bad, customer=Customer("", "nope"))
    assert len(validate(bad)) == 4


def test_luhn() -> None:
    assert luhn_ok("4242424242424242")
    assert luhn_ok("4000000000000002")
    assert not luhn_ok("4242424242424243")
    assert not luhn_ok("4242")
    assert not luhn_ok("4242-4242-4242-4242")
