"""Frames: the incremental reader and the frame writers.

A frame on the wire is ``type:octet channel:short size:long payload:size frame-end:0xCE``.
:class:`FrameReader` accepts data split at any byte and returns whole frames as
``(frame_type, channel, payload)`` tuples; tuples rather than objects because this is the
broker's hot path. It enforces the negotiated ``frame_max`` (checked as soon as a frame's
header is seen, so a peer cannot make us buffer a giant frame) and the frame-end octet.
Violations raise :class:`~kiltmq.protocol.errors.FrameError` (501).

Before any frame a client sends an 8-byte protocol header. :class:`FrameReader` in server
mode reads it first and reports it through :attr:`FrameReader.protocol_header`.
"""

from __future__ import annotations

import struct

from kiltmq.protocol.dialect import DIALECTS_BY_HEADER
from kiltmq.protocol.errors import FrameError
from kiltmq.protocol.spec import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    BasicProperties,
    Method,
)

__all__ = [
    "CONTENT_HEADER",
    "FRAME_BODY",
    "FRAME_END_OCTET",
    "FRAME_HEAD",
    "FRAME_HEADER",
    "FRAME_HEARTBEAT",
    "FRAME_METHOD",
    "HEARTBEAT_FRAME",
    "INITIAL_FRAME_MAX",
    "SETTLE_FRAME",
    "FrameReader",
    "content_frames",
    "content_head",
    "content_header_payload",
    "encode_frame",
    "method_frame",
]

FRAME_HEAD = struct.Struct(">BHI")
"""The 7 octets before every frame's payload: frame type, channel, payload size."""

FRAME_END_OCTET = bytes([FRAME_END])
"""The octet after every frame's payload (``spec.FRAME_END``), as bytes."""

SETTLE_FRAME = struct.Struct(">BHIHHQBB")
"""A whole basic.ack, basic.nack or basic.reject frame: frame head (payload size 13),
class id, method id, delivery tag, bits, frame end."""

CONTENT_HEADER = struct.Struct(">HHQ")
"""The start of a content header frame's payload: class id, weight, body size."""

_S_HEADER = CONTENT_HEADER
_pack_frame = FRAME_HEAD.pack
_unpack_frame = FRAME_HEAD.unpack_from
# A content header frame's head and its fixed fields: type, channel, size, class id,
# weight, body size.
_unpack_header_frame = struct.Struct(">BHIHHQ").unpack_from
_END = FRAME_END_OCTET

HEARTBEAT_FRAME = _pack_frame(FRAME_HEARTBEAT, 0, 0) + _END
"""A heartbeat frame, ready to write."""

INITIAL_FRAME_MAX = 131072
"""Largest frame accepted before tune settles frame_max (RabbitMQ's default)."""

#: Protocol headers a server accepts: AMQP 0-9-1, and the 0-9 and 0-8 headers that
#: RabbitMQ also accepts (:data:`~kiltmq.protocol.dialect.DIALECTS_BY_HEADER`).
ACCEPTED_PROTOCOL_HEADERS = frozenset(DIALECTS_BY_HEADER)
_VALID_TYPES = frozenset({FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT})


class FrameReader:
    """Incremental frame parser.

    ``feed(data)`` returns the frames completed by ``data`` (possibly none). Bad framing
    raises :class:`~kiltmq.protocol.errors.FrameError`; frames completed before the bad
    one in the same ``data`` are returned first and the error is raised by the next call
    (``feed(b"")`` will do); :attr:`error` tells that one is pending. Once it has raised,
    the reader is broken: every later call raises again, and the connection must be closed.
    """

    __slots__ = (
        "_buf",
        "_chunks",
        "_frame",
        "_have",
        "_max_payload",
        "_need",
        "_shape",
        "error",
        "protocol_header",
    )

    def __init__(self, frame_max: int = INITIAL_FRAME_MAX, *, server: bool = False) -> None:
        self._buf = b""
        # An incomplete frame (its head read) collects here, joined once when complete.
        self._chunks: list[bytes | memoryview] = []
        self._frame = (0, 0)  # its type and channel
        self._need = 0
        self._have = 0
        self._max_payload = 0
        # The shape of the last message whole_contents cut: its header frame's first 19
        # bytes (type, channel, size, class, weight, body size), the length of its
        # properties, its body size, and its header's end octet with the body frame's
        # head. A publisher's next messages mostly have the same.
        self._shape: tuple[bytes, int, int, bytes] = (b"", 0, 0, b"")
        #: The framing error seen, if any (raised by ``feed`` now or at its next call).
        self.error: FrameError | None = None
        self.frame_max = frame_max
        #: Server mode: the 8-byte protocol header once received (None until then).
        self.protocol_header: bytes | None = None if server else b""

    @property
    def frame_max(self) -> int:
        return self._max_payload + 8

    @frame_max.setter
    def frame_max(self, value: int) -> None:
        # frame_max 0 means "no limit" in tune; the frame size field is 32 bits.
        self._max_payload = (value or 0xFFFFFFFF + 8) - 8

    @property
    def at_frame_start(self) -> bool:
        """Whether the next byte fed starts a frame: no frame or head is partly read, no
        error, the protocol header (server mode) taken."""
        return not (self._buf or self._chunks or self.error or self.protocol_header is None)

    def whole_contents(
        self, data: bytes, method_frame: bytes, channel: int, body_limit: int
    ) -> tuple[list[bytes], int]:
        """The messages ``data`` starts with, read at a frame boundary, and where they
        end: each one ``method_frame`` (a content method's whole frame, on ``channel``),
        a content header of class 60 for a body of 1 to ``body_limit`` bytes and that
        body in one frame, on the same channel and within frame_max. They come as one
        list, raw properties and body in turn. What follows them (anything else:
        another method, a message split over reads, a bad frame) is for :meth:`feed`,
        as is all of ``data`` when none is found (``[], 0``). The caller checks the
        method and the channel's state."""
        found: list[bytes] = []
        if self.error is not None or self._buf or self._chunks:
            return found, 0
        n = len(data)
        start = len(method_frame)
        max_payload = self._max_payload
        if body_limit > max_payload:
            body_limit = max_payload
        shape_head, shape_props, shape_body, shape_tail = self._shape
        if shape_body > body_limit:
            shape_head = b""  # none
        pos = 0
        # each at the least the method, a header frame with its flags word (22 bytes) and
        # a body frame of one byte (9)
        while n - pos >= start + 31 and data.startswith(method_frame, pos):
            at = pos + start
            if shape_head and data.startswith(shape_head, at):
                # the header's fields as the last message's (checked then): its end and
                # the body frame's head follow where that message's did
                head_end = at + 19 + shape_props
                end = head_end + 9 + shape_body
                if end > n or data[end - 1] != FRAME_END:
                    break
                if not data.startswith(shape_tail, head_end):
                    break
            else:
                ftype, hchannel, size, class_id, _weight, body_size = _unpack_header_frame(
                    data, at
                )
                head_end = at + 7 + size  # the header frame's end octet
                body_at = head_end + 1
                end = body_at + 8 + body_size  # past the body frame's end octet
                if (
                    ftype != 2
                    or hchannel != channel
                    or class_id != 60
                    or not 14 <= size <= max_payload
                    or not 0 < body_size <= body_limit
                    or end > n
                    or data[head_end] != FRAME_END
                    or data[end - 1] != FRAME_END
                    or _unpack_frame(data, body_at) != (3, channel, body_size)
                ):
                    break
                shape_head = data[at : at + 19]
                shape_props = size - 12
                shape_body = body_size
                shape_tail = data[head_end : body_at + 7]
                self._shape = (shape_head, shape_props, shape_body, shape_tail)
            if end == n and not pos:  # one message, the whole read
                return [data[at + 19 : head_end], data[head_end + 8 : end - 1]], n
            found += (data[at + 19 : head_end], data[head_end + 8 : end - 1])
            pos = end
        return found, pos

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        if self.error is not None:
            raise self.error
        if type(data) is not bytes:
            data = bytes(data)
        frames: list[tuple[int, int, bytes]] = []
        pos = 0
        if self._chunks:
            # A frame begun in earlier data: its payload is joined from the pieces, the
            # one copy its bytes get here, and the rest of ``data`` is read in place.
            chunks = self._chunks
            have = self._have + len(data)
            need = self._need
            if have < need:
                chunks.append(data)
                self._have = have
                return frames
            pos = len(data) - (have - need)  # this frame's bytes in ``data`` (at least 1)
            if data[pos - 1] != FRAME_END:
                return self._fail(
                    frames, f"frame end octet is {data[pos - 1]:#04x}, expected 0xce"
                )
            chunks[0] = chunks[0][7:]
            chunks.append(memoryview(data)[: pos - 1])
            self._chunks = []
            frame_type, channel = self._frame
            frames.append((frame_type, channel, b"".join(chunks)))
            buf = data
        elif self._buf:
            buf = self._buf + data  # at most 6 octets of a frame head were left
        else:
            buf = data
        if self.protocol_header is None:
            if len(buf) < 8:
                self._buf = buf
                return []
            self.protocol_header = buf[:8]
            pos = 8
        append = frames.append
        n = len(buf)
        max_payload = self._max_payload
        frame_end = FRAME_END
        while n - pos >= 7:
            ftype, channel, size = _unpack_frame(buf, pos)
            if size > max_payload:
                return self._fail(
                    frames,
                    _not_a_frame(buf, pos)
                    or f"frame size {size + 8} exceeds the negotiated frame_max {self.frame_max}",
                )
            if ftype not in _VALID_TYPES:
                return self._fail(frames, _not_a_frame(buf, pos) or f"unknown frame type {ftype}")
            end = pos + 7 + size
            if end >= n:
                # The frame continues in later data. Its start is kept without copying
                # the data it came in, unless it is a small part of that data.
                rest = n - pos
                self._chunks = [memoryview(buf)[pos:] if rest * 4 >= n else buf[pos:]]
                self._have = rest
                self._need = size + 8
                self._frame = (ftype, channel)
                self._buf = b""
                return frames
            if buf[end] != frame_end:
                return self._fail(frames, f"frame end octet is {buf[end]:#04x}, expected 0xce")
            append((ftype, channel, buf[pos + 7 : end]))
            pos = end + 1
        self._buf = buf[pos:] if pos < n else b""
        return frames

    def _fail(
        self, frames: list[tuple[int, int, bytes]], text: str
    ) -> list[tuple[int, int, bytes]]:
        self.error = FrameError(text)
        self._buf = b""
        self._chunks = []
        if frames:
            return frames
        raise self.error


def _not_a_frame(buf: bytes, pos: int) -> str:
    """A clearer report than a frame error for a protocol header where a frame should be:
    a server that does not speak AMQP 0-9-1 answers a client's header with its own."""
    if buf.startswith(b"AMQP", pos):
        return f"received protocol header {bytes(buf[pos : pos + 8])!r} instead of a frame"
    return ""


def encode_frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return _pack_frame(frame_type, channel, len(payload)) + payload + _END


def method_frame(channel: int, method: Method) -> bytes:
    payload = method.encode()
    return _pack_frame(FRAME_METHOD, channel, len(payload)) + payload + _END


def content_header_payload(
    class_id: int, body_size: int, properties: BasicProperties | bytes | None
) -> bytes:
    """Content-header payload. ``properties`` may be already-encoded property bytes (flags
    and values), as the broker keeps them, so they are sent on without decoding."""
    if properties is None:
        raw = b"\x00\x00"
    elif isinstance(properties, BasicProperties):
        raw = properties.encode()
    else:
        raw = properties
    return _S_HEADER.pack(class_id, 0, body_size) + raw


def content_frames(
    channel: int, method_payload: bytes, header_payload: bytes, body: bytes, frame_max: int
) -> bytes:
    """Method, content-header and body frames for one message, as one bytes object.

    ``method_payload`` and ``header_payload`` are encoded payloads (``method.encode()``,
    :func:`content_header_payload`); bodies longer than ``frame_max - 8`` are split.
    """
    parts: list[bytes | memoryview] = [
        _pack_frame(FRAME_METHOD, channel, len(method_payload)),
        method_payload,
        _END,
        _pack_frame(FRAME_HEADER, channel, len(header_payload)),
        header_payload,
        _END,
    ]
    size = len(body)
    limit = (frame_max or 0xFFFFFFFF + 8) - 8
    if size <= limit:
        if size:
            parts += (_pack_frame(FRAME_BODY, channel, size), body, _END)
    else:
        view = memoryview(body)
        for start in range(0, size, limit):
            chunk = view[start : start + limit]
            parts += (_pack_frame(FRAME_BODY, channel, len(chunk)), chunk, _END)
    return b"".join(parts)


def content_head(
    channel: int, method_payload: bytes, header_payload: bytes, body_size: int
) -> bytes:
    """A message's frames up to its one body frame's payload: the method frame, the
    content-header frame and the body frame's head. The body and
    :data:`FRAME_END_OCTET` follow it, to be written as they are (a large body need not
    be joined with its frames); the body must fit in one frame."""
    return content_frames(channel, method_payload, header_payload, b"", 0) + _pack_frame(
        FRAME_BODY, channel, body_size
    )
