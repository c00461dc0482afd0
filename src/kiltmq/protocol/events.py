"""Events: what :meth:`~kiltmq.protocol.connection.Connection.receive_data` returns.

Events are frozen dataclasses. The receive path builds them with :func:`method_received`,
:func:`content_received` and :data:`HEARTBEAT_EVENT`, which give the same objects faster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kiltmq.protocol.errors import AMQPError
from kiltmq.protocol.spec import BasicProperties, Method

__all__ = [
    "HEARTBEAT_EVENT",
    "ContentReceived",
    "ContentRefused",
    "Event",
    "HeartbeatReceived",
    "MethodReceived",
    "ProtocolError",
    "ProtocolHeaderReceived",
    "content_received",
    "method_received",
]


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
class ContentRefused(Event):
    """Server role: a content header announced more than the connection's
    ``max_body_size``. Its body is not read: the channel is now closing and its
    frames are discarded; the shell should send channel.close with ``error``."""

    channel: int
    error: AMQPError


@dataclass(frozen=True, slots=True)
class HeartbeatReceived(Event):
    pass


@dataclass(frozen=True, slots=True)
class ProtocolError(Event):
    """The peer broke the protocol; report ``error`` in connection.close and stop."""

    error: AMQPError


HEARTBEAT_EVENT = HeartbeatReceived()
"""The one :class:`HeartbeatReceived` (it has no fields)."""

# The generated __init__ of a frozen dataclass sets each field through
# object.__setattr__. Setting them with the slot descriptors instead is about twice as
# fast and gives the same objects.
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


def method_received(channel: int, method: Method) -> MethodReceived:
    """``MethodReceived(channel, method)``, built faster."""
    event: MethodReceived = _new_event(MethodReceived)
    _set_method_channel(event, channel)
    _set_method_method(event, method)
    return event


def content_received(
    channel: int, method: Method, raw_properties: bytes, body: bytes
) -> ContentReceived:
    """``ContentReceived(channel, method, raw_properties, body)``, built faster."""
    event: ContentReceived = _new_event(ContentReceived)
    _set_content_channel(event, channel)
    _set_content_method(event, method)
    _set_content_raw(event, raw_properties)
    _set_content_body(event, body)
    return event
