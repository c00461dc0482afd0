"""The AMQP connection as a sans-IO state machine, for either role.

Theory of operation
-------------------
``Connection(role)`` is fed bytes with :meth:`Connection.receive_data`, which returns
events (:mod:`~kiltmq.protocol.events`); it is told what we send with
:meth:`Connection.send_method` and friends, which append frames to an outgoing buffer read
with :meth:`Connection.data_to_send`. It never reads a clock or a socket: time comes in as
arguments (see :class:`~kiltmq.protocol.heartbeat.Heartbeat`).

Everything that decides whether a frame is legal is reached from here:

* The connection handshake (:mod:`~kiltmq.protocol.handshake`) is a table from (state,
  method) to the next state, for both roles; a method arriving from the wrong side is 503
  COMMAND_INVALID, an unknown method 540 NOT_IMPLEMENTED.
* Channels (:mod:`~kiltmq.protocol.channel`): a channel exists from channel.open until
  channel.close-ok. A method on a channel that is not open is 504 CHANNEL_ERROR. After
  we send channel.close, everything on that channel but close/close-ok is discarded, as
  the spec requires; the same for the connection after connection.close.
* Content: a content-bearing method (basic.publish, basic.deliver, ...) must be followed
  on its channel by one content header and body frames up to the header's body size;
  anything else on that channel meanwhile is 505 UNEXPECTED_FRAME. A server reads the
  content of one it does not take from clients (basic.deliver, or tunnel.request of a
  class RabbitMQ does not implement) before the 503, as RabbitMQ does
  (:mod:`~kiltmq.protocol.refusals`: what is refused or discarded). Frames of other
  channels may interleave. The assembled message is one :class:`ContentReceived` event
  whose properties stay encoded (``raw_properties``) until someone asks for them. The
  assembly is written out in :meth:`Connection.receive_data` itself, not called: it runs
  for every content frame the broker and the clients read.
* Message size: a server refuses a content header announcing more than
  ``max_body_size`` bytes before reading its body, with a :class:`ContentRefused` event
  (406 PRECONDITION_FAILED, RabbitMQ's text); the channel is closing from then on, so its
  body frames are discarded, not buffered.
* Negotiated limits (channel_max, frame_max, heartbeat) take effect when tune-ok passes
  in either direction; until then a server takes frames of up to 4096 payload bytes
  (:data:`HANDSHAKE_FRAME_MAX`), as RabbitMQ.
* The dialect (:mod:`~kiltmq.protocol.dialect`): a client speaks the one it is built with;
  a server takes the one the client's protocol header names (AMQP 0-9-1 or 0-8), once,
  and decodes with its tables from then on.

A violation by the peer does not raise: :meth:`receive_data` returns the events decoded
before it followed by a :class:`ProtocolError` event carrying the
:class:`~kiltmq.protocol.errors.AMQPError` (always a connection error) that the shell
should report in connection.close. The connection then ignores further input. A misuse
by our own side raises :class:`~kiltmq.protocol.errors.LocalProtocolError`.

The events, :class:`Heartbeat`, :class:`Role`, the states, :class:`Channel` and
:func:`negotiate` can be imported from here too, where they were first defined.
"""

from __future__ import annotations

import struct
from typing import cast

from kiltmq.protocol import spec
from kiltmq.protocol.channel import Channel as Channel
from kiltmq.protocol.channel import ChannelState as ChannelState
from kiltmq.protocol.channel import channel_method_received, channel_method_sent
from kiltmq.protocol.dialect import AMQP_0_9_1, DIALECTS_BY_HEADER, Dialect
from kiltmq.protocol.errors import (
    AMQPError,
    AMQPNotImplemented,
    AMQPSyntaxError,
    ChannelError,
    CommandInvalid,
    FrameError,
    LocalProtocolError,
    UnexpectedFrame,
)
from kiltmq.protocol.events import HEARTBEAT_EVENT, content_received, method_received
from kiltmq.protocol.events import ContentReceived as ContentReceived
from kiltmq.protocol.events import ContentRefused as ContentRefused
from kiltmq.protocol.events import Event as Event
from kiltmq.protocol.events import HeartbeatReceived as HeartbeatReceived
from kiltmq.protocol.events import MethodReceived as MethodReceived
from kiltmq.protocol.events import ProtocolError as ProtocolError
from kiltmq.protocol.events import ProtocolHeaderReceived as ProtocolHeaderReceived
from kiltmq.protocol.frames import (
    CONTENT_HEADER,
    HEARTBEAT_FRAME,
    INITIAL_FRAME_MAX,
    FrameReader,
    content_frames,
    content_header_payload,
    encode_frame,
    method_frame,
)
from kiltmq.protocol.handshake import ConnectionState as ConnectionState
from kiltmq.protocol.handshake import Role as Role
from kiltmq.protocol.handshake import negotiate as negotiate
from kiltmq.protocol.handshake import next_state
from kiltmq.protocol.heartbeat import Heartbeat as Heartbeat
from kiltmq.protocol.refusals import reads_before_refusing, refused, stray_frame, too_large
from kiltmq.protocol.spec import BasicProperties, Method

_unpack_I = struct.Struct(">I").unpack_from  # a method frame's class and method ids
_unpack_HHQ = CONTENT_HEADER.unpack_from  # class id, weight, body size of a header
# A read holding one whole basic.ack frame and nothing else: frame type, channel, size,
# method index, delivery tag, bits, frame end.
_ACK_FRAME = struct.Struct(">BHIIQBB")
_unpack_ack = _ACK_FRAME.unpack
_ACK_SIZE = _ACK_FRAME.size
_ACK_INDEX = spec.BasicAck.INDEX
_new_ack = spec.BasicAck.__new__

# Enum members as module constants for the receive path: reading ``ConnectionState.X``
# costs a class attribute lookup through the enum machinery each time.
_HEADER = ConnectionState.HEADER
_OPENED = ConnectionState.OPENED
_OPEN_OK = ConnectionState.OPEN_OK
_CLOSING = ConnectionState.CLOSING
_CLOSED = ConnectionState.CLOSED
_CHANNEL_OPEN = ChannelState.OPEN
_CHANNEL_REFUSING = ChannelState.REFUSING
# Channel states in which content may still be sent (racing the peer's close is harmless).
_SENDABLE = frozenset({ChannelState.OPEN, ChannelState.PEER_CLOSING})
_ENDING = frozenset({_CLOSING, _CLOSED})
# What still counts on a closing connection.
_CLOSE_METHODS = frozenset({"connection.close", "connection.close-ok"})
#: The size from which :meth:`Connection.data_to_send_parts` leaves a piece unjoined.
LARGE_PIECE = 16384
#: No limit: the largest body size a content header can announce.
NO_BODY_LIMIT = 2**64 - 1
#: The largest frame a server takes before tune-ok settles frame_max: RabbitMQ's
#: frame_min_size (4096) of payload, which it checks with 8 bytes to spare. A larger
#: start-ok (client properties) makes RabbitMQ drop the socket.
HANDSHAKE_FRAME_MAX = 4096 + 8


def _decode(cls: type[Method], payload: bytes) -> Method:
    """Decode a method frame's payload; malformed arguments are a connection error."""
    try:
        return cls.decode(payload)
    except UnicodeDecodeError:
        # a short string argument (field names and long strings take any bytes)
        raise FrameError("Malformed UTF-8 in shortstr") from None
    except (ValueError, struct.error, IndexError) as exc:
        raise AMQPSyntaxError(f"malformed {cls.NAME}: {exc}", cls.CLASS_ID, cls.METHOD_ID) from None


class Connection:
    """One AMQP connection, seen from ``role``'s end. See the module docstring."""

    def __init__(self, role: Role, dialect: Dialect = AMQP_0_9_1) -> None:
        self.role = role
        self.state = ConnectionState.HEADER
        self.channel_max = 0
        self.frame_max = INITIAL_FRAME_MAX
        self.heartbeat = Heartbeat()
        self.channels: dict[int, Channel] = {}
        #: The largest body a content header may announce (server role; see
        #: :meth:`receive_data`). The broker sets it; a client takes any size.
        self.max_body_size = NO_BODY_LIMIT
        server = role is Role.SERVER
        frame_max = HANDSHAKE_FRAME_MAX if server else INITIAL_FRAME_MAX
        self._reader = FrameReader(frame_max, server=server)
        self._out: list[bytes] = []
        self._failed = False
        # The last content method received (method objects are never changed): a
        # publisher sends the same basic.publish over and over, decoded once here.
        self._publish_payload = b""
        self._publish_method = cast(Method, None)
        # Server role: that basic.publish's whole frame as it came, and its channel, for
        # reads that start with whole messages published with it.
        self._publish_frame = b""
        self._publish_channel = 0
        self._use(dialect)
        #: The peer's tune-ok / tune values, once seen.
        self.peer_tune: spec.ConnectionTune | spec.ConnectionTuneOk | None = None

    def _use(self, dialect: Dialect) -> None:
        #: The protocol version spoken: a server's changes with the client's header.
        self.dialect = dialect
        server = self.role is Role.SERVER
        self._receivable = dialect.from_client if server else dialect.from_server
        self._methods = dialect.methods

    def _header_received(self, header: bytes, events: list[Event]) -> bool:
        """Take the dialect the client's protocol header names; False if none."""
        dialect = DIALECTS_BY_HEADER.get(header)
        if dialect is not None:
            self._use(dialect)
        self.state = ConnectionState.CLOSED if dialect is None else ConnectionState.START
        events.append(ProtocolHeaderReceived(header, dialect is not None))
        return dialect is not None

    # -- output ---------------------------------------------------------------------------

    @property
    def has_output(self) -> bool:
        """Whether anything is queued for the peer."""
        return bool(self._out)

    def data_to_send(self) -> bytes:
        """Everything queued for the peer since the last call."""
        out = self._out
        if not out:
            return b""
        data = b"".join(out) if len(out) > 1 else out[0]
        self._out = []
        return data

    def data_to_send_parts(self) -> list[bytes]:
        """Everything queued for the peer since the last call, for a vectored write: the
        pieces of :data:`LARGE_PIECE` bytes or more as they are (not copied), the runs of
        smaller ones between them joined."""
        out = self._out
        if not out:
            return []
        self._out = []
        parts: list[bytes] = []
        start = 0
        for i, piece in enumerate(out):
            if len(piece) >= LARGE_PIECE:
                if i > start:
                    parts.append(b"".join(out[start:i]) if i - start > 1 else out[start])
                parts.append(piece)
                start = i + 1
        if start < len(out):
            parts.append(b"".join(out[start:]) if len(out) - start > 1 else out[start])
        return parts

    def send_protocol_header(self) -> None:
        if self.role is not Role.CLIENT or self.state is not ConnectionState.HEADER:
            raise LocalProtocolError("only a client sends the protocol header, once")
        self._out.append(self.dialect.header)
        self.state = ConnectionState.START

    def send_heartbeat(self) -> None:
        self._out.append(HEARTBEAT_FRAME)

    def send_method(self, channel: int, method: Method) -> None:
        """Queue a method without content, tracking the state it changes."""
        if method.HAS_CONTENT:
            raise LocalProtocolError(f"{method.NAME} carries content: use send_content")
        if channel == 0:
            if self.state in _ENDING and method.NAME not in _CLOSE_METHODS:
                return  # the peer closed meanwhile (connection.open-ok racing its close)
            self._connection_method_sent(method)
        else:
            if self.state is not _OPENED:
                if self.state in _ENDING:
                    return  # racing a connection close: harmless, the peer discards it
                raise LocalProtocolError(f"connection not open (state {self.state.value})")
            channel_method_sent(self.channels, channel, method)
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
        if state is None or state.state not in _SENDABLE:
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
        mine = method.SENT_BY_CLIENT if self.role is Role.CLIENT else method.SENT_BY_SERVER
        if not mine:
            raise LocalProtocolError(f"a {self.role.value} does not send {name}")
        nxt = next_state(self.state, name)
        if nxt is None:
            raise LocalProtocolError(f"cannot send {name} in state {self.state.value}")
        self.state = nxt
        if isinstance(method, spec.ConnectionTuneOk):
            self._tuned(method)

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
        if len(data) == _ACK_SIZE and self.state is _OPENED and self._reader.at_frame_start:
            # One basic.ack alone, as a consumer acking each delivery sends it (and a
            # publisher's confirms come): taken without the general frame loop.
            ftype, channel, size, index, tag, bits, end = _unpack_ack(data)
            if ftype == 1 and size == 13 and index == _ACK_INDEX and end == spec.FRAME_END:
                state = self.channels.get(channel)
                if (
                    state is not None
                    and state.state is _CHANNEL_OPEN
                    and state.content_method is None
                    and self._receivable.get(index) is spec.BasicAck
                ):
                    ack = _new_ack(spec.BasicAck)
                    ack.delivery_tag = tag
                    ack.multiple = (bits & 1) != 0
                    return [method_received(channel, ack)]
        elif self._publish_frame and self.state is _OPENED:
            # Messages published with the same basic.publish as the last one, each whole
            # (a publisher at a low rate writes one or two per write): their properties
            # and bodies are cut out without the general frame loop, which takes the rest.
            channel = self._publish_channel
            state = self.channels.get(channel)
            if state is not None and state.state is _CHANNEL_OPEN and state.content_method is None:
                parts, end = self._reader.whole_contents(
                    data, self._publish_frame, channel, self.max_body_size
                )
                if parts:
                    method = self._publish_method
                    events: list[Event]
                    if len(parts) == 2:
                        events = [content_received(channel, method, parts[0], parts[1])]
                    else:
                        events = [
                            content_received(channel, method, parts[i], parts[i + 1])
                            for i in range(0, len(parts), 2)
                        ]
                    if end == len(data):
                        return events
                    return self._receive_frames(data[end:], events)
        return self._receive_frames(data, [])

    def _receive_frames(self, data: bytes, events: list[Event]) -> list[Event]:
        """The general frame loop: feed ``data`` to the reader and append the events of
        the frames it completes to ``events``."""
        try:
            frames = self._reader.feed(data)
            if self.state is _HEADER and self.role is Role.SERVER:
                header = self._reader.protocol_header
                if header is None or not self._header_received(header, events):
                    return events
            channels = self.channels
            max_body_size = self.max_body_size
            for frame_type, channel, payload in frames:
                if frame_type == 3:
                    # Content body, the commonest frame: handled inline (this is the
                    # broker's and the consumer's hot path); strays go to stray_frame.
                    state = channels.get(channel)
                    if state is None or not state.header_seen:
                        stray_frame("body", self.state is _CLOSING, channel, state)
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
                            content_received(channel, method, state.raw_properties, payload)
                        )
                    elif state.state is _CHANNEL_REFUSING:
                        raise refused(self.role, method)
                elif frame_type == 1:
                    self._method_frame(channel, payload, events)
                elif frame_type == 2:
                    state = channels.get(channel)
                    if state is None or state.content_method is None or state.header_seen:
                        stray_frame("header", self.state is _CLOSING, channel, state)
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
                    if body_size > max_body_size:
                        events.append(
                            too_large(self.role, channel, state, method, body_size, max_body_size)
                        )
                    elif body_size:
                        state.header_seen = True
                        state.body_size = body_size
                        state.raw_properties = raw
                        state.received = 0
                    else:  # no body frames follow
                        state.content_method = None
                        if state.state is _CHANNEL_OPEN:
                            events.append(content_received(channel, method, raw, b""))
                        elif state.state is _CHANNEL_REFUSING:
                            raise refused(self.role, method)
                else:  # heartbeat (the reader rejects unknown types)
                    if channel != 0:  # 505, as RabbitMQ says
                        raise UnexpectedFrame(f"heartbeat frame on channel {channel}")
                    events.append(HEARTBEAT_EVENT)
            if self._reader.error is not None:
                # bad framing after the frames above, in the same data: raise it now
                self._reader.feed(b"")
        except AMQPError as error:
            self._failed = True
            header = self._reader.protocol_header
            # bytes after the header broke framing before the header was reported: report
            # the header first (an unsupported one is all that matters then)
            if (
                self.state is ConnectionState.HEADER
                and header
                and not self._header_received(header, events)
            ):
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
            other = self._methods.get(index)
            if other is None:
                raise AMQPNotImplemented(
                    f"unknown method (class {index >> 16}, method {index & 0xFFFF})",
                    index >> 16,
                    index & 0xFFFF,
                )
            state = self.channels.get(channel)
            if other.HAS_CONTENT and reads_before_refusing(self.role, self.state, state):
                assert state is not None
                state.content_method = _decode(other, payload)
                state.header_seen = False
                state.state = _CHANNEL_REFUSING
                return
            raise refused(self.role, other)
        if payload == self._publish_payload:  # the same basic.publish as the last one
            method = self._publish_method
        else:
            method = _decode(cls, payload)
            if cls.HAS_CONTENT:
                self._publish_payload = payload
                self._publish_method = method
                if self.role is Role.SERVER:
                    self._publish_frame = encode_frame(1, channel, payload)
                    self._publish_channel = channel
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
            if self.state is not _OPEN_OK or self.role is not Role.SERVER:
                raise ChannelError(
                    f"{cls.NAME} on channel {channel} before the connection is open",
                    cls.CLASS_ID,
                    cls.METHOD_ID,
                )
            # sent right behind connection.open, before our open-ok: taken, as RabbitMQ
            # takes it; the shell handles the open (answered or refused) first
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
            if cls.CLASS_ID != 20 or channel_method_received(
                self.channels, self.channel_max, channel, state, method
            ):
                events.append(method_received(channel, method))
            return
        if state is not None and state.state is _CHANNEL_REFUSING:
            pending = state.content_method
            assert pending is not None
            raise UnexpectedFrame(
                f"expected content header/body for {pending.NAME} on channel {channel}, "
                f"got method {cls.NAME}",
                pending.CLASS_ID,
                pending.METHOD_ID,
            )
        if channel_method_received(self.channels, self.channel_max, channel, state, method):
            events.append(method_received(channel, method))

    def _connection_method_received(self, method: Method, events: list[Event]) -> None:
        name = method.NAME
        if self.state is _CLOSING and name not in _CLOSE_METHODS:
            return  # discarded while closing
        nxt = next_state(self.state, name)
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
        events.append(method_received(0, method))
