"""A connection's channels by number, and the numbers given to new channels."""

from __future__ import annotations

from collections.abc import Container, Iterator

from kiltmq.client.channel import Channel
from kiltmq.client.consumer import Consumer
from kiltmq.client.errors import ClientError
from kiltmq.client.rpc import ChannelConnection, RpcChannel

__all__ = ["ChannelRegistry"]


class ChannelRegistry:
    """The channels of one connection. Numbers go round from 1 to ``channel_max``,
    skipping those in use, so a closed channel's number is not reused at once."""

    def __init__(self, channel_max: int = 65535) -> None:
        self.channels: dict[int, Channel] = {}
        #: the negotiated channel_max
        self.channel_max = channel_max
        self._last = 0

    def _allocate(self, in_use: Container[int]) -> int:
        limit = self.channel_max
        used = self.channels
        number = self._last
        for _ in range(limit):
            number = number % limit + 1
            if number not in used and number not in in_use:
                self._last = number
                return number
        raise ClientError(f"all {limit} channels are in use")

    def new(self, connection: ChannelConnection, in_use: Container[int]) -> Channel:
        """A new channel (not open yet) on a free number; ``in_use`` are numbers the
        protocol core still has (a channel closing)."""
        channel = Channel(connection, self._allocate(in_use))
        self.channels[channel.number] = channel
        return channel

    def remove(self, channel: RpcChannel) -> None:
        if self.channels.get(channel.number) is channel:
            del self.channels[channel.number]

    def consumers(self) -> Iterator[Consumer]:
        """The consumers of every channel."""
        for channel in self.channels.values():
            yield from channel._consumers.values()

    def suspend(self, error: BaseException) -> None:
        """The connection dropped and will be recovered."""
        for channel in list(self.channels.values()):
            channel._suspend(error)

    def close(self, reason: BaseException) -> None:
        """The connection closed for good."""
        for channel in list(self.channels.values()):
            channel._closed(reason)
        self.channels.clear()
