"""The connection state machine: a client and a server Connection wired together in memory."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiltmq.protocol import spec
from kiltmq.protocol.connection import (
    ChannelState,
    Connection,
    ConnectionState,
    ContentReceived,
    Event,
    Heartbeat,
    HeartbeatReceived,
    MethodReceived,
    ProtocolError,
    ProtocolHeaderReceived,
    Role,
    negotiate,
)
from kiltmq.protocol.errors import LocalProtocolError
from kiltmq.protocol.frames import HEARTBEAT_FRAME, content_header_payload, encode_frame

from .strategies import SETTINGS

# -- the in-memory pair --------------------------------------------------------------------

LogEntry = tuple[str, tuple[Any, ...]]


@dataclass
class Peer:
    """A Connection plus a log of what was done to it, so a conversation can be replayed."""

    conn: Connection
    log: list[LogEntry] = field(default_factory=list)

    def act(self, name: str, *args: Any) -> None:
        self.log.append((name, args))
        getattr(self.conn, name)(*args)

    def receive(self, data: bytes) -> list[Event]:
        self.log.append(("receive_data", (data,)))
        return self.conn.receive_data(data)


class Pair:
    """A client and a server connection talking through memory."""

    def __init__(self) -> None:
        self.client = Peer(Connection(Role.CLIENT))
        self.server = Peer(Connection(Role.SERVER))

    def peer(self, role: Role) -> Peer:
        return self.client if role is Role.CLIENT else self.server

    def flush(self, sender: Role) -> list[Event]:
        """Deliver everything ``sender`` queued to the other side; return its events."""
        src, dst = (
            (self.client, self.server) if sender is Role.CLIENT else (self.server, self.client)
        )
        data = src.conn.data_to_send()
        return dst.receive(data) if data else []

    def send(self, sender: Role, channel: int, method: spec.Method) -> list[Event]:
        self.peer(sender).act("send_method", channel, method)
        return self.flush(sender)

    def send_content(
        self,
        sender: Role,
        channel: int,
        method: spec.Method,
        props: spec.BasicProperties | bytes | None,
        body: bytes,
    ) -> list[Event]:
        self.peer(sender).act("send_content", channel, method, props, body)
        return self.flush(sender)

    def raw(self, sender: Role, data: bytes) -> list[Event]:
        """Frames the sender's state machine would refuse to send: a misbehaving peer."""
        self.peer(sender).act("send_raw", data)
        return self.flush(sender)

    def handshake(
        self,
        tune: tuple[int, int, int] = (2047, 131072, 60),
        tune_ok: tuple[int, int, int] | None = None,
        secure_rounds: int = 0,
    ) -> None:
        c, s = Role.CLIENT, Role.SERVER
        self.client.act("send_protocol_header")
        assert self.flush(c) == [ProtocolHeaderReceived(spec.PROTOCOL_HEADER, True)]
        start = spec.ConnectionStart(0, 9, {"product": "kiltmq"}, b"PLAIN", b"en_US")
        assert self.send(s, 0, start) == [MethodReceived(0, start)]
        start_ok = spec.ConnectionStartOk({"product": "test"}, "PLAIN", b"\0guest\0guest", "en_US")
        assert self.send(c, 0, start_ok) == [MethodReceived(0, start_ok)]
        for i in range(secure_rounds):
            secure = spec.ConnectionSecure(b"challenge %d" % i)
            assert self.send(s, 0, secure) == [MethodReceived(0, secure)]
            secure_ok = spec.ConnectionSecureOk(b"response %d" % i)
            assert self.send(c, 0, secure_ok) == [MethodReceived(0, secure_ok)]
        assert self.send(s, 0, spec.ConnectionTune(*tune)) == [
            MethodReceived(0, spec.ConnectionTune(*tune))
        ]
        agreed = tune_ok or tune
        assert self.send(c, 0, spec.ConnectionTuneOk(*agreed)) == [
            MethodReceived(0, spec.ConnectionTuneOk(*agreed))
        ]
        assert self.send(c, 0, spec.ConnectionOpen("/")) == [
            MethodReceived(0, spec.ConnectionOpen("/"))
        ]
        assert self.send(s, 0, spec.ConnectionOpenOk()) == [
            MethodReceived(0, spec.ConnectionOpenOk())
        ]
        assert state(self.client.conn) is ConnectionState.OPENED
        assert state(self.server.conn) is ConnectionState.OPENED

    def open_channel(self, channel: int) -> None:
        assert self.send(Role.CLIENT, channel, spec.ChannelOpen()) == [
            MethodReceived(channel, spec.ChannelOpen())
        ]
        assert self.send(Role.SERVER, channel, spec.ChannelOpenOk()) == [
            MethodReceived(channel, spec.ChannelOpenOk())
        ]


def opened(channels: tuple[int, ...] = (1,), **tune: Any) -> Pair:
    pair = Pair()
    pair.handshake(**tune)
    for channel in channels:
        pair.open_channel(channel)
    return pair


def state(conn: Connection) -> ConnectionState:
    """The connection's state, read through a call so that mypy does not narrow it."""
    return conn.state


def channel_state(conn: Connection, channel: int) -> ChannelState:
    return conn.channels[channel].state


def error_of(events: list[Event]) -> ProtocolError:
    assert events, "expected a ProtocolError event"
    last = events[-1]
    assert isinstance(last, ProtocolError), events
    return last


# -- handshake -----------------------------------------------------------------------------


def test_full_handshake_states_and_negotiated_limits() -> None:
    pair = Pair()
    client, server = pair.client.conn, pair.server.conn
    assert state(client) is state(server) is ConnectionState.HEADER
    pair.client.act("send_protocol_header")
    assert state(client) is ConnectionState.START
    assert client.data_to_send() == b"AMQP\x00\x00\x09\x01"
    events = server.receive_data(b"AMQP\x00\x00\x09\x01")
    assert events == [ProtocolHeaderReceived(b"AMQP\x00\x00\x09\x01", True)]
    assert state(server) is ConnectionState.START

    pair.send(Role.SERVER, 0, spec.ConnectionStart(0, 9, {}, b"PLAIN", b"en_US"))
    assert state(client) is state(server) is ConnectionState.START_OK
    pair.send(Role.CLIENT, 0, spec.ConnectionStartOk({}, "AMQPLAIN", b"x", "en_US"))
    assert state(client) is state(server) is ConnectionState.SECURE_OR_TUNE
    pair.send(Role.SERVER, 0, spec.ConnectionSecure(b"more?"))
    assert state(client) is state(server) is ConnectionState.SECURE_OK
    pair.send(Role.CLIENT, 0, spec.ConnectionSecureOk(b"yes"))
    assert state(client) is state(server) is ConnectionState.SECURE_OR_TUNE
    events = pair.send(Role.SERVER, 0, spec.ConnectionTune(100, 8192, 30))
    assert state(client) is state(server) is ConnectionState.TUNE_OK
    assert client.peer_tune == spec.ConnectionTune(100, 8192, 30)
    assert events == [MethodReceived(0, spec.ConnectionTune(100, 8192, 30))]
    pair.send(Role.CLIENT, 0, spec.ConnectionTuneOk(50, 4096, 10))
    assert state(client) is state(server) is ConnectionState.OPEN
    assert server.peer_tune == spec.ConnectionTuneOk(50, 4096, 10)
    for conn in (client, server):
        assert (conn.channel_max, conn.frame_max, conn.heartbeat.interval) == (50, 4096, 10)
    pair.send(Role.CLIENT, 0, spec.ConnectionOpen("/vhost"))
    assert state(client) is state(server) is ConnectionState.OPEN_OK
    pair.send(Role.SERVER, 0, spec.ConnectionOpenOk())
    assert state(client) is state(server) is ConnectionState.OPENED


def test_handshake_helper_with_secure_rounds() -> None:
    pair = Pair()
    pair.handshake(secure_rounds=2)
    assert pair.server.conn.frame_max == 131072


def test_tune_ok_frame_max_zero_means_no_limit() -> None:
    pair = opened(tune=(0, 0, 0))
    assert pair.server.conn.frame_max == 0
    body = b"b" * 300_000
    events = pair.send_content(Role.CLIENT, 1, spec.BasicPublish("", "q"), None, body)
    assert events == [ContentReceived(1, spec.BasicPublish("", "q"), b"\x00\x00", body)]


@pytest.mark.parametrize(
    "header", [b"AMQP\x00\x00\x09\x01", b"AMQP\x01\x01\x00\x09", b"AMQP\x01\x01\x08\x00"]
)
def test_accepted_protocol_headers(header: bytes) -> None:
    server = Connection(Role.SERVER)
    assert server.receive_data(header[:3]) == []
    assert server.receive_data(header[3:]) == [ProtocolHeaderReceived(header, True)]


@pytest.mark.parametrize(
    "header",
    [b"AMQP\x00\x01\x00\x00", b"AMQP\x03\x01\x00\x00", b"GET / HT", b"AMQP\x00\x00\x09\x02"],
)
def test_unsupported_protocol_header(header: bytes) -> None:
    server = Connection(Role.SERVER)
    events = server.receive_data(header + b"more bytes that are ignored")
    assert events == [ProtocolHeaderReceived(header, False)]
    assert state(server) is ConnectionState.CLOSED
    assert server.receive_data(b"anything") == []


def test_local_misuse_raises() -> None:
    pair = Pair()
    with pytest.raises(LocalProtocolError):
        pair.server.conn.send_protocol_header()
    with pytest.raises(LocalProtocolError):
        pair.client.conn.send_method(0, spec.ConnectionStart())  # a client does not send start
    pair.client.act("send_protocol_header")
    with pytest.raises(LocalProtocolError):
        pair.client.conn.send_protocol_header()
    with pytest.raises(LocalProtocolError):
        pair.client.conn.send_method(0, spec.ConnectionOpen("/"))  # not before start-ok, tune
    with pytest.raises(LocalProtocolError):
        pair.client.conn.send_method(1, spec.ChannelOpen())  # connection not open
    with pytest.raises(LocalProtocolError):
        pair.client.conn.send_method(1, spec.BasicPublish())  # content: use send_content
    pair.flush(Role.CLIENT)


def test_local_misuse_on_channels() -> None:
    pair = opened()
    client = pair.client.conn
    with pytest.raises(LocalProtocolError):
        client.send_method(1, spec.ChannelOpen())  # already open
    with pytest.raises(LocalProtocolError):
        client.send_method(2, spec.BasicQos())  # not open
    with pytest.raises(LocalProtocolError):
        client.send_content(2, spec.BasicPublish(), None, b"")
    assert client.data_to_send() == b""


# -- channels ------------------------------------------------------------------------------


def test_channel_open_and_close_by_the_client() -> None:
    pair = opened(channels=())
    client, server = pair.client.conn, pair.server.conn
    pair.client.act("send_method", 1, spec.ChannelOpen())
    assert channel_state(client, 1) is ChannelState.OPENING
    assert pair.flush(Role.CLIENT) == [MethodReceived(1, spec.ChannelOpen())]
    assert channel_state(server, 1) is ChannelState.OPEN
    pair.send(Role.SERVER, 1, spec.ChannelOpenOk())
    assert channel_state(client, 1) is ChannelState.OPEN

    close = spec.ChannelClose(200, "bye", 0, 0)
    pair.client.act("send_method", 1, close)
    assert channel_state(client, 1) is ChannelState.CLOSING
    assert pair.flush(Role.CLIENT) == [MethodReceived(1, close)]
    assert pair.send(Role.SERVER, 1, spec.ChannelCloseOk()) == [
        MethodReceived(1, spec.ChannelCloseOk())
    ]
    assert 1 not in client.channels and 1 not in server.channels
    pair.open_channel(1)  # the number can be used again


def test_channel_closed_by_the_server() -> None:
    pair = opened(channels=(1, 2))
    client, server = pair.client.conn, pair.server.conn
    close = spec.ChannelClose(404, "NOT_FOUND - no queue 'q'", 50, 10)
    assert pair.send(Role.SERVER, 2, close) == [MethodReceived(2, close)]
    assert channel_state(server, 2) is ChannelState.CLOSING
    assert pair.send(Role.CLIENT, 2, spec.ChannelCloseOk()) == [
        MethodReceived(2, spec.ChannelCloseOk())
    ]
    assert set(client.channels) == set(server.channels) == {1}


def test_only_clients_open_channels() -> None:
    pair = opened(channels=())
    events = pair.send(Role.SERVER, 3, spec.ChannelOpen())
    assert error_of(events).error.reply_code == 503


def test_both_sides_close_a_channel_at_once() -> None:
    pair = opened()
    pair.client.act("send_method", 1, spec.ChannelClose(200, "client", 0, 0))
    pair.server.act("send_method", 1, spec.ChannelClose(200, "server", 0, 0))
    assert pair.flush(Role.CLIENT) == [MethodReceived(1, spec.ChannelClose(200, "client", 0, 0))]
    assert pair.flush(Role.SERVER) == [MethodReceived(1, spec.ChannelClose(200, "server", 0, 0))]
    pair.client.act("send_method", 1, spec.ChannelCloseOk())
    pair.server.act("send_method", 1, spec.ChannelCloseOk())
    assert pair.flush(Role.CLIENT) == []  # already gone on the server: nothing to report
    assert pair.flush(Role.SERVER) == []
    assert not pair.client.conn.channels and not pair.server.conn.channels


def test_discarding_after_we_sent_channel_close() -> None:
    pair = opened(channels=(1, 2))
    server = pair.server.conn
    pair.server.act("send_method", 1, spec.ChannelClose(406, "PRECONDITION_FAILED", 60, 80))
    # the client had not seen the close yet and kept going on channel 1
    publish = spec.BasicPublish("", "q")
    pair.client.act("send_content", 1, publish, spec.BasicProperties(), b"body")
    pair.client.act("send_method", 1, spec.BasicAck(1))
    pair.client.act("send_content", 1, publish, None, b"")
    # ... and on channel 2, which is unaffected
    pair.client.act("send_method", 2, spec.BasicAck(2))
    assert pair.flush(Role.CLIENT) == [MethodReceived(2, spec.BasicAck(2))]
    assert channel_state(server, 1) is ChannelState.CLOSING
    # now the client answers
    assert pair.flush(Role.SERVER) == [
        MethodReceived(1, spec.ChannelClose(406, "PRECONDITION_FAILED", 60, 80))
    ]
    assert pair.send(Role.CLIENT, 1, spec.ChannelCloseOk()) == [
        MethodReceived(1, spec.ChannelCloseOk())
    ]
    assert 1 not in server.channels


def test_channel_closing_in_the_middle_of_content() -> None:
    pair = opened(tune=(2047, 4096, 0))
    server = pair.server.conn
    publish = spec.BasicPublish("", "q")
    header = encode_frame(1, 1, publish.encode()) + encode_frame(
        2, 1, content_header_payload(60, 10, None)
    )
    assert pair.raw(Role.CLIENT, header) == []
    pair.server.act("send_method", 1, spec.ChannelClose(320, "bye", 0, 0))
    # a confused peer sends a method in the middle of the content, then body frames
    events = pair.raw(
        Role.CLIENT,
        encode_frame(1, 1, spec.BasicAck(1).encode())
        + encode_frame(3, 1, b"12345")
        + encode_frame(3, 1, b"67890"),
    )
    assert events == []
    assert channel_state(server, 1) is ChannelState.CLOSING
    assert pair.send(Role.CLIENT, 1, spec.ChannelCloseOk()) == [
        MethodReceived(1, spec.ChannelCloseOk())
    ]


# -- connection close ----------------------------------------------------------------------


@pytest.mark.parametrize("closer", [Role.CLIENT, Role.SERVER])
def test_connection_close_either_direction(closer: Role) -> None:
    pair = opened(channels=(1,))
    other = Role.SERVER if closer is Role.CLIENT else Role.CLIENT
    closing, answering = pair.peer(closer).conn, pair.peer(other).conn
    close = spec.ConnectionClose(320, "CONNECTION_FORCED - shutdown", 0, 0)
    pair.peer(closer).act("send_method", 0, close)
    assert state(closing) is ConnectionState.CLOSING
    # the peer's in-flight traffic is discarded once we sent close
    if other is Role.CLIENT:
        pair.client.act("send_method", 1, spec.BasicQos(0, 5, False))
    else:
        pair.server.act("send_content", 1, spec.BasicDeliver("c", 1, False, "", "q"), None, b"x")
    pair.peer(other).act("send_heartbeat")
    events = pair.flush(other)
    assert events == [HeartbeatReceived()]
    assert pair.flush(closer) == [MethodReceived(0, close)]
    assert state(answering) is ConnectionState.CLOSING
    pair.peer(other).act("send_method", 0, spec.ConnectionCloseOk())
    assert state(answering) is ConnectionState.CLOSED
    assert pair.flush(other) == [MethodReceived(0, spec.ConnectionCloseOk())]
    assert state(closing) is ConnectionState.CLOSED
    assert closing.receive_data(HEARTBEAT_FRAME) == []


def test_connection_close_during_handshake() -> None:
    pair = Pair()
    pair.client.act("send_protocol_header")
    pair.flush(Role.CLIENT)
    close = spec.ConnectionClose(530, "NOT_ALLOWED", 0, 0)
    assert pair.send(Role.SERVER, 0, close) == [MethodReceived(0, close)]
    assert pair.send(Role.CLIENT, 0, spec.ConnectionCloseOk()) == [
        MethodReceived(0, spec.ConnectionCloseOk())
    ]
    assert state(pair.server.conn) is ConnectionState.CLOSED


def test_blocked_and_unblocked_once_open() -> None:
    pair = opened()
    blocked = spec.ConnectionBlocked("low on memory")
    assert pair.send(Role.SERVER, 0, blocked) == [MethodReceived(0, blocked)]
    assert pair.send(Role.SERVER, 0, spec.ConnectionUnblocked()) == [
        MethodReceived(0, spec.ConnectionUnblocked())
    ]
    assert state(pair.client.conn) is ConnectionState.OPENED


# -- content -------------------------------------------------------------------------------


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


# -- heartbeats ----------------------------------------------------------------------------


def test_heartbeat_bookkeeping_with_explicit_times() -> None:
    hb = Heartbeat()
    assert not hb.send_due(1e9) and not hb.peer_dead(1e9)
    assert hb.next_deadline(0) is None
    hb.start(60, now=1000.0)
    assert hb.interval == 60
    assert not hb.send_due(1029.9)
    assert hb.send_due(1030.0)  # half the interval without sending
    assert hb.next_deadline(1000.0) == 1030.0
    hb.sent(1030.0)
    assert not hb.send_due(1059.0)
    # the peer is dead after two intervals of silence (strictly more than 120 s)
    assert not hb.peer_dead(1120.0)
    assert hb.peer_dead(1120.001)
    assert hb.next_deadline(1030.0) == 1060.0
    hb.received(1100.0)
    assert not hb.peer_dead(1200.0)
    hb.sent(1200.0)
    assert hb.next_deadline(1200.0) == 1220.0  # last_received + 120 comes first
    custom = Heartbeat(10, miss_limit=3)
    custom.start(10, 0.0)
    assert not custom.peer_dead(30.0) and custom.peer_dead(30.5)


def test_heartbeat_frames_and_negotiated_interval() -> None:
    pair = opened(tune=(0, 131072, 60), tune_ok=(0, 131072, 20))
    assert pair.client.conn.heartbeat.interval == pair.server.conn.heartbeat.interval == 20
    pair.client.act("send_heartbeat")
    assert pair.client.conn.data_to_send() == HEARTBEAT_FRAME
    pair.server.act("send_heartbeat")
    assert pair.flush(Role.SERVER) == [HeartbeatReceived()]


def test_heartbeat_during_handshake_is_fine() -> None:
    pair = Pair()
    pair.client.act("send_protocol_header")
    pair.flush(Role.CLIENT)
    assert pair.raw(Role.CLIENT, HEARTBEAT_FRAME) == [HeartbeatReceived()]


@pytest.mark.parametrize(
    ("ours", "theirs", "agreed"),
    [(0, 0, 0), (0, 5, 5), (5, 0, 5), (3, 5, 3), (5, 3, 3), (2047, 65535, 2047), (60, 60, 60)],
)
def test_negotiate(ours: int, theirs: int, agreed: int) -> None:
    assert negotiate(ours, theirs) == agreed


# -- protocol violations -------------------------------------------------------------------


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
    deliver = method(1, spec.BasicDeliver("c", 1, False, "", "q"))
    error = violation(opened(), deliver, sender=Role.CLIENT)  # the server receives a deliver
    assert (error.error.reply_code, error.error.class_id, error.error.method_id) == (503, 60, 60)
    error = violation(opened(), method(1, spec.BasicPublish()), sender=Role.SERVER)
    assert error.error.reply_code == 503
    error = violation(opened(), method(0, spec.ConnectionOpenOk()), sender=Role.CLIENT)
    assert error.error.reply_code == 503


def test_malformed_arguments() -> None:
    payload = spec.BasicPublish("ex", "rk").encode()
    error = violation(opened(), encode_frame(1, 1, payload[:-3]))
    assert (error.error.reply_code, error.error.class_id, error.error.method_id) == (502, 60, 40)
    bad_table = spec.QueueDeclare("q").encode()[:-4] + b"\x00\x00\x00\x03\x01kZ"
    assert violation(opened(), encode_frame(1, 1, bad_table)).error.reply_code == 502
    bad_utf8 = b"\x00\x3c\x00\x28\x00\x00\x01\xff\x00\x00"
    assert violation(opened(), encode_frame(1, 1, bad_utf8)).error.reply_code == 502


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
