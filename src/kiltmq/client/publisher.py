"""Publishing on a channel: basic.publish, publisher confirms, returns and flow.

:meth:`PublishingChannel.basic_publish` queues the message frames at once. On a channel
in confirm mode (:meth:`PublishingChannel.confirm_select`) it then waits for the
broker's basic.ack and raises :class:`~kiltmq.client.errors.PublishNacked` on
basic.nack, or :class:`~kiltmq.client.errors.Unroutable` when a ``mandatory`` message
came back with basic.return (see :mod:`kiltmq.client.confirms`). Publishers wait, in
order, while the channel is being recovered, the broker has blocked the connection or
stopped the channel (channel.flow), or the socket's buffer is full.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kiltmq.client.confirms import Confirms
from kiltmq.client.message import Message
from kiltmq.client.rpc import ChannelConnection, RpcChannel
from kiltmq.client.state import ChannelState
from kiltmq.protocol import spec
from kiltmq.protocol.connection import LARGE_PIECE, ContentReceived
from kiltmq.protocol.frames import CONTENT_HEADER, content_frames, content_head
from kiltmq.protocol.spec import BasicProperties

__all__ = ["PublishingChannel"]

_HEADER = CONTENT_HEADER
_NO_PROPERTIES = b"\x00\x00"


class PublishingChannel(RpcChannel):
    """The publishing half of a :class:`~kiltmq.client.Channel`."""

    def __init__(self, connection: ChannelConnection, number: int) -> None:
        super().__init__(connection, number)
        #: Callbacks for messages returned by the broker (mandatory publishes).
        self.on_return: list[Callable[[Message], Any]] = []
        self._confirm = False
        self._confirms = Confirms(self.loop)
        self._flow_active = True
        self._flow_event = asyncio.Event()
        self._flow_event.set()
        self._names = connection._topology.names
        self._publish_cache: dict[tuple[str, str, bool, bool], bytes] = {}
        self._publish_waiting = 0
        self._done: asyncio.Future[None] | None = None

    @property
    def confirm_mode(self) -> bool:
        """Whether :meth:`confirm_select` put the channel in publisher-confirm mode."""
        return self._confirm

    @property
    def unconfirmed_count(self) -> int:
        """Publishes waiting for the broker's confirmation."""
        return len(self._confirms.unconfirmed)

    # -- from the broker --

    def _on_flow(self, active: bool) -> None:
        """channel.flow: the broker stops (or restarts) this channel's publishers."""
        self._set_flow(active)
        self.connection._send_method(self.number, spec.ChannelFlowOk(active))

    def _set_flow(self, active: bool) -> None:
        self._flow_active = active
        if active:
            self._flow_event.set()
        else:
            self._flow_event.clear()

    def _on_return(self, event: ContentReceived, method: spec.BasicReturn) -> None:
        message = Message(
            event.body,
            event.raw_properties,
            exchange=method.exchange,
            routing_key=method.routing_key,
        )
        message.reply_code = method.reply_code
        message.reply_text = method.reply_text
        if self._confirm:
            self._confirms.on_return(message, method.reply_code, method.reply_text)
        log = self.connection.logger
        for callback in list(self.on_return):
            try:
                callback(message)
            except Exception:
                log.exception("on_return callback failed")
        if not self.on_return and not self._confirm:
            log.warning(
                "message returned (%d %s), exchange %r routing key %r; set Channel.on_return "
                "or use confirm mode to handle returns",
                method.reply_code,
                method.reply_text,
                method.exchange,
                method.routing_key,
            )

    # -- publishing --

    async def basic_publish(
        self,
        body: bytes | str,
        exchange: str = "",
        routing_key: str = "",
        properties: BasicProperties | None = None,
        *,
        mandatory: bool = False,
        immediate: bool = False,
        timeout: float | None = None,
    ) -> None:
        """basic.publish. In confirm mode, returns once the broker confirmed the message
        (raising :class:`PublishNacked` or :class:`Unroutable`); otherwise as soon as the
        frames are queued. While the broker has blocked the connection
        (connection.blocked) this waits, at most the connection's ``blocked_timeout``."""
        if (
            self.state is not ChannelState.OPEN
            or self._publish_waiting
            or self.connection._flow.paused
        ):
            await self._publish_gate()
        future = self._send_publish(body, exchange, routing_key, properties, mandatory, immediate)
        if future is not None:
            if timeout is None:
                timeout = self.connection.rpc_timeout
            try:
                async with asyncio.timeout(timeout):
                    await future
            except TimeoutError:
                raise TimeoutError(
                    f"basic.publish on channel {self.number}: not confirmed within {timeout} s"
                ) from None

    def publish_nowait(
        self,
        body: bytes | str,
        exchange: str = "",
        routing_key: str = "",
        properties: BasicProperties | None = None,
        *,
        mandatory: bool = False,
        immediate: bool = False,
    ) -> asyncio.Future[None]:
        """Publish without waiting; return a future for the outcome.

        In confirm mode the future resolves when the broker confirms the message (or
        fails as :meth:`basic_publish` would raise); otherwise it is already done. When
        the message cannot be sent at once (connection blocked, writing paused,
        recovering) it is sent by a task in order with other publishes.
        """
        if (
            self.state is not ChannelState.OPEN
            or self._publish_waiting
            or self.connection._flow.paused
        ):
            self._check_usable()
            return self.loop.create_task(
                self._publish_later(body, exchange, routing_key, properties, mandatory, immediate)
            )
        future = self._send_publish(body, exchange, routing_key, properties, mandatory, immediate)
        if future is None:
            done = self._done
            if done is None:
                done = self._done = self.loop.create_future()
                done.set_result(None)
            return done
        return future

    async def _publish_later(
        self,
        body: bytes | str,
        exchange: str,
        routing_key: str,
        properties: BasicProperties | None,
        mandatory: bool,
        immediate: bool,
    ) -> None:
        await self._publish_gate()
        future = self._send_publish(body, exchange, routing_key, properties, mandatory, immediate)
        if future is not None:
            await future

    async def _publish_gate(self) -> None:
        """Wait until publishing may go on: channel open (recovered), connection not
        blocked, transport accepting writes. Waiting publishers keep their order."""
        self._publish_waiting += 1
        try:
            conn = self.connection
            async with asyncio.timeout(conn.rpc_timeout):
                await self._ready()
            await conn._wait_publishable()
            if not self._flow_active:
                async with asyncio.timeout(conn.rpc_timeout):
                    await self._flow_event.wait()
            self._check_usable()
        finally:
            self._publish_waiting -= 1

    def _send_publish(
        self,
        body: bytes | str,
        exchange: str,
        routing_key: str,
        properties: BasicProperties | None,
        mandatory: bool,
        immediate: bool,
    ) -> asyncio.Future[None] | None:
        if self.state is not ChannelState.OPEN:
            raise self._closed_error()
        if type(body) is not bytes:
            body = body.encode() if isinstance(body, str) else bytes(body)
        if not exchange and self._names:
            routing_key = self._names.get(routing_key, routing_key)
        key = (exchange, routing_key, mandatory, immediate)
        payload = self._publish_cache.get(key)
        if payload is None:
            payload = spec.BasicPublish(exchange, routing_key, mandatory, immediate).encode()
            if len(self._publish_cache) >= 256:
                self._publish_cache.clear()
            self._publish_cache[key] = payload
        raw = _NO_PROPERTIES if properties is None else properties.encode()
        conn = self.connection
        size = len(body)
        frame_max = conn._frame_max
        header = _HEADER.pack(60, 0, size) + raw
        if size < LARGE_PIECE or (frame_max and size > frame_max - 8):
            conn._send_frames(content_frames(self.number, payload, header, body, frame_max))
        else:  # a large body in one frame: written as it is, not joined with its frames
            conn._send_content(content_head(self.number, payload, header, size), body)
        if not self._confirm:
            return None
        return self._confirms.track(mandatory, exchange, routing_key, body)

    async def wait_for_confirms(self, timeout: float | None = None) -> None:
        """Wait until every publish so far is confirmed. Raise the first failure since
        the previous call (a nack, an unroutable mandatory message, or publishes lost
        with the connection or channel), even if that publish's own future reported it."""
        futures = list(self._confirms.unconfirmed.values())
        if futures:
            async with asyncio.timeout(
                timeout if timeout is not None else self.connection.rpc_timeout
            ):
                await asyncio.gather(*futures, return_exceptions=True)
        failure = self._confirms.take_failure()
        if failure is not None:
            raise failure

    async def confirm_select(self, *, timeout: float | None = None) -> None:
        """confirm.select: publisher confirms on this channel (see :meth:`basic_publish`)."""
        if self._confirm:
            return
        await self._rpc(spec.ConfirmSelect(False), (spec.ConfirmSelectOk,), timeout)
        self._confirm = True
        self._confirms.next_seq = 1
