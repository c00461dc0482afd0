"""The connection.close handshake, both ways: the application closes (connection.close,
then wait for close-ok), the broker closes (answer close-ok), or the client closes on a
protocol error (connection.close, without waiting)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from kiltmq.client.errors import ClientError
from kiltmq.protocol import spec
from kiltmq.protocol.errors import AMQPError, LocalProtocolError
from kiltmq.protocol.spec import Method

__all__ = ["CloseHandshake"]


class CloseHandshake:
    """``send`` queues a method on channel 0, ``flush`` writes it."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[Method], None],
        flush: Callable[[], None],
    ) -> None:
        self.loop = loop
        self._send = send
        self._flush = flush
        self._waiter: asyncio.Future[None] | None = None

    async def close(self, reply_code: int, reply_text: str, timeout: float) -> None:
        """Send connection.close and wait, at most ``timeout`` seconds, for close-ok or
        the socket closing. A timeout or an error ends the wait."""
        self._waiter = self.loop.create_future()
        try:
            self._send(spec.ConnectionClose(reply_code, reply_text, 0, 0))
            self._flush()
            async with asyncio.timeout(timeout):
                await self._waiter
        except (TimeoutError, ClientError, AMQPError):
            pass

    def done(self) -> None:
        """close-ok came, or the socket closed: :meth:`close` returns."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def answer(self) -> None:
        """The broker sent connection.close: answer close-ok."""
        self._send(spec.ConnectionCloseOk())
        self._flush()

    def refuse(self, error: AMQPError) -> None:
        """Close the connection because of a protocol error. During the handshake, or
        with a close already under way, the protocol core refuses connection.close:
        then nothing is sent."""
        with contextlib.suppress(LocalProtocolError):
            self._send(
                spec.ConnectionClose(
                    error.reply_code, error.reply_text[:255], error.class_id, error.method_id
                ),
            )
            self._flush()
