"""Receiving in pieces: a whole conversation replayed with its bytes split anywhere, and
random input that must never escape as an exception."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiltmq.protocol import spec
from kiltmq.protocol.connection import (
    Connection,
    ConnectionState,
    ContentReceived,
    ContentRefused,
    Event,
    MethodReceived,
    ProtocolError,
    Role,
)
from kiltmq.protocol.frames import HEARTBEAT_FRAME, content_header_payload, encode_frame

from .pair import LogEntry, Pair, opened, state
from .strategies import SETTINGS

# -- a whole conversation, replayed in pieces ----------------------------------------------


def conversation() -> Pair:
    """A realistic session: handshake, declare, consume, publish with content, deliver, ack,
    heartbeats, channel close, connection close. Both peers' logs record it."""
    c, s = Role.CLIENT, Role.SERVER
    pair = Pair()
    pair.handshake(tune=(2047, 4096, 60))
    pair.open_channel(1)
    pair.open_channel(2)
    pair.send(c, 1, spec.QueueDeclare("tasks", durable=True, arguments={"x-queue-type": "classic"}))
    pair.send(s, 1, spec.QueueDeclareOk("tasks", 0, 0))
    pair.send(c, 1, spec.BasicQos(0, 10, False))
    pair.send(s, 1, spec.BasicQosOk())
    pair.send(c, 1, spec.BasicConsume("tasks", "ctag-1"))
    pair.send(s, 1, spec.BasicConsumeOk("ctag-1"))
    props = spec.BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        headers={"attempt": 1, "tags": ["a", "b"]},
        timestamp=1700000000,
        message_id="m-1",
    )
    body = b'{"order": 42, "kilt": "MacGrudder tartan"}' * 200  # several frames at 4096
    pair.peer(c).act("send_content", 2, spec.BasicPublish("", "tasks"), props, body)
    pair.peer(c).act("send_content", 2, spec.BasicPublish("", "tasks"), None, b"")
    pair.peer(c).act("send_heartbeat")
    pair.flush(c)
    pair.peer(s).act(
        "send_content", 1, spec.BasicDeliver("ctag-1", 1, False, "", "tasks"), props, body
    )
    pair.peer(s).act(
        "send_content", 1, spec.BasicDeliver("ctag-1", 2, False, "", "tasks"), None, b""
    )
    pair.peer(s).act("send_heartbeat")
    pair.flush(s)
    pair.send(c, 1, spec.BasicAck(2, multiple=True))
    pair.send(c, 2, spec.ChannelClose(200, "done", 0, 0))
    pair.send(s, 2, spec.ChannelCloseOk())
    pair.send(c, 0, spec.ConnectionClose(200, "goodbye", 0, 0))
    pair.send(s, 0, spec.ConnectionCloseOk())
    assert state(pair.client.conn) is state(pair.server.conn) is ConnectionState.CLOSED
    return pair


CONVERSATION = conversation()
Splitter = Callable[[bytes], list[bytes]]


def replay(role: Role, log: list[LogEntry], split: Splitter) -> list[Event]:
    """Redo a peer's log on a fresh connection, feeding each received segment in pieces."""
    conn = Connection(role)
    events: list[Event] = []
    for name, args in log:
        if name == "receive_data":
            for piece in split(args[0]):
                events += conn.receive_data(piece)
        else:
            getattr(conn, name)(*args)
            conn.data_to_send()
    assert state(conn) is ConnectionState.CLOSED
    return events


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@pytest.mark.parametrize("role", [Role.CLIENT, Role.SERVER])
def test_conversation_events(role: Role) -> None:
    events = replay(role, CONVERSATION.peer(role).log, whole)
    kinds = [type(e).__name__ for e in events]
    assert "ProtocolError" not in kinds
    contents = [e for e in events if isinstance(e, ContentReceived)]
    assert len(contents) == 2
    assert contents[0].properties().headers == {"attempt": 1, "tags": ["a", "b"]}
    assert len(contents[0].body) == 8400
    assert contents[1].body == b""
    assert kinds.count("HeartbeatReceived") == 1


@pytest.mark.parametrize("role", [Role.CLIENT, Role.SERVER])
def test_conversation_byte_by_byte(role: Role) -> None:
    log = CONVERSATION.peer(role).log
    assert replay(role, log, bytewise) == replay(role, log, whole)


@pytest.mark.parametrize("role", [Role.CLIENT, Role.SERVER])
@SETTINGS
@given(data=st.data())
def test_conversation_random_splits(role: Role, data: st.DataObject) -> None:
    log = CONVERSATION.peer(role).log

    def split(segment: bytes) -> list[bytes]:
        cuts = sorted(data.draw(st.lists(st.integers(0, len(segment)), max_size=12)))
        bounds = [0, *cuts, len(segment)]
        return [segment[a:b] for a, b in itertools.pairwise(bounds)]

    assert replay(role, log, split) == replay(role, log, whole)


# -- fuzzing -------------------------------------------------------------------------------

# Payloads that look like what a peer would send: valid method payloads (some cut short or
# with a byte flipped), content headers, bodies, and noise.
_SAMPLE_METHODS = [
    spec.BasicPublish("ex", "rk", True).encode(),
    spec.BasicDeliver("c", 1, False, "ex", "rk").encode(),
    spec.BasicAck(1).encode(),
    spec.ChannelOpen().encode(),
    spec.ChannelOpenOk().encode(),
    spec.ChannelClose(200, "", 0, 0).encode(),
    spec.ChannelCloseOk().encode(),
    spec.QueueDeclare("q", arguments={"x": [1, "a"]}).encode(),
    spec.ConnectionClose(200, "", 0, 0).encode(),
    spec.ConnectionCloseOk().encode(),
    spec.ConnectionTuneOk(0, 4096, 0).encode(),
    spec.BasicGetOk(1, False, "", "q", 0).encode(),
]


@st.composite
def fuzz_frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["method", "header", "body", "heartbeat", "raw"]))
    channel = draw(st.sampled_from([0, 1, 2, 3, 65535]))
    if kind == "method":
        payload = draw(st.sampled_from(_SAMPLE_METHODS))
        mutation = draw(st.sampled_from(["none", "cut", "flip"]))
        if mutation == "cut":
            payload = payload[: draw(st.integers(0, len(payload)))]
        elif mutation == "flip" and payload:
            i = draw(st.integers(0, len(payload) - 1))
            payload = payload[:i] + bytes([draw(st.integers(0, 255))]) + payload[i + 1 :]
        return encode_frame(1, channel, payload)
    if kind == "header":
        size = draw(st.integers(0, 20))
        class_id = draw(st.sampled_from([60, 60, 50]))
        props = spec.BasicProperties(content_type=draw(st.none() | st.just("t")))
        payload = content_header_payload(class_id, size, props)
        if draw(st.booleans()):
            payload = payload[: draw(st.integers(0, len(payload)))]
        return encode_frame(2, channel, payload)
    if kind == "body":
        return encode_frame(3, channel, draw(st.binary(max_size=12)))
    if kind == "heartbeat":
        return encode_frame(8, channel, b"")
    return draw(st.binary(max_size=16))


@pytest.mark.parametrize("role", [Role.CLIENT, Role.SERVER])
@SETTINGS
@given(data=st.data())
def test_random_input_never_escapes_as_an_exception(role: Role, data: st.DataObject) -> None:
    pair = opened(channels=(1,), tune=(2047, 4096, 0))
    conn = pair.peer(role).conn
    frames = data.draw(st.lists(fuzz_frames(), min_size=1, max_size=12))
    events: list[Event] = []
    for chunk in frames:
        events += conn.receive_data(chunk)  # must not raise, whatever the input
    errors = [e for e in events if isinstance(e, ProtocolError)]
    assert len(errors) <= 1
    if errors:
        assert events[-1] is errors[0]  # nothing is reported after the error
        assert errors[0].error.reply_code in {501, 502, 503, 504, 505, 530, 540}
        assert conn.receive_data(HEARTBEAT_FRAME) == []


def test_a_repeated_publish_is_decoded_once() -> None:
    """A publisher sends the same basic.publish over and over: the server decodes it once
    and hands the same (never changed) method object with each message; another one is
    decoded afresh."""
    pair = opened()
    frames = [
        encode_frame(1, 1, spec.BasicPublish("", key).encode())
        + encode_frame(2, 1, content_header_payload(60, 1, None))
        + encode_frame(3, 1, b"x")
        for key in ("a", "a", "b", "b")
    ]
    events = pair.server.receive(b"".join(frames))
    methods = [e.method for e in events if isinstance(e, ContentReceived)]
    assert [m.routing_key for m in methods] == ["a", "a", "b", "b"]  # type: ignore[attr-defined]
    assert methods[0] is methods[1] and methods[2] is methods[3]
    assert methods[1] is not methods[2]


# -- one basic.ack alone in a read: the short path gives what the frame loop gives ---------


def _ack_read(channel: int, tag: int, bits: int = 0, end: int = spec.FRAME_END) -> bytes:
    frame = encode_frame(1, channel, spec.BasicAck(tag, bool(bits & 1)).encode())
    return frame[:-1] + bytes([end])


def _summary(events: list[Event]) -> list[object]:
    """The events, with the errors they carry (compared by identity) as their codes and
    texts."""
    out: list[object] = []
    for e in events:
        if isinstance(e, ProtocolError):
            out.append(("ProtocolError", e.error.reply_code, str(e.error)))
        elif isinstance(e, ContentRefused):
            out.append(("ContentRefused", e.channel, e.error.reply_code, str(e.error)))
        else:
            out.append(e)
    return out


def _through_the_frame_loop(pair: Pair, role: Role, data: bytes) -> list[Event]:
    """``data`` fed in two pieces, so the read is not one whole frame."""
    conn = pair.peer(role).conn
    return conn.receive_data(data[:5]) + conn.receive_data(data[5:])


def _content_expected(pair: Pair) -> None:
    pair.server.conn.receive_data(encode_frame(1, 1, spec.BasicPublish("", "q").encode()))


def _closing_channel(pair: Pair) -> None:
    pair.server.act("send_method", 1, spec.ChannelClose(200, "bye", 0, 0))


def _closing_connection(pair: Pair) -> None:
    pair.server.act("send_method", 0, spec.ConnectionClose(200, "bye", 0, 0))


SETUPS: dict[str, Callable[[Pair], None]] = {
    "open channel": lambda pair: None,
    "content expected": _content_expected,
    "closing channel": _closing_channel,
    "closing connection": _closing_connection,
}


@pytest.mark.parametrize("setup", sorted(SETUPS))
@pytest.mark.parametrize(
    "data",
    [
        _ack_read(1, 7),
        _ack_read(1, 7, bits=1),
        _ack_read(1, 7, bits=0xFF),
        _ack_read(2, 7),  # a channel never opened
        _ack_read(0, 7),  # channel 0
        _ack_read(1, 7, end=0),  # a bad frame end
        encode_frame(1, 1, spec.BasicReject(7, True).encode()),  # 21 bytes, not an ack
    ],
    ids=["ack", "multiple", "other bits", "unopened channel", "channel 0", "bad end", "reject"],
)
def test_a_read_of_one_ack_is_taken_as_the_frame_loop_takes_it(setup: str, data: bytes) -> None:
    """A consumer acking each delivery sends reads of one basic.ack frame each, which the
    server takes on a short path: whatever the frame and the state, the events are those
    of the general frame loop."""
    assert len(data) == 21
    short, general = opened(), opened()
    SETUPS[setup](short)
    SETUPS[setup](general)
    got = short.server.conn.receive_data(data)
    assert _summary(got) == _summary(_through_the_frame_loop(general, Role.SERVER, data))
    if setup == "open channel" and data[-1] == spec.FRAME_END and data[1:3] == b"\0\1":
        assert got and isinstance(got[0], MethodReceived)


def test_a_body_read_that_looks_like_an_ack_is_a_body() -> None:
    """A read of 21 bytes inside a frame (here a body on channel 2 whose bytes are an ack
    frame's for channel 1) is part of that frame: the short path is only taken at a frame
    boundary."""
    conn = opened(channels=(1, 2)).server.conn
    look_alike = _ack_read(1, 7)
    head = encode_frame(1, 2, spec.BasicPublish("", "q").encode()) + encode_frame(
        2, 2, content_header_payload(60, len(look_alike), None)
    )
    body = encode_frame(3, 2, look_alike)
    events = conn.receive_data(head + body[:7])
    events += conn.receive_data(body[7:-1])
    events += conn.receive_data(body[-1:])
    assert len(body[7:-1]) == 21
    assert [type(e) for e in events] == [ContentReceived]
    assert isinstance(events[0], ContentReceived) and events[0].body == look_alike


def test_a_publisher_confirm_read_alone_reaches_the_client() -> None:
    """The client takes a lone basic.ack (a publisher confirm) on the same short path."""
    pair = opened()
    pair.send(Role.CLIENT, 1, spec.ConfirmSelect())
    pair.send(Role.SERVER, 1, spec.ConfirmSelectOk())
    events = pair.client.conn.receive_data(_ack_read(1, 3, bits=1))
    assert events == [MethodReceived(1, spec.BasicAck(3, True))]


# -- one message alone in a read, published as the one before: the short path -------------


def _publish(channel: int = 1, key: str = "q") -> bytes:
    return encode_frame(1, channel, spec.BasicPublish("", key).encode())


def _header(
    size: int, channel: int = 1, class_id: int = 60, props: bytes = b"\x10\x00\x02"
) -> bytes:
    return encode_frame(2, channel, struct.pack(">HHQ", class_id, 0, size) + props)


def _body(body: bytes, channel: int = 1, end: int = spec.FRAME_END) -> bytes:
    frame = encode_frame(3, channel, body)
    return frame[:-1] + bytes([end])


def _primed(**tune: object) -> Pair:
    """An open pair whose server has decoded one basic.publish("", "q") on channel 1."""
    pair = opened(channels=(1, 2), **tune)
    # the publish decoded (and kept), then a message of the shape of most reads below,
    # which the reader keeps and checks them against
    for body in (b"hi", b"tweed"):
        events = pair.server.conn.receive_data(_publish() + _header(len(body)) + _body(body))
        assert [type(e) for e in events] == [ContentReceived]
    return pair


PUBLISH_READS: dict[str, bytes] = {
    "message": _publish() + _header(5) + _body(b"kilts"),
    "another shape": _publish() + _header(2, props=b"\x00\x00") + _body(b"hi"),
    "two shapes": _publish() + _header(2) + _body(b"hi") + _publish() + _header(5)
    + _body(b"kilts"),
    "no properties": _publish() + _header(5, props=b"\x00\x00") + _body(b"kilts"),
    "another routing key": _publish(key="r") + _header(5) + _body(b"kilts"),
    "another channel": _publish(channel=2) + _header(5, channel=2) + _body(b"kilts", channel=2),
    "header on another channel": _publish() + _header(5, channel=2) + _body(b"kilts"),
    "body on another channel": _publish() + _header(5) + _body(b"kilts", channel=2),
    "header and body on another channel": _publish() + _header(5, channel=2)
    + _body(b"kilts", channel=2),
    "header of class 50": _publish() + _header(5, class_id=50) + _body(b"kilts"),
    "header without flags": _publish() + encode_frame(2, 1, struct.pack(">HHQ", 60, 0, 5))
    + _body(b"kilts"),
    "empty body": _publish() + _header(0),
    "body shorter": _publish() + _header(6) + _body(b"kilts"),
    "body longer": _publish() + _header(4) + _body(b"kilts"),
    "body in two frames": _publish() + _header(5) + _body(b"ki") + _body(b"lts"),
    "bad body end": _publish() + _header(5) + _body(b"kilts", end=0),
    "bad header end": _publish() + _header(5)[:-1] + b"\0" + _body(b"kilts"),
    "too large": _publish() + _header(2000) + _body(b"k" * 2000),
    "a heartbeat after": _publish() + _header(5) + _body(b"kilts") + HEARTBEAT_FRAME,
    "two messages": (_publish() + _header(5) + _body(b"kilts")) * 2,
    "three messages": (_publish() + _header(5) + _body(b"kilts")) * 3,
    "a message and the start of the next": _publish() + _header(5) + _body(b"kilts")
    + _publish() + _header(5),
    "a message and another publish": _publish() + _header(5) + _body(b"kilts")
    + _publish(key="r") + _header(5) + _body(b"kilts"),
    "a message and a bad one": _publish() + _header(5) + _body(b"kilts")
    + _publish() + _header(5) + _body(b"kilts", end=0),
    "a message and one too large": _publish() + _header(5) + _body(b"kilts")
    + _publish() + _header(2000) + _body(b"k" * 2000),
    "a message and an ack": _publish() + _header(5) + _body(b"kilts") + _ack_read(1, 1),
}


def _limit_body(pair: Pair) -> None:
    pair.server.conn.max_body_size = 1000


def _limit_body_below_the_kept_shape(pair: Pair) -> None:
    pair.server.conn.max_body_size = 3


PUBLISH_SETUPS: dict[str, Callable[[Pair], None]] = {
    "open channel": lambda pair: None,
    "content expected": _content_expected,
    "closing channel": _closing_channel,
    "closing connection": _closing_connection,
    "body limit 1000": _limit_body,
    "body limit 3": _limit_body_below_the_kept_shape,
}


@pytest.mark.parametrize("setup", sorted(PUBLISH_SETUPS))
@pytest.mark.parametrize("name", sorted(PUBLISH_READS))
def test_a_read_of_one_message_is_taken_as_the_frame_loop_takes_it(setup: str, name: str) -> None:
    """A publisher at a low rate sends each message (basic.publish, header, body) in a
    read of its own, which the server takes on a short path when the publish is the same
    as the last one: whatever the frames and the state, the events are those of the
    general frame loop."""
    data = PUBLISH_READS[name]
    short, general = _primed(), _primed()
    PUBLISH_SETUPS[setup](short)
    PUBLISH_SETUPS[setup](general)
    got = short.server.conn.receive_data(data)
    assert _summary(got) == _summary(_through_the_frame_loop(general, Role.SERVER, data))
    if setup == "open channel" and name in ("message", "another shape", "no properties"):
        assert [type(e) for e in got] == [ContentReceived]
    if setup == "open channel" and name == "three messages":
        assert [type(e) for e in got] == [ContentReceived] * 3


def test_a_message_continued_in_the_next_read() -> None:
    """Whole messages, then one that the next read completes: the same events as the
    frame loop gives, read after read."""
    message = _publish() + _header(5) + _body(b"kilts")
    stream = message * 3
    reads = [stream[: len(message) * 2 + 20], stream[len(message) * 2 + 20 :]]
    short, general = _primed(), _primed()
    got = [short.server.conn.receive_data(read) for read in reads]
    expected = [_through_the_frame_loop(general, Role.SERVER, read) for read in reads]
    assert [_summary(e) for e in got] == [_summary(e) for e in expected]
    assert [len(e) for e in got] == [2, 1]


def test_a_message_read_within_frame_max() -> None:
    """A body frame over frame_max is a frame error on either path."""
    data = _publish() + _header(5000) + _body(b"k" * 5000)
    short, general = _primed(tune=(2047, 4096, 60)), _primed(tune=(2047, 4096, 60))
    got = short.server.conn.receive_data(data)
    assert _summary(got) == _summary(_through_the_frame_loop(general, Role.SERVER, data))
    assert isinstance(got[-1], ProtocolError)


def test_a_message_read_that_looks_whole_inside_a_frame_is_part_of_it() -> None:
    """Bytes that would be a whole message, read inside a body frame of channel 2, are
    that body's: the short path is only taken at a frame boundary."""
    conn = _primed().server.conn
    look_alike = _publish() + _header(5) + _body(b"kilts")
    head = _publish(channel=2) + _header(len(look_alike), channel=2)
    body = _body(look_alike, channel=2)
    events = conn.receive_data(head + body[:7])
    events += conn.receive_data(body[7:-1])
    events += conn.receive_data(body[-1:])
    assert [type(e) for e in events] == [ContentReceived]
    assert isinstance(events[0], ContentReceived) and events[0].body == look_alike


def test_a_read_after_a_partial_frame_head() -> None:
    """A read that ended within a frame's 7-byte head leaves those bytes for the next
    read: a next read that starts like a whole message is not taken as one."""
    message = _publish() + _header(5) + _body(b"kilts")
    reads = [message + message[:3], message]
    short, general = _primed(), _primed()
    got = [short.server.conn.receive_data(read) for read in reads]
    expected = [_through_the_frame_loop(general, Role.SERVER, read) for read in reads]
    assert [_summary(e) for e in got] == [_summary(e) for e in expected]


def test_a_message_read_before_any_shape_is_kept() -> None:
    """The first read cut after the publish was decoded is checked field by field: bytes
    after the publish frame that only end where a message could are not one."""
    read = _publish() + b"\0" * 27 + b"\xce" + b"\0" * 3
    short, general = opened(), opened()
    for pair in (short, general):
        pair.server.conn.receive_data(_publish() + _header(2) + _body(b"hi"))
    got = short.server.conn.receive_data(read)
    assert _summary(got) == _summary(_through_the_frame_loop(general, Role.SERVER, read))
    assert isinstance(got[-1], ProtocolError)
