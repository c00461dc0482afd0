"""The sans-IO AMQP 0-9-1 protocol core, shared by the client and the broker.

Nothing here touches a socket or an event loop: feed bytes to :class:`Connection` and read
events; queue methods and read the bytes to send.
"""

from kiltmq.protocol import spec
from kiltmq.protocol.channel import Channel, ChannelState
from kiltmq.protocol.codec import FieldTable, FieldValue, decode_table, encode_table
from kiltmq.protocol.connection import Connection
from kiltmq.protocol.errors import AMQPError, LocalProtocolError, error_for
from kiltmq.protocol.events import (
    ContentReceived,
    Event,
    HeartbeatReceived,
    MethodReceived,
    ProtocolError,
    ProtocolHeaderReceived,
)
from kiltmq.protocol.frames import FrameReader, content_frames, content_header_payload, method_frame
from kiltmq.protocol.handshake import ConnectionState, Role, negotiate
from kiltmq.protocol.heartbeat import Heartbeat
from kiltmq.protocol.spec import METHODS, BasicProperties, Method, ReplyCode

__all__ = [
    "METHODS",
    "AMQPError",
    "BasicProperties",
    "Channel",
    "ChannelState",
    "Connection",
    "ConnectionState",
    "ContentReceived",
    "Event",
    "FieldTable",
    "FieldValue",
    "FrameReader",
    "Heartbeat",
    "HeartbeatReceived",
    "LocalProtocolError",
    "Method",
    "MethodReceived",
    "ProtocolError",
    "ProtocolHeaderReceived",
    "ReplyCode",
    "Role",
    "content_frames",
    "content_header_payload",
    "decode_table",
    "encode_table",
    "error_for",
    "method_frame",
    "negotiate",
    "spec",
]
