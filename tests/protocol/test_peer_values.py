"""Values a peer may send that Python's types cannot hold as they are: timestamps after
the year 9999, tables nested thousands deep, field names that are not UTF-8. RabbitMQ
takes them all; they decode without error and encode back to the same bytes. And
whatever a method frame holds, decoding it raises only the codec's malformed-input
errors."""

from __future__ import annotations

import contextlib
import random
import struct
from datetime import UTC, datetime

import pytest

from kiltmq.protocol import spec, spec08
from kiltmq.protocol.codec import (
    MAX_DEPTH,
    DeepValue,
    Timestamp,
    decode_field_value,
    decode_table,
    encode_field_value,
    encode_table,
)
from kiltmq.protocol.connection import (
    ConnectionState,
    ContentReceived,
    MethodReceived,
    ProtocolError,
    Role,
)
from kiltmq.protocol.frames import content_header_payload, encode_frame

from .malformed import MALFORMED
from .pair import Pair, opened, state

LAST_SECOND = 253402300799  # 9999-12-31 23:59:59 UTC


def table(*entries: bytes) -> bytes:
    payload = b"".join(entries)
    return struct.pack(">I", len(payload)) + payload


def nested(depth: int, code: bytes = b"F") -> bytes:
    """A table holding a table (or array) ... ``depth`` levels down to an empty one."""
    inner = b"\x00\x00\x00\x00"
    for _ in range(depth):
        entry = (b"\x01k" if code == b"F" else b"") + code + inner
        inner = struct.pack(">I", len(entry)) + entry
    return inner


# -- timestamps -----------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [LAST_SECOND + 1, 2**63, 2**64 - 1])
def test_timestamp_after_year_9999_is_kept_as_seconds(seconds: int) -> None:
    raw = table(b"\x02ts" + b"T" + struct.pack(">Q", seconds))
    value, end = decode_table(raw, 0)
    assert end == len(raw)
    assert value == {"ts": seconds}
    assert type(value["ts"]) is Timestamp
    assert encode_table(value) == raw


def test_last_second_of_year_9999_is_a_datetime() -> None:
    raw = b"T" + struct.pack(">Q", LAST_SECOND)
    value, _ = decode_field_value(raw, 0)
    assert value == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert encode_field_value(value) == raw


def test_timestamp_in_an_array_and_in_properties() -> None:
    raw = b"A" + struct.pack(">I", 9) + b"T" + struct.pack(">Q", 2**64 - 1)
    value, _ = decode_field_value(raw, 0)
    assert value == [2**64 - 1] and encode_field_value(value) == raw
    props = spec.BasicProperties(timestamp=2**64 - 1, headers={"ts": Timestamp(2**64 - 1)})
    encoded = props.encode()
    decoded = spec.BasicProperties.decode(encoded)
    assert decoded.timestamp == 2**64 - 1
    assert decoded.encode() == encoded


# -- nesting --------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 2, 580, 20000])
@pytest.mark.parametrize("code", [b"F", b"A"])
def test_deep_nesting_decodes_and_encodes_back(depth: int, code: bytes) -> None:
    raw = nested(depth, code)
    value, end = decode_table(raw, 0) if code == b"F" else decode_field_value(b"A" + raw, 0)
    assert end == len(raw) + (code == b"A")
    assert (encode_table(value) if code == b"F" else encode_field_value(value)[1:]) == raw
    # real Python values down to MAX_DEPTH, then the rest kept encoded
    levels = 0
    while isinstance(value, dict | list) and value:
        value = value["k"] if isinstance(value, dict) else value[0]
        levels += 1
    assert isinstance(value, DeepValue)
    assert MAX_DEPTH <= levels <= MAX_DEPTH + 1
    assert value.encoded[:1] == code
    assert "bytes" in repr(value)


def test_deep_values_compare_by_their_bytes() -> None:
    a, _ = decode_table(nested(200), 0)
    b, _ = decode_table(nested(200), 0)
    c, _ = decode_table(nested(201), 0)
    assert a == b and a != c
    assert len({DeepValue(b"F\x00\x00\x00\x00"), DeepValue(b"F\x00\x00\x00\x00")}) == 1


def test_shallow_nesting_stays_python_values() -> None:
    value, _ = decode_table(nested(MAX_DEPTH - 1), 0)
    for _ in range(MAX_DEPTH - 1):
        value = value["k"]
    assert value == {}


@pytest.mark.parametrize(
    "tail",
    [
        b"Z",  # unknown type deep inside
        b"S\xff\xff\xff\xff",  # a long string longer than the frame
        b"I\x00\x00",  # truncated value
        b"F\x00\x00\x00\x09",  # a table running past its parent
        b"A\x00\x00\x00\x02I\x00",  # an array whose length cuts a value
    ],
)
def test_malformed_input_deep_inside_is_malformed(tail: bytes) -> None:
    inner = tail
    for _ in range(MAX_DEPTH + 10):
        inner = b"F" + table(b"\x01k" + inner)
    with pytest.raises(MALFORMED):
        decode_field_value(inner, 0)


def test_deep_table_with_every_value_type_checks_out() -> None:
    leaf = table(
        b"\x01ab\x01",
        b"\x01bB\x02",
        b"\x01ss\x00\x03",
        b"\x01uu\x00\x04",
        b"\x01iI\x00\x00\x00\x05",
        b"\x01ji\x00\x00\x00\x06",
        b"\x01ll" + struct.pack(">q", -7),
        b"\x01ff" + struct.pack(">f", 1.5),
        b"\x01dd" + struct.pack(">d", 2.5),
        b"\x01DD\x02\x00\x00\x01\x00",
        b"\x01SS\x00\x00\x00\x02hi",
        b"\x01xx\x00\x00\x00\x01\xff",
        b"\x01TT" + struct.pack(">Q", 2**64 - 1),
        b"\x01VV",
        b"\x01tt\x00",
        b"\x01AA\x00\x00\x00\x00",
    )
    raw = leaf
    for _ in range(MAX_DEPTH + 3):
        raw = table(b"\x01kF" + raw)
    value, end = decode_table(raw, 0)
    assert end == len(raw) and encode_table(value) == raw


# -- field names ----------------------------------------------------------------------


def test_field_name_not_utf8_encodes_back() -> None:
    raw = table(b"\x02\xff\xfeI\x00\x00\x00\x01", b"\x01ax\x00\x00\x00\x02\xff\xfe")
    value, _ = decode_table(raw, 0)
    assert value == {"\udcff\udcfe": 1, "a": b"\xff\xfe"}
    assert encode_table(value) == raw


# -- the connection ---------------------------------------------------------------------


def test_method_with_such_values_is_received() -> None:
    args = table(
        b"\x02tsT" + struct.pack(">Q", 2**64 - 1),
        b"\x04deepF" + nested(580),
        b"\x02\xff\xfeI\x00\x00\x00\x01",
    )
    payload = struct.pack(">HHH", 50, 10, 0) + b"\x01q" + b"\x00" + args
    pair = opened()
    events = pair.server.conn.receive_data(encode_frame(1, 1, payload))
    assert len(events) == 1 and isinstance(events[0], MethodReceived)
    declare = events[0].method
    assert isinstance(declare, spec.QueueDeclare)
    assert encode_table(declare.arguments) == args


def test_start_ok_with_such_client_properties() -> None:
    props = table(b"\x02tsT" + struct.pack(">Q", 2**64 - 1), b"\x04deepF" + nested(570))
    payload = (
        struct.pack(">HH", 10, 11)
        + props
        + b"\x05PLAIN"
        + struct.pack(">I", 2)
        + b"ab"
        + b"\x05en_US"
    )
    pair = Pair()
    pair.client.act("send_protocol_header")
    pair.flush(Role.CLIENT)
    pair.send(Role.SERVER, 0, spec.ConnectionStart(0, 9, {}, b"PLAIN", b"en_US"))
    events = pair.server.receive(encode_frame(1, 0, payload))
    assert state(pair.server.conn) is ConnectionState.SECURE_OR_TUNE
    assert len(events) == 1 and isinstance(events[0], MethodReceived)
    assert isinstance(events[0].method, spec.ConnectionStartOk)


def _start_ok_of(payload_size: int) -> bytes:
    fixed = 4 + 4 + 3 + 6 + 4 + 2 + 6  # ids, table length, key+type, PLAIN, response, en_US
    pad = payload_size - fixed - 4
    props = table(b"\x01pS" + struct.pack(">I", pad) + b"a" * pad)
    payload = struct.pack(">HH", 10, 11) + props + b"\x05PLAIN" + struct.pack(">I", 2) + b"ab"
    payload += b"\x05en_US"
    assert len(payload) == payload_size
    return encode_frame(1, 0, payload)


@pytest.mark.parametrize(("size", "taken"), [(4096, True), (4097, False)])
def test_frames_before_tune_ok_hold_4096_bytes(size: int, taken: bool) -> None:
    # RabbitMQ's frame_min_size until tune-ok; a larger start-ok is a frame error
    pair = Pair()
    pair.client.act("send_protocol_header")
    pair.flush(Role.CLIENT)
    pair.send(Role.SERVER, 0, spec.ConnectionStart(0, 9, {}, b"PLAIN", b"en_US"))
    (event,) = pair.server.receive(_start_ok_of(size))
    if taken:
        assert isinstance(event, MethodReceived)
    else:
        assert isinstance(event, ProtocolError) and event.error.reply_code == 501


def test_published_properties_stay_encoded() -> None:
    raw_props = struct.pack(">H", 0x2040) + nested(20000 // 8) + struct.pack(">Q", 2**64 - 1)
    pair = opened()
    publish = encode_frame(1, 1, spec.BasicPublish("", "q").encode())
    header = encode_frame(2, 1, content_header_payload(60, 2, raw_props))
    body = encode_frame(3, 1, b"hi")
    events = pair.server.conn.receive_data(publish + header + body)
    assert len(events) == 1 and isinstance(events[0], ContentReceived)
    assert events[0].raw_properties == raw_props
    props = spec.BasicProperties.decode(raw_props)
    assert props.timestamp == 2**64 - 1
    assert props.encode() == raw_props


def _mutations(base: bytes, rng: random.Random) -> list[bytes]:
    out = [base[:cut] for cut in range(len(base))]
    for _ in range(200):
        data = bytearray(base + rng.randbytes(rng.randrange(0, 12)))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        out.append(bytes(data))
    return out


@pytest.mark.parametrize("methods", [spec.METHODS, spec08.METHODS], ids=["0-9-1", "0-8"])
def test_every_method_decode_raises_only_malformed_errors(
    methods: dict[int, type[spec.Method]],
) -> None:
    rng = random.Random(0x6B696C74)
    for cls in methods.values():
        for payload in _mutations(cls().encode(), rng):
            with contextlib.suppress(*MALFORMED):
                cls.decode(payload)


def test_server_core_reports_every_mutated_method_as_an_event() -> None:
    """Whatever a method frame holds, the core answers with events, never an exception."""
    rng = random.Random(7)
    for cls in spec.METHODS.values():
        if not cls.SENT_BY_CLIENT:
            continue
        for payload in _mutations(cls().encode(), rng)[::7]:
            events = opened().server.conn.receive_data(encode_frame(1, 1, payload))
            # a violation, if any, is the last event
            assert not any(isinstance(e, ProtocolError) for e in events[:-1])


def test_property_strings_not_utf8_encode_back() -> None:
    # RabbitMQ passes any bytes on in content-header properties
    raw = struct.pack(">H", 0x8000 | 0x0400 | 0x0100) + b"\x02\xff\xfe" + b"\x01\xc3" + b"\x01\x80"
    props = spec.BasicProperties.decode(raw)
    assert props.content_type == "\udcff\udcfe"
    assert props.correlation_id == "\udcc3"
    assert props.expiration == "\udc80"
    assert props.encode() == raw


@pytest.mark.parametrize(
    "raw",
    [
        b"D\x00\x00\x00\x00\x00",
        b"D\xff\x7f\xff\xff\xff",  # scale 255, the largest int32
        b"D\xff\x80\x00\x00\x00",  # scale 255, the smallest int32
        b"D\x02\x00\x00\x00\x00",  # zero with a scale: 0.00
        b"D\x00\xff\xff\xff\xff",  # -1
    ],
)
def test_every_decimal_encodes_back(raw: bytes) -> None:
    value, end = decode_field_value(raw, 0)
    assert end == len(raw)
    assert encode_field_value(value) == raw
