"""What the sans-IO connection refuses or discards instead of taking: a method of the
wrong side (503), content larger than ``max_body_size`` (406), a content header or body
frame that nothing announced (505, or discarded while closing).

A server reads the content of a content-bearing method it does not take from clients
(basic.deliver, ...) before its 503, as RabbitMQ does: the channel is ``REFUSING`` until
that content is complete.
"""

from __future__ import annotations

from kiltmq.protocol.channel import Channel, ChannelState
from kiltmq.protocol.errors import CommandInvalid, PreconditionFailed, UnexpectedFrame
from kiltmq.protocol.events import ContentRefused
from kiltmq.protocol.handshake import ConnectionState, Role
from kiltmq.protocol.spec import Method

__all__ = ["reads_before_refusing", "refused", "stray_frame", "too_large"]

_CHANNEL_OPEN = ChannelState.OPEN
_CHANNEL_CLOSING = ChannelState.CLOSING
_CHANNEL_REFUSING = ChannelState.REFUSING
# Channel states whose stray content frames are discarded.
_DISCARDING = frozenset({ChannelState.CLOSING, ChannelState.PEER_CLOSING})


def refused(role: Role, method: type[Method] | Method) -> CommandInvalid:
    """503 for a method of the peer's that ``role``'s side does not take."""
    peer = "server" if role is Role.CLIENT else "client"
    return CommandInvalid(
        f"{method.NAME} may not be sent by a {peer}", method.CLASS_ID, method.METHOD_ID
    )


def reads_before_refusing(role: Role, connection: ConnectionState, state: Channel | None) -> bool:
    """Whether a content-bearing method that a client may not send has its content read
    before the 503: by a server, on an open channel of an open connection, with no
    content pending. Any other case is 503 at once."""
    return (
        role is Role.SERVER
        and connection is ConnectionState.OPENED
        and state is not None
        and state.state is _CHANNEL_OPEN
        and state.content_method is None
    )


def too_large(
    role: Role, channel: int, state: Channel, method: Method, body_size: int, limit: int
) -> ContentRefused:
    """A content header announcing more than ``limit`` bytes: refused before any of its
    body is read; the channel is closing from then on, so its body frames are discarded."""
    if state.state is _CHANNEL_REFUSING:
        raise refused(role, method)  # a 503 in any case: no need to read the body
    state.drop_content()
    state.state = _CHANNEL_CLOSING
    error = PreconditionFailed(
        f"message size {body_size} is larger than configured max size {limit}",
        method.CLASS_ID,
        method.METHOD_ID,
    )
    return ContentRefused(channel, error)


def stray_frame(kind: str, closing: bool, channel: int, state: Channel | None) -> None:
    """A content ``kind`` ("header" or "body") frame that nothing announced: discarded
    while the connection (``closing``) or the channel closes, else 505."""
    if closing or (state is not None and state.state in _DISCARDING):
        return
    raise UnexpectedFrame(f"unexpected content {kind} frame on channel {channel}")
