"""Values a client may send that Python's types do not hold as they are (a timestamp of
2**64-1, tables nested 580 deep, field names that are not UTF-8): as RabbitMQ, the
broker takes them in client properties, arguments and headers, routes such messages and
delivers them byte for byte; and a bad connection is one log line, never a traceback."""

from __future__ import annotations

import logging
import struct
from typing import Any

import pytest

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.broker.declaration import validate_queue_args
from kiltmq.protocol import spec
from kiltmq.protocol.codec import Timestamp, decode_table, encode_table
from kiltmq.protocol.connection import ContentReceived
from kiltmq.protocol.errors import PreconditionFailed
from kiltmq.protocol.frames import FrameReader, content_header_payload, encode_frame, method_frame

pytestmark = pytest.mark.timeout(60)


def _nested(depth: int) -> dict[str, Any]:
    inner = b"\x00\x00\x00\x00"
    for _ in range(depth):
        entry = b"\x01kF" + inner
        inner = struct.pack(">I", len(entry)) + entry
    return decode_table(inner, 0)[0]


ODD: dict[str, Any] = {
    "ts": Timestamp(2**64 - 1),
    "deep": _nested(580),
    "\udcff\udcfe": 1,  # the field name b"\xff\xfe"
}


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def _content(client: RawClient) -> ContentReceived:
    while True:
        event = await client.event()
        if isinstance(event, ContentReceived):
            return event


async def test_headers_are_routed_and_delivered_byte_for_byte(
    abroker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    await client.call(1, spec.ExchangeDeclare("hx", "headers"))
    await client.call(1, spec.QueueDeclare("odd"))
    await client.call(1, spec.QueueBind("odd", "hx", "", arguments={"x-match": "any", "n": 1}))
    props = spec.BasicProperties(headers={**ODD, "n": 1}, timestamp=2**64 - 1)
    for exchange, key in (("", "odd"), ("hx", "")):  # the headers exchange decodes them
        client.publish(1, exchange, key, b"body", props)
        client.send(1, spec.BasicGet("odd", no_ack=True))
        got = await _content(client)
        assert isinstance(got.method, spec.BasicGetOk)
        assert got.raw_properties == props.encode()
        assert got.body == b"body"
    await client.call(1, spec.BasicConsume("odd", "c", no_ack=True))
    client.publish(1, "hx", "", b"again", props)
    delivered = await _content(client)
    assert isinstance(delivered.method, spec.BasicDeliver)
    assert delivered.raw_properties == props.encode()
    await client.disconnect()
    assert _errors(caplog) == []


async def test_dead_lettering_keeps_the_headers(
    abroker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    await client.call(1, spec.QueueDeclare("dlq"))
    dead_letter = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"}
    await client.call(1, spec.QueueDeclare("work", arguments=dead_letter))
    client.publish(1, "", "work", b"x", spec.BasicProperties(headers=ODD))
    client.send(1, spec.BasicGet("work"))
    got = await _content(client)
    assert isinstance(got.method, spec.BasicGetOk)
    client.send(1, spec.BasicReject(got.method.delivery_tag, requeue=False))
    client.send(1, spec.BasicGet("dlq", no_ack=True))
    dead = await _content(client)
    headers = spec.BasicProperties.decode(dead.raw_properties).headers
    assert headers is not None and "x-death" in headers
    assert encode_table({k: headers[k] for k in ODD}) == encode_table(ODD)
    await client.disconnect()
    assert _errors(caplog) == []


async def test_arguments_declare_and_redeclare(
    abroker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    for _ in range(2):  # the second time, equivalence compares the values
        ok = await client.call(1, spec.QueueDeclare("args", arguments=ODD))
        assert isinstance(ok, spec.QueueDeclareOk)
        ok = await client.call(1, spec.ExchangeDeclare("argx", "topic", arguments=ODD))
        assert isinstance(ok, spec.ExchangeDeclareOk)
    ok = await client.call(1, spec.QueueBind("args", "argx", "#", arguments=ODD))
    assert isinstance(ok, spec.QueueBindOk)
    await client.disconnect()
    assert _errors(caplog) == []


async def test_client_properties_connect(abroker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    client = await RawClient.open(abroker.port)
    await client.start()
    client.send(
        0,
        spec.ConnectionStartOk(
            # start-ok must fit the 4096 bytes of a frame before tune-ok
            client_properties={"product": "odd", **ODD, "deep": _nested(500)},
            mechanism="PLAIN",
            response=b"\0guest\0guest",
            locale="en_US",
        ),
    )
    tune = await client.method(0)
    assert isinstance(tune, spec.ConnectionTune)
    client.send_tune_ok(tune)
    client.send(0, spec.ConnectionOpen("/"))
    assert isinstance(await client.method(0), spec.ConnectionOpenOk)
    await client.open_channel(1)
    assert isinstance(await client.call(1, spec.QueueDeclare("x")), spec.QueueDeclareOk)
    await client.disconnect()
    assert _errors(caplog) == []


async def test_a_bad_connection_is_one_log_line(
    abroker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "kiltmq")
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    port = client.transport.get_extra_info("sockname")[1] if client.transport else 0
    caplog.clear()
    bad_table = spec.QueueDeclare("q").encode()[:-4] + b"\x00\x00\x00\x03\x01kZ"
    client.send_raw(encode_frame(1, 1, bad_table))
    close = await client.method(0)
    assert isinstance(close, spec.ConnectionClose) and close.reply_code == 502
    await client.disconnect()
    lines = [r.getMessage() for r in caplog.records if f":{port}:" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "502 SYNTAX_ERROR" in lines[0]
    assert not any(r.exc_info for r in caplog.records)


async def _pipelined_open(port: int, vhost: str) -> list[spec.Method]:
    """Tune-ok, connection.open, channel.open and queue.declare in one write, as RabbitMQ
    takes them; the first three methods the broker answers with, or all until it closes."""
    client = await RawClient.open(port)
    await client.start()
    tune = await client.login("guest", "guest")
    assert isinstance(tune, spec.ConnectionTune)
    frames = [
        method_frame(0, spec.ConnectionTuneOk(tune.channel_max, tune.frame_max, 0)),
        method_frame(0, spec.ConnectionOpen(vhost)),
        method_frame(1, spec.ChannelOpen()),
        method_frame(1, spec.QueueDeclare("", exclusive=True)),
    ]
    client.send_raw(b"".join(frames))
    reader = FrameReader()
    reader.feed(await client.read_bytes())  # start and tune, read above
    replies: list[spec.Method] = []
    while len(replies) < 3 and not client.closed:
        for _, _, payload in reader.feed(await client.read_bytes()):
            replies.append(spec.METHODS[struct.unpack_from(">I", payload)[0]].decode(payload))
    client.abort()
    return replies


async def test_channel_methods_right_behind_connection_open(
    abroker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    replies = await _pipelined_open(abroker.port, "/")
    assert [type(r) for r in replies] == [
        spec.ConnectionOpenOk,
        spec.ChannelOpenOk,
        spec.QueueDeclareOk,
    ]
    replies = await _pipelined_open(abroker.port, "no-such-vhost")
    assert len(replies) == 1 and isinstance(replies[0], spec.ConnectionClose)
    assert replies[0].reply_code == 530
    assert _errors(caplog) == []


async def test_property_strings_not_utf8(abroker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    await client.call(1, spec.QueueDeclare("dlq"))
    dead_letter = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"}
    await client.call(1, spec.QueueDeclare("work", arguments=dead_letter))
    raw = struct.pack(">H", 0x8000) + b"\x02\xff\xfe"  # content-type, not UTF-8
    publish = encode_frame(1, 1, spec.BasicPublish("", "work").encode())
    header = encode_frame(2, 1, content_header_payload(60, 1, raw))
    client.send_raw(publish + header + encode_frame(3, 1, b"x"))
    client.send(1, spec.BasicGet("work"))
    got = await _content(client)
    assert got.raw_properties == raw
    assert isinstance(got.method, spec.BasicGetOk)
    client.send(1, spec.BasicReject(got.method.delivery_tag, requeue=False))
    client.send(1, spec.BasicGet("dlq", no_ack=True))
    dead = await _content(client)  # dead-lettered with its content-type as it came
    assert spec.BasicProperties.decode(dead.raw_properties).content_type == "\udcff\udcfe"
    assert dead.raw_properties[2:5] == b"\x02\xff\xfe"
    # an expiration that is not UTF-8 is not an integer: 406, as RabbitMQ
    raw = struct.pack(">H", 0x0100) + b"\x02\xff\xfe"
    header = encode_frame(2, 1, content_header_payload(60, 1, raw))
    client.send_raw(publish + header + encode_frame(3, 1, b"x"))
    close = await client.method(1)
    assert isinstance(close, spec.ChannelClose)
    assert close.reply_code == 406 and "no_integer" in close.reply_text
    await client.disconnect()
    assert _errors(caplog) == []


@pytest.mark.parametrize(
    ("arg", "value", "reason"),
    [
        ("x-message-ttl", Timestamp(2**64 - 1), '"expected integer, got timestamp"'),
        ("x-max-length", Timestamp(5), '"expected integer, got timestamp"'),
        ("x-expires", 315360000001, "{value_too_large,315360000001}"),
        ("x-message-ttl", 2**62, f"{{value_too_large,{2**62}}}"),
    ],
)
def test_queue_arguments_as_rabbitmq_checks_them(arg: str, value: int, reason: str) -> None:
    with pytest.raises(PreconditionFailed) as caught:
        validate_queue_args("queue 'q' in vhost '/'", {arg: value})
    assert caught.value.reply_text.endswith(f"for queue 'q' in vhost '/': {reason}")
    validate_queue_args("queue 'q' in vhost '/'", {"x-message-ttl": 315360000000})
