"""The AMQP connection as a sans-IO state machine, for either role.

Theory of operation
-------------------
``Connection(role)`` is fed bytes with :meth:`Connection.receive_data`, which returns
events; it is told what we send with :meth:`Connection.send_method` and friends, which
append frames to an outgoing buffer read with :meth:`Connection.data_to_send`. It never
reads a clock or a socket: time comes in as arguments (see :class:`Heartbeat`).

Everything that decides whether a frame is legal lives here:

* The connection handshake is a table (``_HANDSHAKE``) from (state, method) to the next
  state. The same table serves both roles, because the spec says which side sends each
  method (``SENT_BY_CLIENT`` / ``SENT_BY_SERVER`` in ``spec.py``); a method arriving from
  the wrong side is 503 COMMAND_INVALID, an unknown method 540 NOT_IMPLEMENTED.
* Channels: a channel exists from channel.open until channel.close-ok. A method on a
  channel that is not open is 504 CHANNEL_ERROR; a second channel.open too. After we
  send channel.close, everything on that channel but close/close-ok is discarded, as the
  spec requires; the same for the connection after connection.close.
* Content: a content-bearing method (basic.publish, basic.deliver, ...) must be followed
  on its channel by one content header and body frames up to the header's body size;
  anything else on that channel meanwhile is 505 UNEXPECTED_FRAME. Frames of other
  channels may interleave. The assembled message is one :class:`ContentReceived` event
  whose properties stay encoded (``raw_properties``) until someone asks for them.
* Negotiated limits (channel_max, frame_max, heartbeat) take effect when tune-ok passes
  in either direction.

A violation by the peer does not raise: :meth:`receive_data` returns the events decoded
before it followed by a :class:`ProtocolError` event carrying the
:class:`~kiltmq.protocol.errors.AMQPError` (always a connection error) that the shell
should report in connection.close. The connection then ignores further input. A misuse
by our own side raises :class:`~kiltmq.protocol.errors.LocalProtocolError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from kiltmq.protocol import spec
from kiltmq.protocol.errors import (
    AMQPError,
    AMQPNotImplemented,
    AMQPSyntaxError,
    ChannelError,
    CommandInvalid,
    FrameError,
    LocalProtocolError,
    NotAllowed,
    UnexpectedFrame,
)
from kiltmq.protocol.frames import (
    ACCEPTED_PROTOCOL_HEADERS,
    HEARTBEAT_FRAME,
    INITIAL_FRAME_MAX,
    FrameReader,
    content_frames,
    content_header_payload,
    method_frame,
)
from kiltmq.protocol.spec import METHODS, BasicProperties, Method

__all__ = [
    "Channel",
    "ChannelState",
    "Connection",
    "ConnectionState",
    "ContentReceived",
    "Event",
    "Heartbeat",
    "HeartbeatReceived",
    "MethodReceived",
    "ProtocolError",
    "ProtocolHeaderReceived",
    "Role",
    "negotiate",
]

_S_I = struct.Struct(">I")
_S_HHQ = struct.Struct(">HHQ")
_unpack_I = _S_I.unpack_from
_unpack_HHQ = _S_HHQ.unpack_from


class Role(Enum):
    CLIENT = "client"
    SERVER = "server"


class ConnectionState(Enum):
    """Where the handshake stands; the name says what is expected next."""

    HEADER = "header"  # protocol header not yet exchanged
    START = "start"  # connection.start expected (from the server)
    START_OK = "start-ok"  # connection.start-ok expected (from the client)
    SECURE_OR_TUNE = "secure-or-tune"  # server sends connection.secure or connection.tune
    SECURE_OK = "secure-ok"  # connection.secure-ok expected (from the client)
    TUNE_OK = "tune-ok"  # connection.tune-ok expected (from the client)
    OPEN = "open"  # connection.open expected (from the client)
    OPEN_OK = "open-ok"  # connection.open-ok expected (from the server)
    OPENED = "opened"  # channels may be used
    CLOSING = "closing"  # connection.close sent or received, close-ok expected
    CLOSED = "closed"


S = ConnectionState
# (state, method name) -> next state, whichever side sends.
_HANDSHAKE: dict[tuple[ConnectionState, str], ConnectionState] = {
    (S.START, "connection.start"): S.START_OK,
    (S.START_OK, "connection.start-ok"): S.SECURE_OR_TUNE,
    (S.SECURE_OR_TUNE, "connection.secure"): S.SECURE_OK,
    (S.SECURE_OK, "connection.secure-ok"): S.SECURE_OR_TUNE,
    (S.SECURE_OR_TUNE, "connection.tune"): S.TUNE_OK,
    (S.TUNE_OK, "connection.tune-ok"): S.OPEN,
    (S.OPEN, "connection.open"): S.OPEN_OK,
    (S.OPEN_OK, "connection.open-ok"): S.OPENED,
}
# Connection methods allowed once open, in either direction, that keep the state.
_OPENED_METHODS = frozenset(
    {
        "connection.blocked",
        "connection.unblocked",
        "connection.update-secret",
        "connection.update-secret-ok",
    }
)


class ChannelState(Enum):
    OPENING = "opening"  # channel.open sent, open-ok expected
    OPEN = "open"
    CLOSING = "closing"  # we sent channel.close; only close/close-ok count now


# Enum members as module constants for the receive path: reading ``ConnectionState.X``
# costs a class attribute lookup through the enum machinery each time.
_HEADER = ConnectionState.HEADER
_OPENED = ConnectionState.OPENED
_CLOSING = ConnectionState.CLOSING
_CLOSED = ConnectionState.CLOSED
_CHANNEL_OPEN = ChannelState.OPEN
_CHANNEL_CLOSING = ChannelState.CLOSING


# -- events ------------------------------------------------------------------------------


class Event:
    """Base of everything :meth:`Connection.receive_data` returns."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class ProtocolHeaderReceived(Event):
    """Server role: the client's protocol header. If not ``supported`` the shell should
    write :data:`~kiltmq.protocol.spec.PROTOCOL_HEADER` and close the socket, as the spec
    says."""

    header: bytes
    supported: bool


@dataclass(frozen=True, slots=True)
class MethodReceived(Event):
    """A method without content."""

    channel: int
    method: Method


@dataclass(frozen=True, slots=True)
class ContentReceived(Event):
    """A content-bearing method with its header and whole body.

    ``raw_properties`` are the encoded property flags and values, kept as received so a
    broker can pass them on without decoding; :meth:`properties` decodes them.
    """

    channel: int
    method: Method
    raw_properties: bytes
    body: bytes

    def properties(self) -> BasicProperties:
        return BasicProperties.decode(self.raw_properties)


@dataclass(frozen=True, slots=True)
class HeartbeatReceived(Event):
    pass


@dataclass(frozen=True, slots=True)
class ProtocolError(Event):
    """The peer broke the protocol; report ``error`` in connection.close and stop."""

    error: AMQPError


_HEARTBEAT_EVENT = HeartbeatReceived()

# Events are frozen dataclasses; their generated __init__ sets each field through
# object.__setattr__. On the hot path they are built with the slot descriptors instead,
# which is about twice as fast and gives the same objects.
_new_event = object.__new__


def _slot_setter(cls: type, name: str) -> Callable[[object, object], None]:
    setter: Callable[[object, object], None] = vars(cls)[name].__set__
    return setter


_set_method_channel = _slot_setter(MethodReceived, "channel")
_set_method_method = _slot_setter(MethodReceived, "method")
_set_content_channel = _slot_setter(ContentReceived, "channel")
_set_content_method = _slot_setter(ContentReceived, "method")
_set_content_raw = _slot_setter(ContentReceived, "raw_properties")
_set_content_body = _slot_setter(ContentReceived, "body")


def _method_received(channel: int, method: Method) -> MethodReceived:
    event: MethodReceived = _new_event(MethodReceived)
    _set_method_channel(event, channel)
    _set_method_method(event, method)
    return event


def _content_received(
    channel: int, method: Method, raw_properties: bytes, body: bytes
) -> ContentReceived:
    event: ContentReceived = _new_event(ContentReceived)
    _set_content_channel(event, channel)
    _set_content_method(event, method)
    _set_content_raw(event, raw_properties)
    _set_content_body(event, body)
    return event


# -- heartbeats --------------------------------------------------------------------------


class Heartbeat:
    """Heartbeat bookkeeping as data: the shell tells it when bytes moved and asks what to do.

    With a negotiated timeout of ``interval`` seconds we send a heartbeat frame when we have
    sent nothing for ``interval / 2`` seconds, and count the peer as dead when it has sent
    nothing for ``miss_limit * interval`` seconds (RabbitMQ's rule: two missed beats).
    ``interval`` 0 disables both.
    """

    __slots__ = ("interval", "last_received", "last_sent", "miss_limit")

    def __init__(self, interval: float = 0, miss_limit: int = 2) -> None:
        self.interval = interval
        self.miss_limit = miss_limit
        self.last_received = 0.0
        self.last_sent = 0.0

    def start(self, interval: float, now: float) -> None:
        self.interval = interval
        self.last_received = self.last_sent = now

    def received(self, now: float) -> None:
        self.last_received = now

    def sent(self, now: float) -> None:
        self.last_sent = now

    def send_due(self, now: float) -> bool:
        return bool(self.interval) and now - self.last_sent >= self.interval / 2

    def peer_dead(self, now: float) -> bool:
        return bool(self.interval) and now - self.last_received > self.interval * self.miss_limit

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`send_due` or :meth:`peer_dead` may next become true (None: never)."""
        if not self.interval:
            return None
        return min(
            self.last_sent + self.interval / 2,
            self.last_received + self.interval * self.miss_limit,
        )


def negotiate(ours: int, theirs: int) -> int:
    """Tune negotiation for channel_max, frame_max and heartbeat: 0 means "no limit", so
    the non-zero value wins; otherwise the smaller one."""
    if not ours or not theirs:
        return ours or theirs
    return min(ours, theirs)


# -- the connection ----------------------------------------------------------------------


class Channel:
    """Per-channel protocol state: open/closing and content being assembled."""

    __slots__ = (
        "body_size",
        "content_method",
        "header_seen",
        "number",
        "parts",
        "raw_properties",
        "received",
        "state",
    )

    def __init__(self, number: int, state: ChannelState) -> None:
        self.number = number
        self.state = state
        self.content_method: Method | None = None
        self.header_seen = False
        self.body_size = 0
        self.raw_properties = b""
        self.parts: list[bytes] = []
        self.received = 0


class Connection:
    """One AMQP connection, seen from ``role``'s end. See the module docstring."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.state = ConnectionState.HEADER
        self.channel_max = 0
        self.frame_max = INITIAL_FRAME_MAX
        self.heartbeat = Heartbeat()
        self.channels: dict[int, Channel] = {}
        self._reader = FrameReader(server=role is Role.SERVER)
        self._out: list[bytes] = []
        self._failed = False
        sent_by_peer = "SENT_BY_CLIENT" if role is Role.SERVER else "SENT_BY_SERVER"
        self._receivable = {i: m for i, m in METHODS.items() if getattr(m, sent_by_peer)}
        #: The peer's tune-ok / tune values, once seen.
        self.peer_tune: spec.ConnectionTune | spec.ConnectionTuneOk | None = None

    # -- output ---------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Everything queued for the peer since the last call."""
        out = self._out
        if not out:
            return b""
        data = b"".join(out) if len(out) > 1 else out[0]
        self._out = []
        return data

    def send_protocol_header(self) -> None:
        if self.role is not Role.CLIENT or self.state is not ConnectionState.HEADER:
            raise LocalProtocolError("only a client sends the protocol header, once")
        self._out.append(spec.PROTOCOL_HEADER)
        self.state = ConnectionState.START

    def send_heartbeat(self) -> None:
        self._out.append(HEARTBEAT_FRAME)

    def send_method(self, channel: int, method: Method) -> None:
        """Queue a method without content, tracking the state it changes."""
        if method.HAS_CONTENT:
            raise LocalProtocolError(f"{method.NAME} carries content: use send_content")
        if channel == 0:
            self._connection_method_sent(method)
        else:
            self._channel_method_sent(channel, method)
        self._out.append(method_frame(channel, method))

    def send_content(
        self,
        channel: int,
        method: Method,
        properties: BasicProperties | bytes | None,
        body: bytes,
    ) -> None:
        """Queue a content-bearing method with its header and body frames.

        ``properties`` may be a :class:`BasicProperties` or already-encoded property bytes.
        """
        state = self.channels.get(channel)
        if state is None or state.state is not ChannelState.OPEN:
            raise LocalProtocolError(f"channel {channel} is not open")
        self._out.append(
            content_frames(
                channel,
                method.encode(),
                content_header_payload(method.CLASS_ID, len(body), properties),
                body,
                self.frame_max,
            )
        )

    def send_raw(self, data: bytes) -> None:
        """Queue frames encoded elsewhere (the broker's pre-encoded deliveries). The caller
        is responsible for their legality."""
        self._out.append(data)

    def _connection_method_sent(self, method: Method) -> None:
        name = method.NAME
        if name == "connection.close":
            self.state = ConnectionState.CLOSING
            return
        if name == "connection.close-ok":
            self.state = ConnectionState.CLOSED
            return
        mine = method.SENT_BY_CLIENT if self.role is Role.CLIENT else method.SENT_BY_SERVER
        if not mine:
            raise LocalProtocolError(f"a {self.role.value} does not send {name}")
        if self.state is ConnectionState.OPENED and name in _OPENED_METHODS:
            return
        nxt = _HANDSHAKE.get((self.state, name))
        if nxt is None:
            raise LocalProtocolError(f"cannot send {name} in state {self.state.value}")
        self.state = nxt
        if isinstance(method, spec.ConnectionTuneOk):
            self._tuned(method)

    def _channel_method_sent(self, channel: int, method: Method) -> None:
        if self.state is not ConnectionState.OPENED:
            if self.state is ConnectionState.CLOSING:
                return  # racing a connection close: harmless, the peer discards it
            raise LocalProtocolError(f"connection not open (state {self.state.value})")
        state = self.channels.get(channel)
        name = method.NAME
        if name == "channel.open":
            if state is not None:
                raise LocalProtocolError(f"channel {channel} is already open")
            self.channels[channel] = Channel(channel, ChannelState.OPENING)
        elif state is None:
            raise LocalProtocolError(f"channel {channel} is not open (sending {name})")
        elif name == "channel.open-ok":
            state.state = ChannelState.OPEN
        elif name == "channel.close":
            state.state = ChannelState.CLOSING
        elif name == "channel.close-ok":
            del self.channels[channel]

    def _tuned(self, tune_ok: spec.ConnectionTuneOk) -> None:
        self.channel_max = tune_ok.channel_max
        self.frame_max = tune_ok.frame_max or 0
        self._reader.frame_max = self.frame_max or 0
        self.heartbeat.interval = tune_ok.heartbeat

    # -- input ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return the events they complete."""
        if self._failed or self.state is _CLOSED:
            return []
        events: list[Event] = []
        try:
            frames = self._reader.feed(data)
            if self.state is _HEADER and self.role is Role.SERVER:
                header = self._reader.protocol_header
                if header is None:
                    return events
                supported = header in ACCEPTED_PROTOCOL_HEADERS
                self.state = ConnectionState.START if supported else ConnectionState.CLOSED
                events.append(ProtocolHeaderReceived(header, supported))
                if not supported:
                    return events
            channels = self.channels
            for frame_type, channel, payload in frames:
                if frame_type == 3:
                    # Content body, the commonest frame: handled inline (this is the
                    # broker's and the consumer's hot path); strays go to _body_frame.
                    state = channels.get(channel)
                    if state is None or not state.header_seen:
                        self._body_frame(channel, state)
                        continue
                    received = state.received + len(payload)
                    if received < state.body_size:
                        state.parts.append(payload)
                        state.received = received
                        continue
                    method = state.content_method
                    assert method is not None
                    if received > state.body_size:
                        raise UnexpectedFrame(
                            f"content body of {received} bytes exceeds the announced "
                            f"{state.body_size}",
                            method.CLASS_ID,
                            method.METHOD_ID,
                        )
                    parts = state.parts
                    if parts:
                        parts.append(payload)
                        payload = b"".join(parts)
                        state.parts = []
                    state.content_method = None
                    state.header_seen = False
                    if state.state is _CHANNEL_OPEN:
                        events.append(
                            _content_received(channel, method, state.raw_properties, payload)
                        )
                elif frame_type == 1:
                    self._method_frame(channel, payload, events)
                elif frame_type == 2:
                    state = channels.get(channel)
                    if state is None or state.content_method is None or state.header_seen:
                        self._header_frame(channel, state)
                        continue
                    try:
                        class_id, _weight, body_size = _unpack_HHQ(payload, 0)
                    except struct.error:
                        raise FrameError("content header frame too short") from None
                    method = state.content_method
                    if class_id != method.CLASS_ID:
                        raise UnexpectedFrame(
                            f"content header class {class_id} does not match {method.NAME}",
                            method.CLASS_ID,
                            method.METHOD_ID,
                        )
                    raw = payload[12:]
                    if len(raw) < 2:
                        raise FrameError("content header frame has no property flags")
                    if body_size:
                        state.header_seen = True
                        state.body_size = body_size
                        state.raw_properties = raw
                        state.received = 0
                    else:  # no body frames follow
                        state.content_method = None
                        if state.state is _CHANNEL_OPEN:
                            events.append(_content_received(channel, method, raw, b""))
                else:  # heartbeat (the reader rejects unknown types)
                    if channel != 0:  # 505, as RabbitMQ says
                        raise UnexpectedFrame(f"heartbeat frame on channel {channel}")
                    events.append(_HEARTBEAT_EVENT)
            if self._reader.error is not None:
                # bad framing after the frames above, in the same data: raise it now
                self._reader.feed(b"")
        except AMQPError as error:
            self._failed = True
            header = self._reader.protocol_header
            if self.state is ConnectionState.HEADER and header:
                # bytes after the header broke framing before the header was reported:
                # report the header first (an unsupported one is all that matters then)
                supported = header in ACCEPTED_PROTOCOL_HEADERS
                self.state = ConnectionState.START if supported else ConnectionState.CLOSED
                events.append(ProtocolHeaderReceived(header, supported))
                if not supported:
                    return events
            events.append(ProtocolError(error))
        return events

    def _method_frame(self, channel: int, payload: bytes, events: list[Event]) -> None:
        try:
            (index,) = _unpack_I(payload, 0)
        except struct.error:
            raise FrameError("method frame too short") from None
        cls = self._receivable.get(index)
        if cls is None:
            other = METHODS.get(index)
            if other is None:
                raise AMQPNotImplemented(
                    f"unknown method (class {index >> 16}, method {index & 0xFFFF})",
                    index >> 16,
                    index & 0xFFFF,
                )
            peer = "server" if self.role is Role.CLIENT else "client"
            raise CommandInvalid(
                f"{other.NAME} may not be sent by a {peer}",
                other.CLASS_ID,
                other.METHOD_ID,
            )
        try:
            method = cls.decode(payload)
        except (ValueError, struct.error, IndexError) as exc:
            # UnicodeDecodeError is a ValueError
            raise AMQPSyntaxError(
                f"malformed {cls.NAME}: {exc}", cls.CLASS_ID, cls.METHOD_ID
            ) from None
        if channel == 0:
            if cls.CLASS_ID != 10:  # 504, as RabbitMQ says
                raise ChannelError(f"{cls.NAME} on channel 0", cls.CLASS_ID, cls.METHOD_ID)
            self._connection_method_received(method, events)
            return
        if cls.CLASS_ID == 10:
            raise CommandInvalid(
                f"{cls.NAME} on channel {channel}, expected channel 0", cls.CLASS_ID, cls.METHOD_ID
            )
        if self.state is not _OPENED:
            if self.state is _CLOSING:
                return  # discarded while the connection closes
            raise ChannelError(
                f"{cls.NAME} on channel {channel} before the connection is open",
                cls.CLASS_ID,
                cls.METHOD_ID,
            )
        state = self.channels.get(channel)
        if state is not None and state.state is _CHANNEL_OPEN:
            if state.content_method is not None:
                # RabbitMQ reports the method whose content was interrupted
                raise UnexpectedFrame(
                    f"expected content header/body for {state.content_method.NAME} on "
                    f"channel {channel}, got method {cls.NAME}",
                    state.content_method.CLASS_ID,
                    state.content_method.METHOD_ID,
                )
            if cls.HAS_CONTENT:
                state.content_method = method
                state.header_seen = False
                return
            if cls.CLASS_ID == 20:
                self._channel_method_received(channel, state, method, events)
            else:
                events.append(_method_received(channel, method))
            return
        self._channel_method_received(channel, state, method, events)

    def _channel_method_received(
        self, channel: int, state: Channel | None, method: Method, events: list[Event]
    ) -> None:
        name = method.NAME
        if name == "channel.open":
            if state is not None:
                raise ChannelError(f"second 'channel.open' seen on channel {channel}", 20, 10)
            # RabbitMQ's rule: channel_max bounds how many channels are open at once,
            # whatever their numbers (the spec text bounds the numbers).
            if self.channel_max and len(self.channels) >= self.channel_max:
                raise NotAllowed(
                    f"number of channels opened ({len(self.channels)}) has reached the "
                    f"negotiated channel_max ({self.channel_max})"
                )
            self.channels[channel] = Channel(channel, ChannelState.OPEN)
        elif state is None:
            if name == "channel.close-ok":
                return  # both sides closed at once; nothing left to do
            raise ChannelError(
                f"expected 'channel.open' on channel {channel}, got {name}",
                method.CLASS_ID,
                method.METHOD_ID,
            )
        elif state.state is ChannelState.CLOSING:
            if name == "channel.close-ok":
                del self.channels[channel]
            elif name != "channel.close":
                state.content_method = None
                state.header_seen = False
                state.parts = []
                return  # discarded: we are closing this channel
        elif state.state is ChannelState.OPENING:
            if name == "channel.open-ok":
                state.state = ChannelState.OPEN
            elif name != "channel.close":
                raise ChannelError(
                    f"{name} on channel {channel} before channel.open-ok",
                    method.CLASS_ID,
                    method.METHOD_ID,
                )
        elif name == "channel.close-ok":
            raise ChannelError(
                f"channel.close-ok on channel {channel}, which is not closing", 20, 41
            )
        events.append(_method_received(channel, method))

    def _connection_method_received(self, method: Method, events: list[Event]) -> None:
        name = method.NAME
        if name == "connection.close":
            self.state = ConnectionState.CLOSING
        elif name == "connection.close-ok":
            self.state = ConnectionState.CLOSED
        elif self.state is ConnectionState.CLOSING:
            return  # discarded while closing
        elif not (self.state is ConnectionState.OPENED and name in _OPENED_METHODS):
            nxt = _HANDSHAKE.get((self.state, name))
            if nxt is None:
                raise CommandInvalid(
                    f"{name} not expected in state {self.state.value}",
                    method.CLASS_ID,
                    method.METHOD_ID,
                )
            self.state = nxt
            if isinstance(method, spec.ConnectionTuneOk):
                self._tuned(method)
                self.peer_tune = method
            elif isinstance(method, spec.ConnectionTune):
                self.peer_tune = method
        events.append(_method_received(0, method))

    def _header_frame(self, channel: int, state: Channel | None) -> None:
        """A content header frame that no content method announced (see receive_data)."""
        if self.state is _CLOSING or (state is not None and state.state is _CHANNEL_CLOSING):
            return  # discarded: we are closing the channel or the connection
        raise UnexpectedFrame(f"unexpected content header frame on channel {channel}")

    def _body_frame(self, channel: int, state: Channel | None) -> None:
        """A content body frame that no content header announced (see receive_data)."""
        if self.state is _CLOSING or (state is not None and state.state is _CHANNEL_CLOSING):
            return  # discarded: we are closing the channel or the connection
        raise UnexpectedFrame(f"unexpected content body frame on channel {channel}")
