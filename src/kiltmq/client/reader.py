"""The read side of a client connection (:mod:`kiltmq.client.connection`): bytes to the
sans-IO core, its events to the channels, and channel 0's methods to the handshake, the
close handshake and the publish gate (connection.blocked, connection.unblocked)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kiltmq.client.channel import Channel
from kiltmq.client.closing import CloseHandshake
from kiltmq.client.errors import ConnectError
from kiltmq.client.flow import PublishGate
from kiltmq.client.handshake import Handshake
from kiltmq.client.state import ConnectionState, Lifecycle
from kiltmq.client.transport import FrameWriter
from kiltmq.client.url import ConnectionParameters
from kiltmq.protocol import spec
from kiltmq.protocol.connection import Connection as ProtocolConnection
from kiltmq.protocol.connection import (
    ContentReceived,
    HeartbeatReceived,
    MethodReceived,
    ProtocolError,
)
from kiltmq.protocol.errors import AMQPError, error_for
from kiltmq.protocol.spec import Method

__all__ = ["ConnectionReader"]

logger = logging.getLogger("kiltmq.client")


class ConnectionReader(Lifecycle[ConnectionState]):
    """Reading for :class:`~kiltmq.client.connection.Connection`, which sets these."""

    loop: asyncio.AbstractEventLoop
    parameters: ConnectionParameters
    heartbeats_received: int
    on_blocked: list[Callable[[str], Any]]
    on_unblocked: list[Callable[[], Any]]
    _proto: ProtocolConnection
    _writer: FrameWriter
    _channels: dict[int, Channel]
    _handshaking: bool
    _handshake: Handshake
    _closing: CloseHandshake
    _flow: PublishGate
    _server_close: AMQPError | None
    _lost_reason: BaseException | None

    @property
    def _transport(self) -> asyncio.Transport | None:
        return self._writer.transport

    def _data_received(self, data: bytes) -> None:
        self._proto.heartbeat.last_received = self.loop.time()
        channels = self._channels
        for event in self._proto.receive_data(data):
            kind = type(event)
            if kind is ContentReceived:
                assert isinstance(event, ContentReceived)
                channel = channels.get(event.channel)
                if channel is not None:
                    channel._on_content(event)
            elif kind is MethodReceived:
                assert isinstance(event, MethodReceived)
                if event.channel == 0:
                    self._on_connection_method(event.method)
                else:
                    channel = channels.get(event.channel)
                    if channel is not None:
                        channel._on_method(event.method)
            elif kind is HeartbeatReceived:
                self.heartbeats_received += 1
            elif kind is ProtocolError:
                assert isinstance(event, ProtocolError)
                self._protocol_error(event.error)

    def _protocol_error(self, error: AMQPError) -> None:
        logger.error("protocol error from %s: %s", self.parameters.display, error)
        self._lost_reason = error
        if self._handshaking:
            self._handshake.fail(ConnectError(f"protocol error during the handshake: {error}"))
        self._closing.refuse(error)
        if self._transport is not None:
            self._transport.close()

    def _on_connection_method(self, method: Method) -> None:
        if self._handshaking:
            self._handshake.feed(method)
            return
        kind = type(method)
        if kind is spec.ConnectionClose:
            assert isinstance(method, spec.ConnectionClose)
            self._closing.answer()
            if self.state is ConnectionState.CLOSING:
                self._closing.done()
            else:
                self._server_close = error_for(
                    method.reply_code, method.reply_text, method.class_id, method.method_id,
                    scope="connection",
                )
                logger.warning("the broker closed the connection: %s", self._server_close)
            if self._transport is not None:
                self._transport.close()
        elif kind is spec.ConnectionCloseOk:
            self._closing.done()
        elif kind is spec.ConnectionBlocked:
            assert isinstance(method, spec.ConnectionBlocked)
            self._flow.set_blocked(method.reason)
            for callback in list(self.on_blocked):
                callback(method.reason)
        elif kind is spec.ConnectionUnblocked:
            self._flow.set_blocked(None)
            for unblocked_callback in list(self.on_unblocked):
                unblocked_callback()
