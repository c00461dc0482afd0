"""Frame capture: every frame of a client connection, both ways, decoded, for a test's
assertions and for the report of a test that failed.

Only while capture is on (the fixture asks for it) does anything happen: the capture
puts its own ``data_received`` on each connection and its own ``data_to_send`` on the
connection's protocol core (instance attributes over the methods), and parses copies of
the bytes with the protocol's :class:`~kiltmq.protocol.frames.FrameReader`. Off, the
broker runs untouched.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kiltmq.protocol.errors import FrameError
from kiltmq.protocol.frames import FrameReader
from kiltmq.protocol.spec import METHODS, BasicProperties, Method
from kiltmq.testing.connection_hooks import hooks_of

if TYPE_CHECKING:
    from kiltmq.broker import Broker
    from kiltmq.broker.server import ServerConnection
    from kiltmq.broker.session import Session

__all__ = ["FrameCapture", "FrameInfo", "Recording", "capture_of", "conversation"]

#: Frame types (AMQP 0-9-1 section 4.2.3).
_KINDS = {1: "method", 2: "header", 3: "body", 8: "heartbeat"}
#: Body bytes kept per frame (the size is always kept).
BODY_KEPT = 1024


@dataclass(frozen=True)
class FrameInfo:
    """One frame: ``sender`` "client" or "broker", ``channel``, ``kind`` ("method",
    "header", "body", "heartbeat"), the decoded ``method`` or content ``properties``,
    the ``size`` a header announces or a body carries, and (the first 1 KiB of)
    ``body``."""

    sender: str
    channel: int
    kind: str
    method: Method | None = None
    properties: BasicProperties | None = None
    size: int = 0
    body: bytes = b""

    @property
    def name(self) -> str:
        """The method's spec name ("basic.publish"), else the kind."""
        return self.method.NAME if self.method is not None else self.kind

    def __str__(self) -> str:
        arrow = "C->B" if self.sender == "client" else "B->C"
        if self.method is not None:
            fields = ", ".join(
                f"{f}={getattr(self.method, f)!r}" for f in self.method.FIELDS
                if f != "reserved_1"
            )
            what = f"{self.method.NAME}({fields})"
        elif self.kind == "header":
            props = self.properties
            shown = {f: getattr(props, f) for f in BasicProperties.FIELDS} if props else {}
            set_ = ", ".join(f"{k}={v!r}" for k, v in shown.items() if v is not None)
            what = f"content header (size={self.size}{', ' if set_ else ''}{set_})"
        elif self.kind == "body":
            what = f"content body ({self.size} bytes) {self.body[:60]!r}"
        else:
            what = self.kind
        return f"{arrow} ch{self.channel} {what}"


def _decode(sender: str, frame: tuple[int, int, bytes]) -> FrameInfo:
    frame_type, channel, payload = frame
    kind = _KINDS.get(frame_type, f"type {frame_type}")
    try:
        if frame_type == 1:
            index = struct.unpack_from(">I", payload)[0]
            cls = METHODS.get(index)
            if cls is not None:
                return FrameInfo(sender, channel, kind, method=cls.decode(payload))
        elif frame_type == 2:
            size = struct.unpack_from(">Q", payload, 4)[0]
            props = BasicProperties.decode(payload, 12)
            return FrameInfo(sender, channel, kind, properties=props, size=size)
        elif frame_type == 3:
            return FrameInfo(sender, channel, kind, size=len(payload), body=payload[:BODY_KEPT])
    except (ValueError, IndexError, struct.error):
        pass  # shown as undecoded: what the broker made of it is in the next frames
    return FrameInfo(sender, channel, kind, size=len(payload))


class Recording:
    """The frames of one connection, as they pass (on the broker's loop)."""

    def __init__(self, conn: ServerConnection, *, new: bool = True) -> None:
        self.conn = conn
        self.frames: list[FrameInfo] = []
        # a new connection starts with the protocol header; one already open does not
        self._readers = {"client": FrameReader(0, server=new), "broker": FrameReader(0)}
        self.name: str | None = None
        self.peer = ""
        self.vhost: str | None = None
        self._identify()

    def add(self, sender: str, data: bytes) -> None:
        reader = self._readers[sender]
        try:
            frames = reader.feed(bytes(data))
        except FrameError:
            return
        for frame in frames:
            self.frames.append(_decode(sender, frame))
        if self.vhost is None or self.name is None:
            self._identify()

    def _identify(self) -> None:
        """Note the connection's name, peer and vhost while its session is there."""
        session: Session | None = self.conn.session  # None once the connection is gone
        if session is None:
            return
        name = session.client_properties.get("connection_name")
        self.name = name if isinstance(name, str) else None
        self.peer = session.peer_name
        self.vhost = session.vhost.name if session.vhost is not None else None


class FrameCapture:
    """Captures the frames of a broker's connections while :meth:`start` ed (loop only)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.recordings: list[Recording] = []
        self.active = False

    def start(self) -> None:
        if self.active:
            return
        self.active = True
        hooks_of(self.broker).add(self._record)
        for conn in list(self.broker.connections):
            self._record(conn, new=False)

    def stop(self) -> None:
        if not self.active:
            return
        self.active = False
        hooks_of(self.broker).remove(self._record)
        for recording in self.recordings:
            recording.conn.__dict__.pop("data_received", None)
            recording.conn.core.__dict__.pop("data_to_send", None)
            recording.conn.core.__dict__.pop("data_to_send_parts", None)

    def _record(self, conn: ServerConnection, *, new: bool = True) -> None:
        recording = Recording(conn, new=new)
        self.recordings.append(recording)
        received: Callable[[bytes], None] = conn.data_received
        to_send: Callable[[], bytes] = conn.core.data_to_send
        to_send_parts: Callable[[], list[bytes]] = conn.core.data_to_send_parts

        def data_received(data: bytes) -> None:
            recording.add("client", data)
            received(data)

        def data_to_send() -> bytes:
            data = to_send()
            if data:
                recording.add("broker", data)
            return data

        def data_to_send_parts() -> list[bytes]:
            parts = to_send_parts()
            if parts:
                recording.add("broker", b"".join(parts))
            return parts

        target: Any = conn
        target.data_received = data_received
        core: Any = conn.core
        core.data_to_send = data_to_send
        core.data_to_send_parts = data_to_send_parts

    def find(self, connection: str | None, vhost: str | None) -> list[Recording]:
        """The recordings of ``connection`` (its name or "host:port"; None: all) in
        ``vhost`` (None: any)."""
        return [
            r for r in self.recordings
            if (connection is None or connection in (r.name, r.peer))
            and (vhost is None or r.vhost == vhost)
        ]


def capture_of(broker: Broker) -> FrameCapture:
    """The broker's frame capture (one per broker)."""
    capture = _CAPTURES.get(broker)
    if capture is None:
        capture = _CAPTURES[broker] = FrameCapture(broker)
    return capture


_CAPTURES: weakref.WeakKeyDictionary[Broker, FrameCapture] = weakref.WeakKeyDictionary()


def conversation(recordings: list[Recording]) -> str:
    """The frames of each recording as text, one line a frame (a failed test's report)."""
    parts = []
    for r in recordings:
        title = f"connection {r.name or '(unnamed)'} from {r.peer}, vhost {r.vhost!r}"
        parts.append("\n".join([title, *(f"  {f}" for f in r.frames)]))
    return "\n\n".join(parts)
