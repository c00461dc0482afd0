"""Property-based round trips: whatever we encode, we decode back to the same thing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiltmq.protocol import spec
from kiltmq.protocol.codec import (
    decode_array,
    decode_field_value,
    decode_table,
    encode_array,
    encode_field_value,
    encode_table,
)
from kiltmq.protocol.frames import FrameReader, content_header_payload, encode_frame, method_frame

from .strategies import (
    SETTINGS,
    SMALL_SETTINGS,
    field_tables,
    field_values,
    int_bits,
    methods,
    normalise,
    properties,
    same_value,
    with_empty_tables,
)

ALL_METHODS = sorted(spec.METHODS.values(), key=lambda cls: cls.INDEX)


@SETTINGS
@given(field_values())
def test_field_value_round_trip(value: Any) -> None:
    raw = encode_field_value(value)
    decoded, end = decode_field_value(raw + b"\xce", 0)
    assert end == len(raw)
    assert same_value(decoded, value)


@SETTINGS
@given(field_tables())
def test_table_round_trip(table: dict[str, Any]) -> None:
    raw = encode_table(table)
    decoded, end = decode_table(b"pad" + raw + b"more", 3)
    assert end == 3 + len(raw)
    assert same_value(decoded, table)
    assert list(decoded) == list(table)  # order kept


@SETTINGS
@given(st.lists(field_values(), max_size=6))
def test_array_round_trip(values: list[Any]) -> None:
    raw = encode_array(values)
    decoded, end = decode_array(raw, 0)
    assert end == len(raw)
    assert same_value(decoded, values)


@SETTINGS
@given(field_tables())
def test_table_encoding_is_canonical(table: dict[str, Any]) -> None:
    # decoding and re-encoding gives the same bytes (nothing is lost or re-typed)
    raw = encode_table(table)
    assert encode_table(decode_table(raw, 0)[0]) == raw


@pytest.mark.parametrize("cls", ALL_METHODS, ids=lambda cls: cls.NAME)
@SMALL_SETTINGS
@given(data=st.data())
def test_method_round_trip(cls: type[spec.Method], data: st.DataObject) -> None:
    method = data.draw(methods(cls))
    payload = method.encode()
    decoded = cls.decode(payload)
    assert type(decoded) is cls
    assert with_empty_tables(decoded) == with_empty_tables(method)
    # and through the frame layer, on a random channel
    channel = data.draw(st.integers(0, 65535))
    frames = FrameReader(frame_max=0).feed(method_frame(channel, method))
    assert frames == [(1, channel, payload)]


def test_integer_widths_are_found_from_the_encoders() -> None:
    # the strategies' width probe agrees with the spec's domains
    assert int_bits(spec.ConnectionTune, "channel_max") == 16
    assert int_bits(spec.ConnectionTune, "frame_max") == 32
    assert int_bits(spec.BasicDeliver, "delivery_tag") == 64
    assert int_bits(spec.ConnectionStart, "version_major") == 8
    assert int_bits(spec.BasicProperties, "priority") == 8
    assert int_bits(spec.BasicProperties, "timestamp") == 64


@SETTINGS
@given(properties())
def test_properties_round_trip(props: spec.BasicProperties) -> None:
    raw = props.encode()
    decoded = spec.BasicProperties.decode(raw)
    for name in spec.BasicProperties.FIELDS:
        value = getattr(props, name)
        assert same_value(getattr(decoded, name), value), name
    # the flags word says exactly which properties are present
    flags = int.from_bytes(raw[:2])
    present = [name for name in spec.BasicProperties.FIELDS if getattr(props, name) is not None]
    expected_flags = sum(
        1 << (15 - i) for i, name in enumerate(spec.BasicProperties.FIELDS) if name in present
    )
    assert flags == expected_flags


@SETTINGS
@given(properties(), st.integers(0, 2**64 - 1), st.integers(1, 65535))
def test_content_header_round_trip(
    props: spec.BasicProperties, body_size: int, channel: int
) -> None:
    payload = content_header_payload(60, body_size, props)
    frames = FrameReader(frame_max=0).feed(encode_frame(2, channel, payload))
    assert len(frames) == 1
    ftype, ch, got = frames[0]
    assert (ftype, ch) == (2, channel)
    assert int.from_bytes(got[:2]) == 60
    assert int.from_bytes(got[2:4]) == 0
    assert int.from_bytes(got[4:12]) == body_size
    decoded = spec.BasicProperties.decode(got, 12)
    assert normalise(decoded.headers) == normalise(props.headers)
    assert decoded.encode() == props.encode()
