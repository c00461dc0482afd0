"""Protocol violations: what a misbehaving peer sends, and the error the connection reports."""

from __future__ import annotations

from kiltmq.protocol import spec
from kiltmq.protocol.connection import MethodReceived, ProtocolError, Role
from kiltmq.protocol.frames import HEARTBEAT_FRAME, content_header_payload, encode_frame

from .pair import Pair, error_of, opened


def violation(pair: Pair, data: bytes, sender: Role = Role.CLIENT) -> ProtocolError:
    events = pair.raw(sender, data)
    error = error_of(events)
    # nothing more is read from a peer that broke the protocol
    receiver = pair.server if sender is Role.CLIENT else pair.client
    assert receiver.conn.receive_data(HEARTBEAT_FRAME) == []
    return error


def method(channel: int, m: spec.Method) -> bytes:
    return encode_frame(1, channel, m.encode())


def test_method_on_unopened_channel() -> None:
    error = violation(opened(), method(3, spec.BasicQos(0, 1, False)))
    assert (error.error.reply_code, error.error.class_id, error.error.method_id) == (504, 60, 10)
    assert error.error.hard


def test_second_channel_open() -> None:
    error = violation(opened(), method(1, spec.ChannelOpen()))
    assert (error.error.reply_code, error.error.class_id, error.error.method_id) == (504, 20, 10)


def test_channel_method_before_the_connection_is_open() -> None:
    pair = Pair()
    pair.client.act("send_protocol_header")
    pair.flush(Role.CLIENT)
    assert violation(pair, method(1, spec.ChannelOpen())).error.reply_code == 504


def test_header_frame_without_method() -> None:
    data = encode_frame(2, 1, content_header_payload(60, 1, None))
    assert violation(opened(), data).error.reply_code == 505


def test_body_frame_without_header() -> None:
    assert violation(opened(), encode_frame(3, 1, b"x")).error.reply_code == 505
    data = method(1, spec.BasicPublish()) + encode_frame(3, 1, b"x")
    assert violation(opened(), data).error.reply_code == 505


def test_method_while_expecting_header_or_body() -> None:
    publish = method(1, spec.BasicPublish())
    header = encode_frame(2, 1, content_header_payload(60, 4, None))
    for data in (publish, publish + header, publish + header + encode_frame(3, 1, b"ab")):
        error = violation(opened(), data + method(1, spec.BasicAck(1)))
        # RabbitMQ names the method whose content was interrupted
        assert (error.error.reply_code, error.error.class_id, error.error.method_id) == (
            505,
            60,
            40,
        )


def test_second_header_frame() -> None:
    header = encode_frame(2, 1, content_header_payload(60, 4, None))
    data = method(1, spec.BasicPublish()) + header + header
    assert violation(opened(), data).error.reply_code == 505


def test_header_of_another_class() -> None:
    data = method(1, spec.BasicPublish()) + encode_frame(2, 1, content_header_payload(50, 4, None))
    assert violation(opened(), data).error.reply_code == 505


def test_body_longer_than_announced() -> None:
    header = encode_frame(2, 1, content_header_payload(60, 5, None))
    data = (
        method(1, spec.BasicPublish())
        + header
        + encode_frame(3, 1, b"abc")
        + encode_frame(3, 1, b"def")
    )
    assert violation(opened(), data).error.reply_code == 505


def test_truncated_content_header() -> None:
    data = method(1, spec.BasicPublish()) + encode_frame(2, 1, b"\x00\x3c\x00")
    assert violation(opened(), data).error.reply_code in (501, 502)


def test_heartbeat_on_a_channel() -> None:
    # the spec says 501 FRAME_ERROR; RabbitMQ (and so kiltmq) says 505 UNEXPECTED_FRAME
    assert violation(opened(), encode_frame(8, 1, b"")).error.reply_code == 505


def test_unknown_method() -> None:
    error = violation(opened(), encode_frame(1, 1, b"\x00\x3c\x03\xe7"))
    assert (error.error.reply_code, error.error.class_id, error.error.method_id) == (540, 60, 999)
    assert violation(opened(), encode_frame(1, 1, b"\x00\x07\x00\x0a")).error.reply_code == 540


def test_wrong_direction_methods() -> None:
    # The server receives a deliver: as RabbitMQ, it reads the content before the 503.
    pair = opened()
    deliver = method(1, spec.BasicDeliver("c", 1, False, "", "q"))
    assert pair.raw(Role.CLIENT, deliver) == []
    header = encode_frame(2, 1, content_header_payload(60, 2, None))
    assert pair.raw(Role.CLIENT, header) == []
    error = violation(pair, encode_frame(3, 1, b"ab"))
    assert (error.error.reply_code, error.error.class_id, error.error.method_id) == (503, 60, 60)
    # An empty body: the header completes the content.
    error = violation(opened(), deliver + encode_frame(2, 1, content_header_payload(60, 0, None)))
    assert (error.error.reply_code, error.error.class_id, error.error.method_id) == (503, 60, 60)
    # A method instead of the content: 505 for the method whose content was expected.
    error = violation(opened(), deliver + method(1, spec.BasicQos(0, 1, False)))
    assert (error.error.reply_code, error.error.class_id, error.error.method_id) == (505, 60, 60)
    # The client takes no content method it may not receive: 503 at once.
    error = violation(opened(), method(1, spec.BasicPublish()) + header, sender=Role.SERVER)
    assert (error.error.reply_code, error.error.class_id, error.error.method_id) == (503, 60, 40)
    error = violation(opened(), method(0, spec.ConnectionOpenOk()), sender=Role.CLIENT)
    assert error.error.reply_code == 503


def test_malformed_arguments() -> None:
    payload = spec.BasicPublish("ex", "rk").encode()
    error = violation(opened(), encode_frame(1, 1, payload[:-3]))
    assert (error.error.reply_code, error.error.class_id, error.error.method_id) == (502, 60, 40)
    bad_table = spec.QueueDeclare("q").encode()[:-4] + b"\x00\x00\x00\x03\x01kZ"
    assert violation(opened(), encode_frame(1, 1, bad_table)).error.reply_code == 502


def test_short_string_argument_not_utf8_is_a_frame_error() -> None:
    # RabbitMQ: 501 "Malformed UTF-8 in shortstr", without the method's ids
    bad_utf8 = b"\x00\x3c\x00\x28\x00\x00\x01\xff\x00\x00"
    error = violation(opened(), encode_frame(1, 1, bad_utf8)).error
    assert (error.reply_code, error.reply_text) == (501, "Malformed UTF-8 in shortstr")
    assert (error.class_id, error.method_id) == (0, 0)


def test_method_frame_too_short_for_its_ids() -> None:
    assert violation(opened(), encode_frame(1, 1, b"\x00\x3c")).error.reply_code in (501, 502)


def test_connection_method_on_a_channel() -> None:
    error = violation(opened(), method(1, spec.ConnectionClose(200, "", 0, 0)))
    assert (error.error.reply_code, error.error.class_id, error.error.method_id) == (503, 10, 50)


def test_channel_method_on_channel_zero() -> None:
    # RabbitMQ: 504 CHANNEL_ERROR
    error = violation(opened(), method(0, spec.BasicQos(0, 1, False)))
    assert error.error.reply_code == 504


def test_connection_method_out_of_order() -> None:
    pair = Pair()
    pair.client.act("send_protocol_header")
    pair.flush(Role.CLIENT)
    pair.send(Role.SERVER, 0, spec.ConnectionStart(0, 9, {}, b"PLAIN", b"en_US"))
    error = violation(pair, method(0, spec.ConnectionOpen("/")))
    assert (error.error.reply_code, error.error.class_id, error.error.method_id) == (503, 10, 40)


def test_frame_too_large() -> None:
    pair = opened(tune=(2047, 4096, 0))
    data = method(1, spec.BasicPublish()) + encode_frame(
        2, 1, content_header_payload(60, 5000, None)
    )
    error = violation(pair, data + encode_frame(3, 1, b"b" * 5000)[:7])
    assert error.error.reply_code == 501


def test_bad_frame_end() -> None:
    frame = bytearray(method(1, spec.BasicQos(0, 1, False)))
    frame[-1] = 0
    assert violation(opened(), bytes(frame)).error.reply_code == 501


def test_unknown_frame_type() -> None:
    assert violation(opened(), encode_frame(4, 0, b"")).error.reply_code == 501


def test_channels_beyond_channel_max() -> None:
    # RabbitMQ's rule: channel_max bounds how many channels are open at once
    pair = opened(channels=(), tune=(3, 131072, 0))
    for channel in (1, 200, 65535):
        pair.open_channel(channel)
    error = violation(pair, method(7, spec.ChannelOpen()))
    assert error.error.reply_code == 530
    assert error.error.hard


def test_channel_max_counts_open_channels_only() -> None:
    pair = opened(channels=(), tune=(2, 131072, 0))
    pair.open_channel(1)
    pair.open_channel(2)
    pair.send(Role.CLIENT, 2, spec.ChannelClose(200, "", 0, 0))
    pair.send(Role.SERVER, 2, spec.ChannelCloseOk())
    pair.open_channel(3)
    assert set(pair.server.conn.channels) == {1, 3}


def test_events_before_a_violation_are_kept() -> None:
    pair = opened()
    data = method(1, spec.BasicAck(1)) + method(1, spec.BasicAck(2)) + method(7, spec.BasicAck(3))
    events = pair.raw(Role.CLIENT, data)
    assert events[:2] == [MethodReceived(1, spec.BasicAck(1)), MethodReceived(1, spec.BasicAck(2))]
    assert error_of(events).error.reply_code == 504


def test_events_before_a_frame_error_in_the_same_read_are_kept() -> None:
    pair = opened()
    bad = bytearray(method(1, spec.BasicAck(2)))
    bad[-1] = 0x00
    events = pair.raw(Role.CLIENT, method(1, spec.BasicAck(1)) + bytes(bad))
    assert events[0] == MethodReceived(1, spec.BasicAck(1))
    assert error_of(events).error.reply_code == 501
