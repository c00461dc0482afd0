"""A client and a server Connection wired together in memory, each keeping a log of what
was done to it so that a conversation can be replayed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kiltmq.protocol import spec
from kiltmq.protocol.connection import (
    ChannelState,
    Connection,
    ConnectionState,
    Event,
    MethodReceived,
    ProtocolError,
    ProtocolHeaderReceived,
    Role,
)

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
