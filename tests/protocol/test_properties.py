"""Byte-exact vectors for content-header properties and the content header payload.

Every expected byte string here was worked out by hand from the AMQP 0-9-1 grammar
(a 16-bit flag word, the first property in its highest bit, then the present properties
in order).
"""

from __future__ import annotations

import pytest

from kiltmq.protocol import spec
from kiltmq.protocol.frames import content_header_payload

from .malformed import MALFORMED

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


@pytest.mark.parametrize(
    ("props", "raw"),
    [pytest.param(p, r, id=name) for name, p, r in PROPERTY_VECTORS if len(r) > 2],
)
def test_truncated_properties(props: spec.BasicProperties, raw: bytes) -> None:
    for cut in range(len(raw)):
        with pytest.raises(MALFORMED):
            spec.BasicProperties.decode(raw[:cut])
