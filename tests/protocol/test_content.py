"""Content: a method, a content header and body frames, assembled into one event."""

from __future__ import annotations

import dataclasses

import pytest

from kiltmq.protocol import spec
from kiltmq.protocol.connection import (
    LARGE_PIECE,
    ChannelState,
    ContentReceived,
    ContentRefused,
    Event,
    HeartbeatReceived,
    MethodReceived,
    Role,
)
from kiltmq.protocol.frames import content_header_payload, encode_frame

from .pair import channel_state, opened


def test_publish_with_body_split_in_many_frames() -> None:
    pair = opened(tune=(2047, 4096, 0))
    body = bytes(i % 256 for i in range(50_000))  # 13 body frames of at most 4088 bytes
    props = spec.BasicProperties(content_type="application/octet-stream", headers={"n": 1})
    publish = spec.BasicPublish("amq.direct", "rk", mandatory=True)
    pair.client.act("send_content", 1, publish, props, body)
    wire = pair.client.conn.data_to_send()
    assert wire.count(b"\xce\x03\x00\x01") == 13  # frame end, then a body frame on channel 1
    # fed in small reads, nothing is reported until the last byte
    events: list[Event] = []
    for start in range(0, len(wire), 1000):
        got = pair.server.conn.receive_data(wire[start : start + 1000])
        assert got == [] or start + 1000 >= len(wire)
        events += got
    assert events == [ContentReceived(1, publish, props.encode(), body)]
    event = events[0]
    assert isinstance(event, ContentReceived)
    assert event.properties() == props


def test_received_events_are_ordinary_frozen_events() -> None:
    pair = opened()
    publish = spec.BasicPublish("", "q")
    (content,) = pair.send_content(Role.CLIENT, 1, publish, None, b"x")
    (method_event,) = pair.send(Role.CLIENT, 1, spec.BasicAck(1))
    assert content == ContentReceived(1, publish, b"\x00\x00", b"x")
    assert method_event == MethodReceived(1, spec.BasicAck(1))
    assert repr(method_event) == repr(MethodReceived(1, spec.BasicAck(1)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        content.body = b"y"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        method_event.channel = 2  # type: ignore[misc]


def test_zero_length_body() -> None:
    pair = opened()
    publish = spec.BasicPublish("", "q")
    events = pair.send_content(Role.CLIENT, 1, publish, spec.BasicProperties(type="t"), b"")
    assert events == [ContentReceived(1, publish, spec.BasicProperties(type="t").encode(), b"")]
    # no body frame is written for an empty body
    assert pair.server.log[-1][1][0].endswith(b"\x00\x20\x01t\xce")


def test_pre_encoded_properties_pass_through() -> None:
    pair = opened()
    raw = spec.BasicProperties(delivery_mode=2, priority=3).encode()
    deliver = spec.BasicDeliver("ctag", 7, True, "ex", "rk")
    events = pair.send_content(Role.SERVER, 1, deliver, raw, b"payload")
    assert events == [ContentReceived(1, deliver, raw, b"payload")]


def test_interleaved_channels() -> None:
    pair = opened(channels=(1, 2, 3))
    m1, m2 = spec.BasicPublish("", "one"), spec.BasicPublish("", "two")
    frames = [
        encode_frame(1, 1, m1.encode()),
        encode_frame(1, 2, m2.encode()),
        encode_frame(2, 2, content_header_payload(60, 3, None)),
        encode_frame(1, 3, spec.BasicQos(0, 1, False).encode()),
        encode_frame(2, 1, content_header_payload(60, 6, None)),
        encode_frame(3, 1, b"abc"),
        encode_frame(8, 0, b""),
        encode_frame(3, 2, b"xyz"),
        encode_frame(3, 1, b"def"),
    ]
    events = pair.raw(Role.CLIENT, b"".join(frames))
    assert events == [
        MethodReceived(3, spec.BasicQos(0, 1, False)),
        HeartbeatReceived(),
        ContentReceived(2, m2, b"\x00\x00", b"xyz"),
        ContentReceived(1, m1, b"\x00\x00", b"abcdef"),
    ]


def test_get_ok_and_return_carry_content_to_the_client() -> None:
    pair = opened()
    get_ok = spec.BasicGetOk(1, False, "", "q", 0)
    ret = spec.BasicReturn(312, "NO_ROUTE", "ex", "nowhere")
    assert pair.send_content(Role.SERVER, 1, get_ok, None, b"m") == [
        ContentReceived(1, get_ok, b"\x00\x00", b"m")
    ]
    assert pair.send_content(Role.SERVER, 1, ret, None, b"r") == [
        ContentReceived(1, ret, b"\x00\x00", b"r")
    ]


def test_a_body_over_the_limit_is_refused_at_its_header_and_not_kept() -> None:
    pair = opened(channels=(1, 2))
    server = pair.server.conn
    server.max_body_size = 10
    publish = spec.BasicPublish("", "q")
    assert pair.send_content(Role.CLIENT, 1, publish, None, b"x" * 10) == [
        ContentReceived(1, publish, b"\x00\x00", b"x" * 10)
    ]
    header = encode_frame(2, 1, content_header_payload(60, 2**40, None))
    events = server.receive_data(encode_frame(1, 1, publish.encode()) + header)
    assert len(events) == 1
    refused = events[0]
    assert isinstance(refused, ContentRefused) and refused.channel == 1
    error = refused.error
    assert (error.reply_code, error.class_id, error.method_id, error.hard) == (406, 60, 40, False)
    assert error.reply_text == f"message size {2**40} is larger than configured max size 10"
    assert channel_state(server, 1) is ChannelState.CLOSING
    # its body frames are discarded, not kept; the other channels carry on
    assert server.receive_data(encode_frame(3, 1, b"y" * 1000)) == []
    assert server.channels[1].parts == []
    assert pair.send_content(Role.CLIENT, 2, publish, None, b"z") == [
        ContentReceived(2, publish, b"\x00\x00", b"z")
    ]


def test_output_parts_keep_large_pieces_and_join_the_small_ones_between() -> None:
    conn = opened().server.conn
    large = bytes(LARGE_PIECE)
    for piece in (b"a", b"b", large, b"c", large, large, b"d"):
        conn.send_raw(piece)
    parts = conn.data_to_send_parts()
    assert parts == [b"ab", large, b"c", large, large, b"d"]
    assert parts[1] is large and parts[3] is large and parts[4] is large
    assert conn.data_to_send_parts() == [] and conn.data_to_send() == b""
