"""The client connection, made by :func:`kiltmq.client.connect.connect`: it ties together the
transport, the handshake, heartbeats, the publish gate, the channels and recovery.

::

    conn = await kiltmq.connect("amqp://guest:guest@localhost/")
    async with kiltmq.connect(url) as conn:
        ch = await conn.channel()

Theory of operation
-------------------
:class:`Connection` owns an :class:`asyncio.Protocol`
(:class:`~kiltmq.client.transport.Transport`) and a sans-IO
:class:`kiltmq.protocol.Connection` in the client role. Bytes read are fed to the
protocol object (:mod:`~kiltmq.client.reader`); its events go to the channel objects
(``Channel._on_method`` / ``_on_content``, found in the :mod:`~kiltmq.client.registry`)
or, for channel 0, to ``_on_connection_method`` (and during the handshake to
:class:`~kiltmq.client.handshake.Handshake`). Frames to send are queued in the protocol
object and written by the :class:`~kiltmq.client.transport.FrameWriter`. Publishers
wait at the :mod:`~kiltmq.client.flow` gate while the socket buffer is full or the
broker has blocked the connection.

Heartbeats: :mod:`kiltmq.client.heartbeat`; closing: :mod:`kiltmq.client.closing`.
Recovery (on by default, ``connect(url, recovery=False)`` turns it off):
:mod:`kiltmq.client.recovery`, with the declared topology recorded by
:mod:`kiltmq.client.topology`.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from kiltmq.client.addresses import Addresses
from kiltmq.client.channel import Channel
from kiltmq.client.closing import CloseHandshake
from kiltmq.client.consumer import Consumer
from kiltmq.client.errors import (
    AuthenticationError,
    ConnectError,
    ConnectionClosed,
    ConnectionLost,
    ConnectTimeout,
    lost_error,
)
from kiltmq.client.flow import PublishGate
from kiltmq.client.handshake import Handshake, client_properties
from kiltmq.client.heartbeat import HeartbeatTimer
from kiltmq.client.reader import ConnectionReader
from kiltmq.client.recovery import recover
from kiltmq.client.registry import ChannelRegistry
from kiltmq.client.state import ChannelState, ConnectionState
from kiltmq.client.topology import Topology
from kiltmq.client.transport import FrameWriter, Transport
from kiltmq.client.url import ConnectionParameters
from kiltmq.protocol.codec import FieldTable
from kiltmq.protocol.connection import (
    Connection as ProtocolConnection,
)
from kiltmq.protocol.connection import (
    Role,
)
from kiltmq.protocol.errors import AMQPError
from kiltmq.version import __version__

__all__ = ["Connection", "ConnectionState"]

logger = logging.getLogger("kiltmq.client")


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _weakly(method: Callable[_P, _R], gone: _R) -> Callable[_P, _R]:
    """Bound ``method`` called through a weak reference to its object (``gone`` once
    that is freed), so that holding it keeps no reference cycle."""
    ref = weakref.WeakMethod(method)

    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        bound = ref()
        return gone if bound is None else bound(*args, **kwargs)

    return call


class Connection(ConnectionReader):
    """An AMQP connection; made by :func:`connect`."""

    _OPEN = ConnectionState.OPEN
    _CLOSED = ConnectionState.CLOSED
    _ids = itertools.count(1)

    def __init__(
        self,
        parameters: ConnectionParameters | Sequence[ConnectionParameters],
        *,
        name: str | None = None,
        rpc_timeout: float = 30.0,
        blocked_timeout: float | None = 60.0,
        recovery: bool = True,
        recovery_initial_delay: float = 0.1,
        recovery_max_delay: float = 10.0,
        recovery_attempts: int | None = None,
        client_properties: FieldTable | None = None,
        shuffle_addresses: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if isinstance(parameters, ConnectionParameters):
            parameters = (parameters,)
        #: The brokers this connection may use (see :mod:`kiltmq.client.addresses`).
        self.addresses = Addresses(parameters, shuffle_addresses)
        #: The broker the connection is (or was last) connected to.
        self.parameters = self.addresses.all[0]
        self.name = name
        #: Default timeout (seconds) of synchronous methods and confirms.
        self.rpc_timeout = rpc_timeout
        #: How long a publish waits while the broker has blocked the connection
        #: (None: as long as it takes).
        self.blocked_timeout = blocked_timeout
        self.recovery = recovery
        self.recovery_initial_delay = recovery_initial_delay
        self.recovery_max_delay = recovery_max_delay
        self.recovery_attempts = recovery_attempts
        self.loop = loop or asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.logger = logger
        self.id = next(self._ids)
        self.state = ConnectionState.CONNECTING
        self.close_reason = None
        self.server_properties: FieldTable = {}
        self._client_properties = client_properties
        self._proto = ProtocolConnection(Role.CLIENT)
        self._transport_proto: Transport | None = None
        self._writer = FrameWriter(self.loop, self._proto)
        # the writer's bound methods, called directly on the publish and ack paths
        self._send_method = self._writer.send_method
        self._send_frames = self._writer.send_frames
        self._send_content = self._writer.send_content
        self._flush = self._writer.flush
        self._frame_max = self.parameters.frame_max
        self._registry = ChannelRegistry(self.parameters.channel_max or 65535)
        self._channels = self._registry.channels
        self._channel_closed = self._registry.remove
        self._handshaking = False
        # the parts get no callbacks bound to this connection (only weakly), so that a
        # closed connection is freed by reference counting
        self._send_ch0_frame = functools.partial(self._writer.send_method, 0)
        self._handshake = Handshake(self.loop, self._send_ch0_frame)
        self._closing = CloseHandshake(self.loop, self._send_ch0_frame, self._flush)
        self._flow = PublishGate(_weakly(self._is_open, False))
        self._set_write_paused = self._flow.set_write_paused
        self._heartbeats = HeartbeatTimer(
            self.loop,
            _weakly(self._heartbeat_alive, False),
            _weakly(self._send_heartbeat, None),
            _weakly(self._peer_silent, None),
        )
        self._server_close: AMQPError | None = None
        self._lost_reason: BaseException | None = None
        self._closed = self.loop.create_future()
        self._recovery_task: asyncio.Task[None] | None = None
        self._recovered = asyncio.Event()
        self._recovered.set()
        self._consumer_tags = itertools.count(1)
        #: what the application declared, for recovery
        self._topology = Topology()
        #: Callbacks: ``on_blocked(reason)``, ``on_unblocked()``,
        #: ``on_connection_lost(error)`` (recovery follows if enabled), ``on_recovered()``,
        #: ``on_closed(reason)``.
        self.on_blocked: list[Callable[[str], Any]] = []
        self.on_unblocked: list[Callable[[], Any]] = []
        self.on_connection_lost: list[Callable[[BaseException], Any]] = []
        self.on_recovered: list[Callable[[], Any]] = []
        self.on_closed: list[Callable[[BaseException | None], Any]] = []
        #: Counters, for monitoring and tests.
        self.heartbeats_received = 0
        self.heartbeats_sent = 0
        self.recoveries = 0

    # -- properties --

    @property
    def blocked(self) -> bool:
        """True while the broker has blocked publishing (connection.blocked)."""
        return self._flow.blocked

    @property
    def blocked_reason(self) -> str | None:
        """The reason the broker gave in connection.blocked (None when not blocked)."""
        return self._flow.reason

    @property
    def heartbeat(self) -> float:
        """The negotiated heartbeat timeout in seconds (0: none)."""
        return self._proto.heartbeat.interval

    @property
    def frame_max(self) -> int:
        """The negotiated largest frame size in bytes."""
        return self._frame_max

    @property
    def channel_max(self) -> int:
        """The negotiated channel_max: how many channels the connection may open."""
        return self._registry.channel_max

    @property
    def local_address(self) -> tuple[str, int] | None:
        """The socket's local (host, port), e.g. to find the connection in the broker."""
        if self._transport is None:
            return None
        address = self._transport.get_extra_info("sockname")
        return (address[0], address[1]) if address else None

    def current_name(self, queue: str) -> str:
        """The broker's current name for a queue the application knows as ``queue``
        (they differ for server-named queues declared again by recovery)."""
        return self._topology.current_name(queue)

    def __repr__(self) -> str:
        return f"<Connection {self.parameters.display} {self.state.value}>"

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _establish(self) -> None:
        """Open the socket and run the handshake (connect and each recovery attempt)."""
        params = self.parameters
        self._proto = ProtocolConnection(Role.CLIENT)
        self._writer.reset(self._proto)
        handshake = self._handshake = Handshake(self.loop, self._send_ch0_frame)
        self._server_close = None
        self._lost_reason = None
        self._handshaking = True
        transport_proto = Transport(self)
        self._transport_proto = transport_proto
        timeout = params.connection_timeout
        try:
            async with asyncio.timeout(timeout):
                await transport_proto.open(self.loop, params)
                self._writer.attach(transport_proto.transport)
                self._proto.send_protocol_header()
                self._flush()
                await handshake.run(
                    params, client_properties(__version__, self.name, self._client_properties)
                )
        except TimeoutError:
            self._abort_transport()
            raise ConnectTimeout(
                f"cannot connect to {params.display}: not open within {timeout:g} s"
            ) from None
        except BaseException:
            self._abort_transport()
            raise
        finally:
            self._handshaking = False
            if handshake.server_properties is not None:
                self.server_properties = handshake.server_properties
            if handshake.tuned is not None:
                channel_max, self._frame_max, _ = handshake.tuned
                self._registry.channel_max = channel_max or 65535
        self._flow.reset()
        self._heartbeats.start(self._proto.heartbeat)

    def _abort_transport(self) -> None:
        transport = self._transport or (
            self._transport_proto.transport if self._transport_proto else None
        )
        self._transport_proto = None
        self._writer.attach(None)
        if transport is not None:
            transport.abort()

    async def _wait_publishable(self) -> None:
        await self._flow.wait(self.rpc_timeout, self.blocked_timeout)

    def _is_open(self) -> bool:
        return self.state is ConnectionState.OPEN

    # -- heartbeats --

    def _heartbeat_alive(self) -> bool:
        return self.state is ConnectionState.OPEN and self._transport is not None

    def _send_heartbeat(self) -> None:
        self._proto.send_heartbeat()
        self.heartbeats_sent += 1
        self._flush()

    def _peer_silent(self, seconds: float) -> None:
        self._lost_reason = ConnectionLost(
            f"no data from {self.parameters.display} for {seconds:g} s (missed heartbeats)"
        )
        logger.warning("%s", self._lost_reason)
        assert self._transport is not None
        self._transport.abort()

    def _transport_lost(self, transport_proto: Transport, exc: Exception | None) -> None:
        if transport_proto is not self._transport_proto:
            return
        self._transport_proto = None
        self._writer.attach(None)
        self._heartbeats.cancel()
        if self._flow.write_paused:
            self._flow.set_write_paused(False)
        if self._handshaking:
            error = self._server_close or ConnectError(
                f"{self.parameters.display} closed the connection during the handshake"
                + (f": {exc}" if exc else "")
            )
            self._handshake.fail(error)
            return
        if self.state is ConnectionState.CLOSING:
            self._closing.done()
            return
        if self.state is ConnectionState.CLOSED:
            return
        reason = self._server_close or self._lost_reason
        self._lost(lost_error(reason, self.parameters.display, exc))

    def _lost(self, error: BaseException) -> None:
        """The connection ended without the application asking."""
        was_open = self.state is ConnectionState.OPEN
        for callback in list(self.on_connection_lost):
            try:
                callback(error)
            except Exception:
                logger.exception("on_connection_lost callback failed")
        self._registry.suspend(error)
        if self.state is ConnectionState.RECOVERING:
            return  # the recovery loop notices and tries again
        if self.recovery and was_open and not isinstance(error, AuthenticationError):
            logger.warning("%s; recovering", error)
            self.state = ConnectionState.RECOVERING
            self._recovered.clear()
            self._recovery_task = self.loop.create_task(recover(self))
        else:
            self._terminate(error)

    def _terminate(self, reason: BaseException | None) -> None:
        """Closed for good: fail everything still pending."""
        if self.state is ConnectionState.CLOSED:
            return
        self.state = ConnectionState.CLOSED
        self.close_reason = reason
        self._registry.close(reason or ConnectionClosed("the application closed the connection"))
        self._heartbeats.cancel()
        self._abort_transport()
        self._recovered.set()
        self._flow.release()
        if not self._closed.done():
            self._closed.set_result(None)
        for callback in list(self.on_closed):
            try:
                callback(reason)
            except Exception:
                logger.exception("on_closed callback failed")

    async def _wait_recovered(self) -> None:
        await self._recovered.wait()

    async def wait_closed(self) -> BaseException | None:
        """Wait until the connection is closed for good; return :attr:`close_reason`."""
        await asyncio.shield(self._closed)
        return self.close_reason

    # -- consumers --

    def _forget_consumer(self, consumer: Consumer, cancelled: bool = False) -> None:
        """A consumer is gone while the connection lives: an auto-delete queue goes with
        its last consumer."""
        if self.state is ConnectionState.OPEN:
            others = (c.queue for c in self._registry.consumers() if c is not consumer)
            self._topology.consumer_gone(consumer.queue, others)

    def _new_consumer_tag(self) -> str:
        return f"kiltmq.{self.id}.{next(self._consumer_tags)}"

    # -- channels --

    async def channel(self, *, timeout: float | None = None) -> Channel:
        """Open a new channel."""
        if timeout is None:
            timeout = self.rpc_timeout
        async with asyncio.timeout(timeout):
            while self.state is ConnectionState.RECOVERING:
                await self._wait_recovered()
        if self.state is not ConnectionState.OPEN:
            raise ConnectionClosed(
                f"connection to {self.parameters.display} is closed", self.close_reason
            )
        channel = self._registry.new(self, self._proto.channels)
        try:
            await channel._open(timeout)
        except BaseException:
            self._registry.remove(channel)
            channel.state = ChannelState.CLOSED
            raise
        return channel

    async def _recovery_channel(self) -> Channel:
        channel = self._registry.new(self, self._proto.channels)
        await channel._open()
        return channel

    @property
    def channels(self) -> list[Channel]:
        """The open channels."""
        return list(self._channels.values())

    # -- closing --

    async def close(
        self, reply_code: int = 200, reply_text: str = "bye", *, timeout: float | None = None
    ) -> None:
        """connection.close: close every channel and the connection. Idempotent."""
        if self.state is ConnectionState.CLOSED:
            return
        if self.state is ConnectionState.CLOSING:
            await self.wait_closed()
            return
        previous = self.state
        self.state = ConnectionState.CLOSING
        task = self._recovery_task
        if task is not None and not task.done():
            task.cancel()
        if previous is ConnectionState.OPEN and self._transport is not None:
            await self._closing.close(
                reply_code, reply_text, timeout if timeout is not None else self.rpc_timeout
            )
            if self._transport is not None:
                self._transport.close()
        self._terminate(None)

    def __del__(self) -> None:
        if self.state not in (ConnectionState.CLOSED, ConnectionState.CONNECTING):
            transport = self._transport
            if transport is not None and not self.loop.is_closed():
                transport.abort()
