"""Server-role rules where the protocol core follows RabbitMQ rather than the spec text.

Found by the RabbitMQ compatibility suite (tests/compat): RabbitMQ 3.10 answers a heartbeat
frame on a non-zero channel with 505, a channel-class method on channel 0 with 504, and
counts open channels against channel_max instead of bounding channel numbers.
"""

from __future__ import annotations

from kiltmq.protocol import Connection, MethodReceived, ProtocolError, Role, spec
from kiltmq.protocol.frames import encode_frame, method_frame


def opened_server(channel_max: int = 0) -> Connection:
    """A server-role connection that went through the handshake."""
    server = Connection(Role.SERVER)
    server.receive_data(spec.PROTOCOL_HEADER)
    server.send_method(0, spec.ConnectionStart(mechanisms=b"PLAIN", locales=b"en_US"))
    server.receive_data(
        method_frame(0, spec.ConnectionStartOk(mechanism="PLAIN", response=b"\0g\0g"))
    )
    server.send_method(0, spec.ConnectionTune(channel_max=2047, frame_max=131072))
    server.receive_data(
        method_frame(0, spec.ConnectionTuneOk(channel_max=channel_max, frame_max=131072))
        + method_frame(0, spec.ConnectionOpen(virtual_host="/"))
    )
    server.send_method(0, spec.ConnectionOpenOk())
    server.data_to_send()
    return server


def error_of(events: list[object]) -> ProtocolError:
    assert events, "no events"
    last = events[-1]
    assert isinstance(last, ProtocolError), events
    return last


def test_heartbeat_on_a_channel_is_unexpected_frame() -> None:
    server = opened_server()
    error = error_of(list(server.receive_data(encode_frame(8, 1, b""))))
    assert error.error.reply_code == 505
    assert error.error.hard


def test_channel_method_on_channel_zero_is_channel_error() -> None:
    server = opened_server()
    events = server.receive_data(method_frame(0, spec.QueueDeclare(queue="q")))
    error = error_of(list(events)).error
    assert (error.reply_code, error.class_id, error.method_id) == (504, 50, 10)


def test_channel_max_counts_open_channels() -> None:
    server = opened_server(channel_max=2)
    # Channel numbers above channel_max are fine while fewer channels are open.
    events = server.receive_data(method_frame(5, spec.ChannelOpen()))
    assert [type(e) for e in events] == [MethodReceived]
    events = server.receive_data(method_frame(9, spec.ChannelOpen()))
    assert [type(e) for e in events] == [MethodReceived]
    error = error_of(list(server.receive_data(method_frame(1, spec.ChannelOpen())))).error
    assert error.reply_code == 530
    assert "channel_max (2)" in error.reply_text


def test_channel_max_zero_means_no_limit() -> None:
    server = opened_server(channel_max=0)
    for number in (1, 2, 3, 3000):
        events = server.receive_data(method_frame(number, spec.ChannelOpen()))
        assert [type(e) for e in events] == [MethodReceived]
