"""Byte-exact vectors for strings, field values and field tables.

Every expected byte string here was worked out by hand from the AMQP 0-9-1 grammar
(short strings with one length octet; long strings, tables and arrays with a 32-bit
length) and, for field-table type codes, from RabbitMQ's errata table.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any

import pytest

from kiltmq.protocol import spec
from kiltmq.protocol.codec import (
    MAX_DEPTH,
    DeepValue,
    Long,
    decode_array,
    decode_field_value,
    decode_longstr,
    decode_shortstr,
    decode_table,
    encode_array,
    encode_field_value,
    encode_longstr,
    encode_shortstr,
    encode_table,
    raw_fields,
)

from .malformed import MALFORMED


def test_short_and_long_strings() -> None:
    assert encode_shortstr("") == b"\x00"
    assert encode_shortstr("é") == b"\x02\xc3\xa9"
    assert encode_shortstr("x" * 255) == b"\xff" + b"x" * 255
    assert decode_shortstr(b"\x00\x03abcz", 1) == ("abc", 5)
    assert encode_longstr(b"\x00\xff") == b"\x00\x00\x00\x02\x00\xff"
    assert decode_longstr(b"\x00\x00\x00\x02\x00\xffz", 0) == (b"\x00\xff", 6)


def test_short_string_longer_than_255_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="255"):
        encode_shortstr("x" * 256)
    # 128 two-byte characters: 256 bytes although only 128 characters
    with pytest.raises(ValueError):
        encode_shortstr("é" * 128)
    with pytest.raises(ValueError, match=r"basic.publish: .*routing_key \(256 bytes\)"):
        spec.BasicPublish(routing_key="r" * 256).encode()
    with pytest.raises(ValueError, match=r"message_id \(300 bytes\)"):
        spec.BasicProperties(message_id="m" * 300).encode()
    with pytest.raises(ValueError, match="consumer_tag"):
        spec.BasicDeliver(consumer_tag="é" * 128).encode()
    with pytest.raises(ValueError):
        encode_table({"k" * 256: 1})


# -- field values: decoding every type code from hand-written bytes ----------------------

FIELD_DECODE_VECTORS: list[tuple[str, bytes, Any]] = [
    ("t true", b"t\x01", True),
    ("t false", b"t\x00", False),
    ("b", b"b\xff", -1),
    ("B", b"B\xff", 255),
    ("s", b"s\xff\xfe", -2),
    ("u", b"u\xff\xfe", 65534),
    ("I", b"I\xff\xff\xff\xfe", -2),
    ("i", b"i\xff\xff\xff\xfe", 4294967294),
    ("l", b"l\xff\xff\xff\xff\xff\xff\xff\xfe", -2),
    ("f", b"f\x3f\xc0\x00\x00", 1.5),
    ("d", b"d\x3f\xf8\x00\x00\x00\x00\x00\x00", 1.5),
    ("D", b"D\x02\x00\x00\x04\xd2", Decimal("12.34")),
    ("D negative", b"D\x01\xff\xff\xff\xf1", Decimal("-1.5")),
    ("S", b"S\x00\x00\x00\x03abc", "abc"),
    ("S utf-8", b"S\x00\x00\x00\x02\xc3\xa9", "é"),
    ("S not utf-8", b"S\x00\x00\x00\x02\xff\xfe", b"\xff\xfe"),
    ("A", b"A\x00\x00\x00\x04b\x01t\x00", [1, False]),
    ("A empty", b"A\x00\x00\x00\x00", []),
    ("T", b"T\x00\x00\x00\x00\x65\x53\xf1\x00", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    ("F", b"F\x00\x00\x00\x07\x01kS\x00\x00\x00\x00", {"k": ""}),
    ("F nested", b"F\x00\x00\x00\x07\x01kF\x00\x00\x00\x00", {"k": {}}),
    ("V", b"V", None),
    ("x", b"x\x00\x00\x00\x02\x00\xff", b"\x00\xff"),
]


@pytest.mark.parametrize(
    ("raw", "value"), [pytest.param(r, v, id=name) for name, r, v in FIELD_DECODE_VECTORS]
)
def test_field_value_decodes(raw: bytes, value: Any) -> None:
    decoded, end = decode_field_value(raw + b"trailing", 0)
    assert end == len(raw)
    assert decoded == value
    assert type(decoded) is type(value)
    # the same value inside a table, under a one-letter key
    table = b"\x01k" + raw
    assert decode_table(struct.pack(">I", len(table)) + table, 0) == ({"k": value}, 4 + len(table))


def test_every_rabbitmq_type_code_is_covered() -> None:
    codes = {raw[:1] for _, raw, _ in FIELD_DECODE_VECTORS}
    assert codes == {c.encode() for c in "tbBsuIilfdDSATFVx"}


def test_float32_keeps_its_precision_limit() -> None:
    value, _ = decode_field_value(b"f" + struct.pack(">f", 0.1), 0)
    assert value == struct.unpack(">f", struct.pack(">f", 0.1))[0]
    assert type(value) is float


def test_table_with_several_entries_keeps_order() -> None:
    raw = b"\x01bt\x01" + b"\x01aI\x00\x00\x00\x02" + b"\x01cV"
    table, end = decode_table(struct.pack(">I", len(raw)) + raw, 0)
    assert list(table.items()) == [("b", True), ("a", 2), ("c", None)]
    assert end == 4 + len(raw)


# -- field values: encoding Python values ------------------------------------------------


class Colour(IntEnum):
    RED = 1


FIELD_ENCODE_VECTORS: list[tuple[str, Any, bytes]] = [
    ("True", True, b"t\x01"),
    ("False", False, b"t\x00"),
    ("int", 5, b"I\x00\x00\x00\x05"),
    ("negative int", -2, b"I\xff\xff\xff\xfe"),
    ("int32 min", -(2**31), b"I\x80\x00\x00\x00"),
    ("int32 max", 2**31 - 1, b"I\x7f\xff\xff\xff"),
    ("int above int32", 2**31, b"l\x00\x00\x00\x00\x80\x00\x00\x00"),
    ("int64 max", 2**63 - 1, b"l\x7f\xff\xff\xff\xff\xff\xff\xff"),
    ("int64 min", -(2**63), b"l\x80\x00\x00\x00\x00\x00\x00\x00"),
    ("IntEnum", Colour.RED, b"I\x00\x00\x00\x01"),
    ("float", 1.5, b"d\x3f\xf8\x00\x00\x00\x00\x00\x00"),
    ("Decimal", Decimal("12.34"), b"D\x02\x00\x00\x04\xd2"),
    ("Decimal negative", Decimal("-1.5"), b"D\x01\xff\xff\xff\xf1"),
    ("Decimal positive exponent", Decimal("1E+2"), b"D\x00\x00\x00\x00\x64"),
    ("str", "abc", b"S\x00\x00\x00\x03abc"),
    ("str utf-8", "é", b"S\x00\x00\x00\x02\xc3\xa9"),
    ("bytes", b"\x00\xff", b"x\x00\x00\x00\x02\x00\xff"),
    ("bytearray", bytearray(b"\x01"), b"x\x00\x00\x00\x01\x01"),
    (
        "aware datetime",
        datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        b"T\x00\x00\x00\x00\x65\x53\xf1\x00",
    ),
    (
        "naive datetime is UTC",
        datetime(2023, 11, 14, 22, 13, 20),
        b"T\x00\x00\x00\x00\x65\x53\xf1\x00",
    ),
    ("dict", {"a": None}, b"F\x00\x00\x00\x03\x01aV"),
    ("OrderedDict", OrderedDict(a=None), b"F\x00\x00\x00\x03\x01aV"),
    ("empty dict", {}, b"F\x00\x00\x00\x00"),
    ("list", [1, "x"], b"A\x00\x00\x00\x0bI\x00\x00\x00\x01S\x00\x00\x00\x01x"),
    ("tuple", (True,), b"A\x00\x00\x00\x02t\x01"),
    ("None", None, b"V"),
]


@pytest.mark.parametrize(
    ("value", "raw"), [pytest.param(v, r, id=name) for name, v, r in FIELD_ENCODE_VECTORS]
)
def test_field_value_encodes(value: Any, raw: bytes) -> None:
    assert encode_field_value(value) == raw
    # and as a table entry
    entry = b"\x01k" + raw
    assert encode_table({"k": value}) == struct.pack(">I", len(entry)) + entry


def test_encode_table_and_array() -> None:
    assert encode_table(None) == b"\x00\x00\x00\x00"
    assert encode_table({}) == b"\x00\x00\x00\x00"
    assert encode_table({"x-match": "all", "n": 1}) == (
        b"\x00\x00\x00\x17" + b"\x07x-matchS\x00\x00\x00\x03all" + b"\x01nI\x00\x00\x00\x01"
    )
    assert encode_array([]) == b"\x00\x00\x00\x00"
    assert decode_array(encode_array([[1], {"a": [None]}]), 0)[0] == [[1], {"a": [None]}]


# -- errors ------------------------------------------------------------------------------


def test_unknown_field_type() -> None:
    with pytest.raises(ValueError, match="unknown field value type"):
        decode_field_value(b"Z\x00", 0)
    with pytest.raises(ValueError):
        decode_table(b"\x00\x00\x00\x03\x01kZ", 0)
    with pytest.raises(ValueError):
        decode_array(b"\x00\x00\x00\x01Z", 0)


def test_unencodable_python_values() -> None:
    with pytest.raises(TypeError):
        encode_field_value(object())
    with pytest.raises(TypeError):
        encode_table({"k": {1, 2}})
    with pytest.raises(ValueError):
        encode_field_value(2**63)
    with pytest.raises(ValueError):
        encode_field_value(Decimal("NaN"))
    with pytest.raises(ValueError):
        encode_field_value(Decimal(2**40))  # mantissa beyond int32


@pytest.mark.parametrize(
    ("raw", "value"), [pytest.param(r, v, id=name) for name, r, v in FIELD_DECODE_VECTORS]
)
def test_truncated_field_value(raw: bytes, value: Any) -> None:
    if len(raw) == 1:
        return  # V has no payload to truncate
    for cut in range(1, len(raw)):
        table_body = b"\x01k" + raw[:cut]
        table = struct.pack(">I", len(table_body)) + table_body
        with pytest.raises(MALFORMED):
            decode_table(table, 0)


def test_truncated_containers() -> None:
    with pytest.raises(MALFORMED):
        decode_table(b"\x00\x00\x00\x05\x01k", 0)  # announces more than there is
    with pytest.raises(MALFORMED):
        decode_table(b"\x00\x00", 0)  # length itself cut
    with pytest.raises(MALFORMED):
        decode_array(b"\x00\x00\x00\x09b\x01", 0)
    with pytest.raises(MALFORMED):
        decode_longstr(b"\x00\x00\x00\x05abc", 0)
    with pytest.raises(MALFORMED):
        decode_shortstr(b"\x05abc", 0)
    with pytest.raises(MALFORMED):
        decode_shortstr(b"", 0)
    # a value that runs past the table's announced end
    with pytest.raises(MALFORMED):
        decode_table(b"\x00\x00\x00\x04\x01kI\x00\x00\x00\x00\x01", 0)


def test_the_L_type_code_is_a_signed_64_bit_integer() -> None:
    raw = b"L" + struct.pack(">q", -(2**40))
    assert decode_field_value(raw, 0) == (-(2**40), 9)
    entry = b"\x03ttl" + raw
    table = struct.pack(">I", len(entry)) + entry
    assert decode_table(table, 0) == ({"ttl": -(2**40)}, len(table))
    for _ in range(MAX_DEPTH + 1):  # kept encoded past MAX_DEPTH, checked by its width
        table = struct.pack(">I", len(table) + 3) + b"\x01kF" + table
    decoded, end = decode_table(table, 0)
    assert end == len(table)
    value: Any = decoded
    while isinstance(value, dict):
        value = value["k"]
    assert isinstance(value, DeepValue) and value.encoded.endswith(raw)


def test_long_encodes_as_l_whatever_its_size() -> None:
    encoded = encode_table({"n": Long(1), "m": 1})
    assert encoded == struct.pack(">I", 18) + (
        b"\x01nl" + struct.pack(">q", 1) + b"\x01mI" + struct.pack(">i", 1)
    )
    assert decode_table(encoded, 0)[0] == {"n": 1, "m": 1}
    with pytest.raises(ValueError):
        encode_table({"n": Long(2**63)})


def test_raw_fields_keep_each_value_as_it_came() -> None:
    payload = (
        b"\x01bb\xff" + b"\x01lL" + struct.pack(">q", 7) + b"\x01ff" + struct.pack(">f", 1.5)
        + b"\x01aA" + struct.pack(">I", 3) + b"s\x00\x01"
    )
    table = struct.pack(">I", len(payload)) + payload
    fields = raw_fields(table, 0)
    assert [f.encoded[:1] for f in fields.values()] == [b"b", b"L", b"f", b"A"]
    assert encode_table(fields) == table
    with pytest.raises(ValueError):
        raw_fields(struct.pack(">I", len(payload) + 3) + payload, 0)
