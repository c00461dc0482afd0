"""``skip_table`` refuses exactly what ``decode_table`` refuses, and ends where it ends.

Valid tables come from the field-table strategy; malformed ones from corrupting their
bytes (truncated, bytes flipped, inserted or deleted, lengths changed), so most reach
deep into the walk before going wrong.
"""

from __future__ import annotations

import random
import struct
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kiltmq.protocol.codec import MAX_DEPTH, decode_table, encode_table, skip_table

from .malformed import MALFORMED
from .strategies import SETTINGS, field_tables


def _outcome(fn: Any, buf: bytes, offset: int) -> tuple[str, Any]:
    try:
        result = fn(buf, offset)
    except MALFORMED:
        return ("refused", None)
    return ("end", result[1] if isinstance(result, tuple) else result)


def corrupt(data: bytes, rng: random.Random) -> bytes:
    """``data`` with one to three random changes."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(6)
        at = rng.randrange(len(buf) + 1)
        if kind == 0:
            del buf[at:]
        elif kind == 1 and at < len(buf):
            buf[at] = rng.randrange(256)
        elif kind == 2:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 5)))
        elif kind == 3 and at < len(buf):
            del buf[at : at + rng.randint(1, 5)]
        elif kind == 4 and at < len(buf):
            buf[at] = rng.choice(b"tbBsuIilfdDTVSxFAqZ\x00\xff")  # a type code, or not
        elif kind == 5 and len(buf) >= 4:
            at = rng.randrange(len(buf) - 3)
            (n,) = struct.unpack_from(">I", buf, at)
            struct.pack_into(">I", buf, at, min(0xFFFFFFFF, max(0, n + rng.randint(-3, 3))))
    return bytes(buf)


@SETTINGS
@given(field_tables())
def test_a_valid_table_is_skipped_to_its_end(table: dict[str, Any]) -> None:
    data = b"\x07junk" + encode_table(table) + b"tail"
    assert skip_table(data, 5) == decode_table(data, 5)[1] == len(data) - 4


@SETTINGS
@given(field_tables(), st.integers(0, 2**32 - 1))
def test_a_corrupted_table_is_refused_exactly_when_decoding_refuses_it(
    table: dict[str, Any], seed: int
) -> None:
    rng = random.Random(seed)
    data = encode_table(table) + bytes(rng.randrange(256) for _ in range(rng.randrange(4)))
    for _ in range(20):
        bad = corrupt(data, rng)
        assert _outcome(skip_table, bad, 0) == _outcome(decode_table, bad, 0), bad.hex()


def test_seeded_corruptions_of_a_celery_table() -> None:
    """A fixed table of every value type, corrupted many times over."""
    table = {
        "lang": "py", "task": "proj.tasks.add", "id": "4a8e", "shadow": None, "retries": 0,
        "timelimit": [None, None], "nested": {"a": [1, "two", {"b": True}], "c": b"\x00"},
        "big": 2**40, "small": -5, "ratio": 0.5, "flag": False,
    }
    data = encode_table(table)
    rng = random.Random(1234)
    refused = 0
    for _ in range(5000):
        bad = corrupt(data, rng)
        expected = _outcome(decode_table, bad, 0)
        assert _outcome(skip_table, bad, 0) == expected, bad.hex()
        refused += expected[0] == "refused"
    assert 0 < refused < 5000  # both kinds were exercised


def test_tables_nested_deeper_than_the_limit_are_checked_too() -> None:
    value: Any = {"leaf": 1}
    for _ in range(MAX_DEPTH + 5):
        value = {"t": value, "a": [value] if isinstance(value, int) else []}
    data = encode_table(value)
    assert skip_table(data, 0) == len(data) == decode_table(data, 0)[1]
    bad = data[:-1] + b"\x00"  # the innermost integer's last byte kept, the table cut short
    assert _outcome(skip_table, bad[:-3], 0) == _outcome(decode_table, bad[:-3], 0)


def test_unknown_type_codes_are_refused() -> None:
    data = b"\x00\x00\x00\x03\x01aZ"
    assert _outcome(skip_table, data, 0) == ("refused", None) == _outcome(decode_table, data, 0)
