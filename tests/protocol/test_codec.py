"""Byte-exact vectors for methods, content-header properties and field tables.

Every expected byte string here was worked out by hand from the AMQP 0-9-1 grammar
(class id, method id, then the arguments in order; bits packed low bit first into one
octet; short strings with one length octet; long strings and tables with a 32-bit length)
and, for field-table type codes, from RabbitMQ's errata table.
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
)
from kiltmq.protocol.frames import content_header_payload, method_frame

# What a decoder may raise on malformed input (see the codec module docstring); the
# connection turns each into 502 SYNTAX_ERROR.
MALFORMED = (ValueError, struct.error, IndexError)


# -- methods -----------------------------------------------------------------------------

METHOD_VECTORS: list[tuple[str, spec.Method, bytes]] = [
    (
        "connection.tune",
        spec.ConnectionTune(channel_max=2047, frame_max=131072, heartbeat=60),
        b"\x00\x0a\x00\x1e"  # class 10, method 30
        b"\x07\xff"  # channel-max 2047
        b"\x00\x02\x00\x00"  # frame-max 131072
        b"\x00\x3c",  # heartbeat 60
    ),
    (
        "connection.tune-ok",
        spec.ConnectionTuneOk(channel_max=0, frame_max=4096, heartbeat=0),
        b"\x00\x0a\x00\x1f\x00\x00\x00\x00\x10\x00\x00\x00",
    ),
    (
        "connection.start",
        spec.ConnectionStart(0, 9, {"product": "k"}, b"PLAIN AMQPLAIN", b"en_US"),
        b"\x00\x0a\x00\x0a"
        b"\x00\x09"  # version 0-9
        b"\x00\x00\x00\x0e"  # server-properties: 14 bytes
        b"\x07product" + b"S\x00\x00\x00\x01k"
        b"\x00\x00\x00\x0ePLAIN AMQPLAIN"  # mechanisms (longstr)
        b"\x00\x00\x00\x05en_US",  # locales (longstr)
    ),
    (
        "connection.start-ok",
        spec.ConnectionStartOk({}, "PLAIN", b"\x00guest\x00guest", "en_US"),
        b"\x00\x0a\x00\x0b"
        b"\x00\x00\x00\x00"  # client-properties: empty table
        b"\x05PLAIN"
        b"\x00\x00\x00\x0c\x00guest\x00guest"
        b"\x05en_US",
    ),
    (
        "connection.open",
        spec.ConnectionOpen(virtual_host="/"),
        b"\x00\x0a\x00\x28\x01/\x00\x00",  # vhost, reserved shortstr, reserved bit
    ),
    ("connection.open-ok", spec.ConnectionOpenOk(), b"\x00\x0a\x00\x29\x00"),
    (
        "connection.close",
        spec.ConnectionClose(reply_code=320, reply_text="bye", class_id=0, method_id=0),
        b"\x00\x0a\x00\x32\x01\x40\x03bye\x00\x00\x00\x00",
    ),
    (
        "connection.close (with the failing method)",
        spec.ConnectionClose(504, "CHANNEL_ERROR", 20, 10),
        b"\x00\x0a\x00\x32\x01\xf8\x0dCHANNEL_ERROR\x00\x14\x00\x0a",
    ),
    ("connection.close-ok", spec.ConnectionCloseOk(), b"\x00\x0a\x00\x33"),
    ("connection.blocked", spec.ConnectionBlocked("low mem"), b"\x00\x0a\x00\x3c\x07low mem"),
    ("channel.open", spec.ChannelOpen(), b"\x00\x14\x00\x0a\x00"),
    ("channel.open-ok", spec.ChannelOpenOk(), b"\x00\x14\x00\x0b\x00\x00\x00\x00"),
    ("channel.flow", spec.ChannelFlow(active=True), b"\x00\x14\x00\x14\x01"),
    (
        "channel.close",
        spec.ChannelClose(404, "NOT_FOUND", 50, 10),
        b"\x00\x14\x00\x28\x01\x94\x09NOT_FOUND\x00\x32\x00\x0a",
    ),
    (
        "exchange.declare",
        spec.ExchangeDeclare(exchange="logs", type="fanout", durable=True),
        b"\x00\x28\x00\x0a"
        b"\x00\x00"  # reserved (ticket)
        b"\x04logs\x06fanout"
        b"\x02"  # passive=0 durable=1 auto-delete=0 internal=0 no-wait=0
        b"\x00\x00\x00\x00",
    ),
    (
        "queue.declare with bits",
        spec.QueueDeclare(queue="q1", durable=True, auto_delete=True),
        b"\x00\x32\x00\x0a"
        b"\x00\x00"  # reserved
        b"\x02q1"
        b"\x0a"  # passive(1)=0 durable(2)=1 exclusive(4)=0 auto-delete(8)=1 no-wait(16)=0
        b"\x00\x00\x00\x00",  # no arguments
    ),
    (
        "queue.declare with all bits and arguments",
        spec.QueueDeclare("", True, True, True, True, True, {"x-max-length": 10}),
        b"\x00\x32\x00\x0a\x00\x00\x00"
        b"\x1f"
        b"\x00\x00\x00\x12"  # 18 bytes of arguments
        b"\x0cx-max-length" + b"I\x00\x00\x00\x0a",
    ),
    (
        "queue.declare-ok",
        spec.QueueDeclareOk("amq.gen-1", 3, 1),
        b"\x00\x32\x00\x0b\x09amq.gen-1\x00\x00\x00\x03\x00\x00\x00\x01",
    ),
    (
        "queue.bind",
        spec.QueueBind("q", "amq.topic", "a.*", no_wait=True),
        b"\x00\x32\x00\x14\x00\x00\x01q\x09amq.topic\x03a.*\x01\x00\x00\x00\x00",
    ),
    (
        "basic.qos",
        spec.BasicQos(prefetch_size=0, prefetch_count=10, global_=False),
        b"\x00\x3c\x00\x0a\x00\x00\x00\x00\x00\x0a\x00",
    ),
    (
        "basic.consume",
        spec.BasicConsume("q", "ctag", no_ack=True, exclusive=True),
        b"\x00\x3c\x00\x14\x00\x00\x01q\x04ctag"
        b"\x06"  # no-local(1)=0 no-ack(2)=1 exclusive(4)=1 no-wait(8)=0
        b"\x00\x00\x00\x00",
    ),
    (
        "basic.publish",
        spec.BasicPublish(exchange="amq.direct", routing_key="rk", mandatory=True),
        b"\x00\x3c\x00\x28"
        b"\x00\x00"  # reserved (ticket)
        b"\x0aamq.direct"
        b"\x02rk"
        b"\x01",  # mandatory(1)=1 immediate(2)=0
    ),
    (
        "basic.deliver",
        spec.BasicDeliver("ctag", 1, True, "", "q"),
        b"\x00\x3c\x00\x3c"
        b"\x04ctag"
        b"\x00\x00\x00\x00\x00\x00\x00\x01"  # delivery-tag (longlong)
        b"\x01"  # redelivered
        b"\x00"  # exchange ""
        b"\x01q",
    ),
    (
        "basic.get-ok",
        spec.BasicGetOk(2**64 - 1, False, "x", "k", 7),
        b"\x00\x3c\x00\x47" + b"\xff" * 8 + b"\x00\x01x\x01k\x00\x00\x00\x07",
    ),
    ("basic.get-empty", spec.BasicGetEmpty(), b"\x00\x3c\x00\x48\x00"),
    (
        "basic.ack",
        spec.BasicAck(delivery_tag=5, multiple=True),
        b"\x00\x3c\x00\x50\x00\x00\x00\x00\x00\x00\x00\x05\x01",
    ),
    (
        "basic.nack",
        spec.BasicNack(delivery_tag=7, multiple=False, requeue=True),
        b"\x00\x3c\x00\x78\x00\x00\x00\x00\x00\x00\x00\x07\x02",
    ),
    (
        "basic.return",
        spec.BasicReturn(312, "NO_ROUTE", "ex", "rk"),
        b"\x00\x3c\x00\x32\x01\x38\x08NO_ROUTE\x02ex\x02rk",
    ),
    ("tx.select", spec.TxSelect(), b"\x00\x5a\x00\x0a"),
    ("confirm.select", spec.ConfirmSelect(nowait=True), b"\x00\x55\x00\x0a\x01"),
]


@pytest.mark.parametrize(
    ("method", "payload"),
    [pytest.param(m, p, id=name) for name, m, p in METHOD_VECTORS],
)
def test_method_encodes_to_vector(method: spec.Method, payload: bytes) -> None:
    assert method.encode() == payload


@pytest.mark.parametrize(
    ("method", "payload"),
    [pytest.param(m, p, id=name) for name, m, p in METHOD_VECTORS],
)
def test_method_decodes_from_vector(method: spec.Method, payload: bytes) -> None:
    (index,) = struct.unpack_from(">I", payload)
    cls = spec.METHODS[index]
    assert cls is type(method)
    decoded = cls.decode(payload)
    expected = method.as_dict()
    for name in ("arguments", "server_properties", "client_properties"):
        if name in expected and expected[name] is None:
            expected[name] = {}  # an absent table is sent empty and comes back as {}
    assert decoded.as_dict() == expected
    assert decoded == cls(**expected)


def test_method_frame_wraps_the_payload() -> None:
    frame = method_frame(5, spec.BasicAck(delivery_tag=5, multiple=True))
    assert frame == (
        b"\x01"  # frame type: method
        b"\x00\x05"  # channel 5
        b"\x00\x00\x00\x0d"  # payload size 13
        b"\x00\x3c\x00\x50\x00\x00\x00\x00\x00\x00\x00\x05\x01"
        b"\xce"  # frame end
    )


def test_method_class_attributes() -> None:
    m = spec.BasicPublish
    assert (m.CLASS_ID, m.METHOD_ID, m.INDEX, m.NAME) == (60, 40, 0x003C0028, "basic.publish")
    assert m.HAS_CONTENT and not m.SYNCHRONOUS and m.SENT_BY_CLIENT and not m.SENT_BY_SERVER
    assert spec.QueueDeclare.RESPONSES == ("queue.declare-ok",)
    assert spec.QueueDeclare.SYNCHRONOUS
    assert "reserved_1" not in spec.QueueDeclare.FIELDS
    assert spec.METHODS_BY_NAME["basic.deliver"] is spec.BasicDeliver
    assert len(spec.METHODS) == 64
    assert all(idx == cls.INDEX for idx, cls in spec.METHODS.items())


def test_method_equality_and_repr() -> None:
    a = spec.BasicAck(1, True)
    assert a == spec.BasicAck(1, True)
    assert a != spec.BasicAck(1, False)
    assert a != spec.BasicNack(1, True)
    assert repr(a) == "BasicAck(delivery_tag=1, multiple=True)"
    assert a.as_dict() == {"delivery_tag": 1, "multiple": True}


# -- content header and properties -------------------------------------------------------

PROPERTY_VECTORS: list[tuple[str, spec.BasicProperties, bytes]] = [
    ("none", spec.BasicProperties(), b"\x00\x00"),
    (
        "content-type and delivery-mode",
        spec.BasicProperties(content_type="text/plain", delivery_mode=2),
        b"\x90\x00"  # bits 15 (content-type) and 12 (delivery-mode)
        b"\x0atext/plain"
        b"\x02",
    ),
    (
        "headers and timestamp",
        spec.BasicProperties(headers={"a": 1}, timestamp=1700000000),
        b"\x20\x40"  # bits 13 (headers) and 6 (timestamp)
        b"\x00\x00\x00\x07\x01aI\x00\x00\x00\x01"
        b"\x00\x00\x00\x00\x65\x53\xf1\x00",
    ),
    (
        "rpc request",
        spec.BasicProperties(priority=9, correlation_id="42", reply_to="amq.rabbitmq.reply-to"),
        b"\x0e\x00\x09\x0242\x15amq.rabbitmq.reply-to",
    ),
    (
        "expiration, message-id, type, user-id, app-id",
        spec.BasicProperties(
            expiration="60000", message_id="m1", type="t", user_id="guest", app_id="app"
        ),
        b"\x01\xb8"  # bits 8, 7, 5, 4, 3
        b"\x0560000\x02m1\x01t\x05guest\x03app",
    ),
    (
        "every property",
        spec.BasicProperties(
            content_type="a",
            content_encoding="b",
            headers={},
            delivery_mode=1,
            priority=0,
            correlation_id="c",
            reply_to="d",
            expiration="1",
            message_id="m",
            timestamp=1,
            type="t",
            user_id="u",
            app_id="p",
            cluster_id="",
        ),
        b"\xff\xfc"
        b"\x01a\x01b\x00\x00\x00\x00\x01\x00\x01c\x01d\x011\x01m"
        b"\x00\x00\x00\x00\x00\x00\x00\x01\x01t\x01u\x01p\x00",
    ),
]


@pytest.mark.parametrize(
    ("props", "raw"), [pytest.param(p, r, id=name) for name, p, r in PROPERTY_VECTORS]
)
def test_properties_encode_to_vector(props: spec.BasicProperties, raw: bytes) -> None:
    assert props.encode() == raw


@pytest.mark.parametrize(
    ("props", "raw"), [pytest.param(p, r, id=name) for name, p, r in PROPERTY_VECTORS]
)
def test_properties_decode_from_vector(props: spec.BasicProperties, raw: bytes) -> None:
    assert spec.BasicProperties.decode(raw) == props
    # decoding at an offset, as from a content-header payload
    assert spec.BasicProperties.decode(b"\xaa" * 12 + raw, 12) == props


def test_properties_ignore_flag_continuation_words() -> None:
    # bit 0 set: another flag word follows (none are defined for basic; skip it)
    raw = b"\x80\x01\x00\x00\x01x"
    assert spec.BasicProperties.decode(raw) == spec.BasicProperties(content_type="x")


def test_content_header_payload() -> None:
    props = spec.BasicProperties(content_type="text/plain", delivery_mode=2)
    expected = (
        b"\x00\x3c"  # class 60
        b"\x00\x00"  # weight
        b"\x00\x00\x00\x00\x00\x00\x00\x05"  # body size 5
        b"\x90\x00\x0atext/plain\x02"
    )
    assert content_header_payload(60, 5, props) == expected
    # pre-encoded properties pass through untouched; None means no properties
    assert content_header_payload(60, 5, props.encode()) == expected
    assert content_header_payload(60, 0, None) == b"\x00\x3c\x00\x00" + b"\x00" * 8 + b"\x00\x00"


def test_properties_equality_and_repr() -> None:
    p = spec.BasicProperties(content_type="x", delivery_mode=2)
    assert p == spec.BasicProperties(content_type="x", delivery_mode=2)
    assert p != spec.BasicProperties(content_type="x")
    assert repr(p) == "BasicProperties(content_type='x', delivery_mode=2)"


# -- strings -----------------------------------------------------------------------------


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


def test_out_of_range_integers_are_refused() -> None:
    with pytest.raises(struct.error):
        spec.BasicProperties(delivery_mode=256).encode()
    with pytest.raises(struct.error):
        spec.BasicProperties(priority=-1).encode()
    with pytest.raises(struct.error):
        spec.ConnectionTune(channel_max=65536).encode()
    with pytest.raises(struct.error):
        spec.BasicAck(delivery_tag=-1).encode()


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


@pytest.mark.parametrize(
    ("method", "payload"),
    [pytest.param(m, p, id=name) for name, m, p in METHOD_VECTORS if len(p) > 4],
)
def test_truncated_method_payload(method: spec.Method, payload: bytes) -> None:
    cls = type(method)
    for cut in range(4, len(payload)):
        with pytest.raises(MALFORMED):
            cls.decode(payload[:cut])


@pytest.mark.parametrize(
    ("props", "raw"),
    [pytest.param(p, r, id=name) for name, p, r in PROPERTY_VECTORS if len(r) > 2],
)
def test_truncated_properties(props: spec.BasicProperties, raw: bytes) -> None:
    for cut in range(len(raw)):
        with pytest.raises(MALFORMED):
            spec.BasicProperties.decode(raw[:cut])


def test_invalid_utf8_in_short_string_is_malformed() -> None:
    with pytest.raises(ValueError):
        spec.BasicPublish.decode(b"\x00\x3c\x00\x28\x00\x00\x01\xff\x00\x00")
