"""Channels as the connection sees them: opening, closing from either side, and discarding
after channel.close."""

from __future__ import annotations

from kiltmq.protocol import spec
from kiltmq.protocol.connection import ChannelState, MethodReceived, Role
from kiltmq.protocol.frames import content_header_payload, encode_frame, method_frame

from .pair import channel_state, error_of, opened


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


def test_methods_behind_the_peers_channel_close() -> None:
    # as RabbitMQ: until our close-ok, another close is answered again, the rest dropped
    pair = opened()
    server = pair.server
    close = method_frame(1, spec.ChannelClose(200, "bye", 0, 0))
    publish = method_frame(1, spec.BasicPublish("", "q"))
    header = encode_frame(2, 1, content_header_payload(60, 1, None))
    body = encode_frame(3, 1, b"x")
    events = server.receive(close + publish + header + body + close)
    assert events == [MethodReceived(1, spec.ChannelClose(200, "bye", 0, 0))] * 2
    assert channel_state(server.conn, 1) is ChannelState.PEER_CLOSING
    server.act("send_method", 1, spec.ChannelCloseOk())
    server.act("send_method", 1, spec.ChannelCloseOk())  # the repeated close's answer
    assert server.conn.data_to_send() == method_frame(1, spec.ChannelCloseOk()) * 2
    assert 1 not in server.conn.channels


def test_channel_open_behind_the_peers_close_is_a_second_open() -> None:
    pair = opened()
    frames = method_frame(1, spec.ChannelClose(200, "bye", 0, 0))
    frames += method_frame(1, spec.ChannelOpen())
    events = pair.server.receive(frames)
    assert error_of(events).error.reply_code == 504
