"""Hypothesis strategies for the protocol tests, derived from the generated classes.

Method and property arguments are drawn from each class's ``__init__`` annotations; the
width of an ``int`` argument (octet, short, long, longlong) is found by asking the class's
own encoder which maxima it accepts, so nothing here repeats the spec by hand.
"""

from __future__ import annotations

import typing
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from kiltmq.protocol import spec

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""Shared settings: moderate example counts keep the whole protocol suite fast."""

SMALL_SETTINGS = settings(SETTINGS, max_examples=15)
"""For tests run once per method class (64 of them)."""


# -- field values --------------------------------------------------------------------------

# Timestamps in seconds from the epoch (the wire value); datetime handles years up to 9999.
MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
UINT32_TIMESTAMP = 2**32 - 1  # pamqp reads larger values as milliseconds


def text(max_bytes: int = 255, max_size: int = 40) -> st.SearchStrategy[str]:
    """Unicode text whose UTF-8 encoding fits ``max_bytes`` (a short string by default)."""
    return st.text(max_size=max_size).filter(lambda s: len(s.encode()) <= max_bytes)


def timestamps(max_seconds: int = MAX_TIMESTAMP) -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes with whole seconds, as a T field value decodes."""
    return st.integers(0, max_seconds).map(lambda s: datetime.fromtimestamp(s, UTC))


def decimals() -> st.SearchStrategy[Decimal]:
    """Decimals an AMQP D value can carry: a signed 32-bit mantissa and a scale octet."""
    return st.builds(
        lambda mantissa, scale: Decimal(mantissa).scaleb(-scale),
        st.integers(-(2**31), 2**31 - 1),
        st.integers(0, 30),
    )


def field_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any value our codec encodes, nested in tables and arrays."""
    scalars = st.one_of(
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False),
        decimals(),
        st.text(max_size=30),
        st.binary(max_size=30),
        timestamps(),
        st.none(),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.tuples(children, children),
            st.dictionaries(text(max_size=20), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def field_tables(max_leaves: int = 12) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(text(max_size=20), field_values(max_leaves), max_size=5)


def pamqp_field_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Values pamqp's table encoder accepts and encodes without loss: it has no ``bytes``
    (only ``bytearray``) and no tuples, writes floats as 32-bit ``f``, and truncates keys
    beyond 128 bytes."""
    scalars = st.one_of(
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, width=32),
        decimals(),
        st.text(max_size=30),
        st.binary(max_size=30).map(bytearray),
        timestamps(UINT32_TIMESTAMP),
        st.none(),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(text(128, max_size=20), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def pamqp_field_tables() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(text(128, max_size=20), pamqp_field_values(), max_size=5)


def cross_field_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Values for tables we encode and pamqp decodes: timestamps within 32 bits (pamqp
    reads larger ones as milliseconds)."""
    scalars = st.one_of(
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False),
        decimals(),
        st.text(max_size=30),
        st.binary(max_size=30),
        timestamps(UINT32_TIMESTAMP),
        st.none(),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(text(max_size=20), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def cross_field_tables() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(text(max_size=20), cross_field_values(), max_size=5)


def normalise(value: Any) -> Any:
    """A field value as it reads back: tuples become lists, byte arrays bytes."""
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def same_value(a: Any, b: Any) -> bool:
    """Semantic equality of decoded field values, strict about kinds: a bool is not an int,
    bytes and bytearray are both binary, str is not binary."""
    a, b = normalise(a), normalise(b)
    kinds = (bool, int, float, Decimal, str, bytes, datetime, list, dict, type(None))
    kind_a = next(k for k in kinds if isinstance(a, k))
    kind_b = next(k for k in kinds if isinstance(b, k))
    if kind_a is not kind_b:
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return bool(a == b)


# -- method and property arguments ---------------------------------------------------------


_HINTS: dict[type[Any], dict[str, Any]] = {}
_BITS: dict[tuple[type[Any], str], int] = {}


def argument_types(cls: type[Any]) -> dict[str, Any]:
    """The ``__init__`` annotations of a generated class, resolved."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls.__init__)
        hints.pop("return", None)
        _HINTS[cls] = hints
    return hints


def _encodes(cls: type[Any], name: str, value: int) -> bool:
    try:
        cls(**{name: value}).encode()
    except Exception:  # struct.error: out of range for the field's width
        return False
    return True


def int_bits(cls: type[Any], name: str) -> int:
    """Width in bits of an integer argument, asked of the class's own encoder."""
    if (cls, name) not in _BITS:
        for bits in (64, 32, 16, 8):
            if _encodes(cls, name, 2**bits - 1):
                assert not _encodes(cls, name, 2**bits), f"{cls.__name__}.{name} is wider"
                _BITS[cls, name] = bits
                break
        else:
            raise AssertionError(f"{cls.__name__}.{name}: no integer width fits")
    return _BITS[cls, name]


def strategy_for(
    cls: type[Any], name: str, table: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """The strategy for argument ``name`` of ``cls``; ``table`` draws field tables."""
    hint = argument_types(cls)[name]
    args = set(typing.get_args(hint)) - {type(None)}
    base = args.pop() if len(args) == 1 else hint
    if base is bool:
        return st.booleans()
    if base is int:
        return st.integers(0, 2 ** int_bits(cls, name) - 1)
    if base is str:
        return text()
    if base is bytes:
        return st.binary(max_size=300)
    if typing.get_origin(base) is not None or base is typing.Any:
        return table  # FieldTable (a Mapping alias)
    raise AssertionError(f"no strategy for {cls.__name__}.{name}: {hint!r}")


def methods(
    cls: type[spec.Method], table: st.SearchStrategy[Any] | None = None
) -> st.SearchStrategy[spec.Method]:
    """Instances of a method class with every argument (reserved ones too) drawn."""
    table = st.none() | field_tables() if table is None else table
    kwargs = {name: strategy_for(cls, name, table) for name in argument_types(cls)}
    return st.builds(cls, **kwargs)


def properties(
    table: st.SearchStrategy[Any] | None = None,
) -> st.SearchStrategy[spec.BasicProperties]:
    """BasicProperties with a random subset of the properties present."""
    table = field_tables() if table is None else table
    cls = spec.BasicProperties
    kwargs = {name: st.none() | strategy_for(cls, name, table) for name in argument_types(cls)}
    return st.builds(cls, **kwargs)


def with_empty_tables(method: spec.Method) -> dict[str, Any]:
    """A method's arguments as they decode: an absent (None) table comes back empty."""
    slots: tuple[str, ...] = method.__slots__
    values = {name: getattr(method, name) for name in slots}
    return {k: ({} if v is None else normalise(v)) for k, v in values.items()}
