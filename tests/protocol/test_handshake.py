"""The connection handshake: protocol headers, start/secure/tune/open, negotiated limits,
and what a peer may not send before the connection is open."""

from __future__ import annotations

import pytest

from kiltmq.protocol import spec
from kiltmq.protocol.connection import (
    Connection,
    ConnectionState,
    ContentReceived,
    MethodReceived,
    ProtocolError,
    ProtocolHeaderReceived,
    Role,
    negotiate,
)
from kiltmq.protocol.errors import LocalProtocolError
from kiltmq.protocol.frames import method_frame

from .pair import Pair, opened, state


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


@pytest.mark.parametrize(
    ("ours", "theirs", "agreed"),
    [(0, 0, 0), (0, 5, 5), (5, 0, 5), (3, 5, 3), (5, 3, 3), (2047, 65535, 2047), (60, 60, 60)],
)
def test_negotiate(ours: int, theirs: int, agreed: int) -> None:
    assert negotiate(ours, theirs) == agreed


def _open_sent() -> Pair:
    """A pair whose client sent connection.open that the server has not answered."""
    pair = Pair()
    pair.handshake()
    pair.client.conn.state = pair.server.conn.state = ConnectionState.OPEN_OK
    return pair


def test_server_takes_channel_methods_right_behind_connection_open() -> None:
    # RabbitMQ answers the open first, then the channel methods pipelined behind it
    pair = _open_sent()
    frames = method_frame(1, spec.ChannelOpen()) + method_frame(1, spec.QueueDeclare("q"))
    events = pair.server.receive(frames)
    assert events == [
        MethodReceived(1, spec.ChannelOpen()),
        MethodReceived(1, spec.QueueDeclare("q", arguments={})),
    ]
    pair.server.act("send_method", 0, spec.ConnectionOpenOk())
    pair.server.act("send_method", 1, spec.ChannelOpenOk())
    assert state(pair.server.conn) is ConnectionState.OPENED


def test_client_refuses_channel_methods_before_open_ok() -> None:
    pair = _open_sent()
    (event,) = pair.client.receive(method_frame(1, spec.ChannelOpenOk()))
    assert isinstance(event, ProtocolError) and event.error.reply_code == 504


def test_open_ok_racing_the_peers_close_is_dropped() -> None:
    pair = _open_sent()
    pair.server.receive(method_frame(0, spec.ConnectionClose(200, "bye", 0, 0)))
    pair.server.act("send_method", 0, spec.ConnectionOpenOk())
    pair.server.act("send_method", 0, spec.ConnectionCloseOk())
    assert pair.server.conn.data_to_send() == method_frame(0, spec.ConnectionCloseOk())


def test_replies_after_the_peers_close_ok_are_dropped() -> None:
    pair = _open_sent()
    pair.server.receive(method_frame(0, spec.ConnectionCloseOk()))
    pair.server.act("send_method", 0, spec.ConnectionOpenOk())
    pair.server.act("send_method", 1, spec.ChannelOpenOk())
    assert pair.server.conn.data_to_send() == b""
