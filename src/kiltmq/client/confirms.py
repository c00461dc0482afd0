"""Publisher confirms of one channel (confirm.select).

Each publish in confirm mode gets the next sequence number (the delivery tag the broker
confirms it with) and a future: basic.ack resolves it, basic.nack fails it with
:class:`~kiltmq.client.errors.PublishNacked`, and a mandatory message that came back
with basic.return fails it with :class:`~kiltmq.client.errors.Unroutable` when its ack
arrives; a lost connection or closed channel fails every unconfirmed one. The first
failure is also kept for ``wait_for_confirms``, which reports it even when the
publish's own future was not awaited.
"""

from __future__ import annotations

import asyncio
from collections import deque

from kiltmq.client.errors import PublishNacked, Unroutable
from kiltmq.client.message import Message

__all__ = ["Confirms"]


class Confirms:
    """The unconfirmed publishes of a channel in confirm mode."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.next_seq = 1
        self.unconfirmed: dict[int, asyncio.Future[None]] = {}
        self._order: deque[int] = deque()
        self._mandatory: deque[tuple[int, str, str, bytes]] = deque()
        self._returned: dict[int, Unroutable] = {}
        #: The first failure since :meth:`take_failure` was last called.
        self.failure: BaseException | None = None

    def track(
        self, mandatory: bool, exchange: str, routing_key: str, body: bytes
    ) -> asyncio.Future[None]:
        """A message was published: its future, resolved by the broker's confirm."""
        seq = self.next_seq
        self.next_seq = seq + 1
        future: asyncio.Future[None] = self.loop.create_future()
        self.unconfirmed[seq] = future
        self._order.append(seq)
        if mandatory:
            self._mandatory.append((seq, exchange, routing_key, body))
        return future

    def on_confirm(self, tag: int, multiple: bool, nack: bool) -> None:
        """basic.ack / basic.nack from the broker."""
        unconfirmed = self.unconfirmed
        order = self._order
        if multiple:
            while order and order[0] <= tag:
                seq = order.popleft()
                future = unconfirmed.pop(seq, None)
                if future is not None:
                    self._settle(seq, future, nack)
        else:
            future = unconfirmed.pop(tag, None)
            if future is not None:
                self._settle(tag, future, nack)
            while order and order[0] not in unconfirmed:
                order.popleft()
        mandatory = self._mandatory
        while mandatory and mandatory[0][0] not in unconfirmed:
            mandatory.popleft()

    def _settle(self, seq: int, future: asyncio.Future[None], nack: bool) -> None:
        returned = self._returned.pop(seq, None) if self._returned else None
        if future.done():
            return
        error: BaseException | None = None
        if returned is not None:
            error = returned
        elif nack:
            error = PublishNacked(seq)
        if error is None:
            future.set_result(None)
            return
        future.set_exception(error)
        if self.failure is None:
            self.failure = error

    def on_return(self, message: Message, reply_code: int, reply_text: str) -> None:
        """basic.return: fail the returned publish when its confirm comes.

        Returns come in publish order, before the basic.ack of the same message: the
        returned message is the oldest unconfirmed mandatory one that matches.
        """
        mandatory = self._mandatory
        while mandatory:
            seq, exchange, routing_key, body = mandatory.popleft()
            if (
                exchange == message.exchange
                and routing_key == message.routing_key
                and body == message.body
            ):
                self._returned[seq] = Unroutable(message, reply_code, reply_text)
                break

    def fail(self, error: BaseException) -> None:
        """Fail every unconfirmed publish (the channel or connection is gone)."""
        unconfirmed = self.unconfirmed
        self.unconfirmed = {}
        self._order.clear()
        self._mandatory.clear()
        self._returned.clear()
        if unconfirmed and self.failure is None:
            self.failure = error
        for future in unconfirmed.values():
            if not future.done():
                future.set_exception(error)

    def take_failure(self) -> BaseException | None:
        """The first failure since the last call (None if there was none), forgotten."""
        failure, self.failure = self.failure, None
        return failure
