"""Byte-exact vectors for method payloads.

Every expected byte string here was worked out by hand from the AMQP 0-9-1 grammar
(class id, method id, then the arguments in order; bits packed low bit first into one
octet; short strings with one length octet; long strings and tables with a 32-bit length).
"""

from __future__ import annotations

import struct

import pytest

from kiltmq.protocol import spec
from kiltmq.protocol.frames import method_frame

from .malformed import MALFORMED

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


def test_out_of_range_integers_are_refused() -> None:
    with pytest.raises(struct.error):
        spec.BasicProperties(delivery_mode=256).encode()
    with pytest.raises(struct.error):
        spec.BasicProperties(priority=-1).encode()
    with pytest.raises(struct.error):
        spec.ConnectionTune(channel_max=65536).encode()
    with pytest.raises(struct.error):
        spec.BasicAck(delivery_tag=-1).encode()


@pytest.mark.parametrize(
    ("method", "payload"),
    [pytest.param(m, p, id=name) for name, m, p in METHOD_VECTORS if len(p) > 4],
)
def test_truncated_method_payload(method: spec.Method, payload: bytes) -> None:
    cls = type(method)
    for cut in range(4, len(payload)):
        with pytest.raises(MALFORMED):
            cls.decode(payload[:cut])


def test_invalid_utf8_in_short_string_is_malformed() -> None:
    with pytest.raises(ValueError):
        spec.BasicPublish.decode(b"\x00\x3c\x00\x28\x00\x00\x01\xff\x00\x00")
