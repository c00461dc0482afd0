"""Channels as the connection sees them: each one's lifecycle (opening, open, closing) and
the content being assembled on it.

A channel exists from channel.open until channel.close-ok. A method on a channel that is
not open is 504 CHANNEL_ERROR; a second channel.open too. After we send channel.close,
everything on that channel but close/close-ok is discarded, as the spec requires; after
the peer sent it, until our close-ok, the same (a repeated close is answered again).
"""

from __future__ import annotations

from enum import Enum

from kiltmq.protocol.errors import ChannelError, LocalProtocolError, NotAllowed
from kiltmq.protocol.spec import Method

__all__ = ["Channel", "ChannelState", "channel_method_received", "channel_method_sent"]


class ChannelState(Enum):
    OPENING = "opening"  # channel.open sent, open-ok expected
    OPEN = "open"
    CLOSING = "closing"  # we sent channel.close; only close/close-ok count now
    # The peer sent channel.close and our close-ok is not out yet: as RabbitMQ, another
    # close is answered again, channel.open is a second open, the rest is discarded.
    PEER_CLOSING = "peer-closing"
    # Reading the content of a method this side does not take: 503 once it is complete.
    REFUSING = "refusing"


class Channel:
    """Per-channel protocol state: open/closing and content being assembled.

    Content assembly: ``content_method`` is the content-bearing method whose header and
    body are awaited; ``header_seen`` tells that its header came, announcing
    ``body_size`` bytes and carrying ``raw_properties``; ``parts`` hold the body frames so
    far (``received`` bytes). :meth:`Connection.receive_data
    <kiltmq.protocol.connection.Connection.receive_data>` fills them in.
    """

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

    def drop_content(self) -> None:
        """Forget the content being assembled."""
        self.content_method = None
        self.header_seen = False
        self.parts = []


def channel_method_sent(channels: dict[int, Channel], channel: int, method: Method) -> None:
    """Track a method we send on ``channel`` (not 0) in ``channels``; a method that the
    channel's state does not allow raises LocalProtocolError."""
    state = channels.get(channel)
    name = method.NAME
    if name == "channel.open":
        if state is not None:
            raise LocalProtocolError(f"channel {channel} is already open")
        channels[channel] = Channel(channel, ChannelState.OPENING)
    elif state is None:
        if name == "channel.close-ok":
            return  # answering a close the peer repeated (see ChannelState.PEER_CLOSING)
        raise LocalProtocolError(f"channel {channel} is not open (sending {name})")
    elif name == "channel.open-ok":
        state.state = ChannelState.OPEN
    elif name == "channel.close":
        state.state = ChannelState.CLOSING
    elif name == "channel.close-ok":
        del channels[channel]


def channel_method_received(
    channels: dict[int, Channel],
    channel_max: int,
    channel: int,
    state: Channel | None,
    method: Method,
) -> bool:
    """Track a method received on ``channel`` (not 0), whose state is ``state``: a channel
    method, or any method on a channel that is not open. Returns whether to report it
    (False: discarded); a method the channel's state does not allow raises the
    connection error to report."""
    name = method.NAME
    if name == "channel.open":
        if state is not None:
            raise ChannelError(f"second 'channel.open' seen on channel {channel}", 20, 10)
        # RabbitMQ's rule: channel_max bounds how many channels are open at once,
        # whatever their numbers (the spec text bounds the numbers).
        if channel_max and len(channels) >= channel_max:
            raise NotAllowed(
                f"number of channels opened ({len(channels)}) has reached the "
                f"negotiated channel_max ({channel_max})"
            )
        channels[channel] = Channel(channel, ChannelState.OPEN)
    elif state is None:
        if name == "channel.close-ok":
            return False  # both sides closed at once; nothing left to do
        raise ChannelError(
            f"expected 'channel.open' on channel {channel}, got {name}",
            method.CLASS_ID,
            method.METHOD_ID,
        )
    elif state.state is ChannelState.CLOSING:
        if name == "channel.close-ok":
            del channels[channel]
        elif name != "channel.close":
            state.drop_content()
            return False  # discarded: we are closing this channel
    elif state.state is ChannelState.PEER_CLOSING:
        if name != "channel.close":
            state.drop_content()
            return False  # discarded: the peer closed this channel
    elif name == "channel.close":
        state.state = ChannelState.PEER_CLOSING
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
        raise ChannelError(f"channel.close-ok on channel {channel}, which is not closing", 20, 41)
    return True
