"""The client connection: ``connect(url)``, the asyncio transport, heartbeats, flow
control (connection.blocked) and automatic recovery.

::

    conn = await kiltmq.connect("amqp://guest:guest@localhost/")
    async with kiltmq.connect(url) as conn:
        ch = await conn.channel()

Theory of operation
-------------------
:class:`Connection` owns an :class:`asyncio.Protocol` (``_Transport``) and a sans-IO
:class:`kiltmq.protocol.Connection` in the client role. Bytes read are fed to the
protocol object; its events go to the channel objects (``Channel._on_method`` /
``_on_content``) or, for channel 0, to :meth:`Connection._on_connection_method`. Frames
to send are queued in the protocol object and written in one ``transport.write`` per
event-loop iteration (``_schedule_flush``), or at once when 64 KiB are pending, so a
burst of publishes or acks costs one system call. ``pause_writing`` from the transport
(the socket buffer is full) pauses publishers until ``resume_writing``.

Heartbeats use :class:`kiltmq.protocol.Heartbeat`: a timer sends a heartbeat frame when
nothing was written for half the negotiated interval, and drops the connection when the
server sent nothing for two intervals.

Recovery (on by default, ``connect(url, recovery=False)`` turns it off): when the
connection ends without the application closing it (the socket drops, heartbeats stop,
the server closes it), calls that were waiting and publishes not yet confirmed fail with
:class:`~kiltmq.client.errors.ConnectionLost`; then the client reconnects with
exponential backoff and restores what the application declared through it, in this
order: channels (same numbers, with their basic.qos, confirm and tx modes), exchanges,
queues (a server-named queue gets a new name, and the old name keeps working on this
connection: it is translated wherever a queue name is passed, including the routing key
of publishes to the default exchange), bindings (queue and exchange-to-exchange) and
consumers (same consumer tags; iterators keep yielding). Meanwhile calls wait for the
recovery (within their timeout). See docs/client.md for what cannot be recovered.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random
import socket
import sys
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from kiltmq import __version__
from kiltmq.client.channel import Channel, ChannelState
from kiltmq.client.consumer import Consumer
from kiltmq.client.errors import (
    AuthenticationError,
    BlockedTimeout,
    ClientError,
    ConnectError,
    ConnectionClosed,
    ConnectionLost,
    ConnectTimeout,
    connection_lost,
)
from kiltmq.client.url import ConnectionParameters, parse_url
from kiltmq.protocol import spec
from kiltmq.protocol.codec import FieldTable, encode_table
from kiltmq.protocol.connection import (
    Connection as ProtocolConnection,
)
from kiltmq.protocol.connection import (
    ContentReceived,
    HeartbeatReceived,
    MethodReceived,
    ProtocolError,
    Role,
    negotiate,
)
from kiltmq.protocol.errors import (
    AMQPError,
    LocalProtocolError,
    ResourceLocked,
    SoftError,
    error_for,
)
from kiltmq.protocol.spec import Method

__all__ = ["Connection", "ConnectionState", "connect"]

logger = logging.getLogger("kiltmq.client")

_FLUSH_THRESHOLD = 65536

CAPABILITIES: dict[str, bool] = {
    "publisher_confirms": True,
    "consumer_cancel_notify": True,
    "basic.nack": True,
    "connection.blocked": True,
    "exchange_exchange_bindings": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
}


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    RECOVERING = "recovering"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(slots=True)
class _ExchangeRecord:
    name: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: FieldTable | None


@dataclass(slots=True)
class _QueueRecord:
    name: str  # the name the application knows
    server_named: bool
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: FieldTable | None


@dataclass(slots=True)
class _BindingRecord:
    kind: str  # "queue" or "exchange"
    destination: str
    source: str
    routing_key: str
    arguments: FieldTable | None


def _binding_key(
    kind: str, destination: str, source: str, routing_key: str, arguments: FieldTable | None
) -> tuple[str, str, str, str, str]:
    return (kind, destination, source, routing_key, repr(sorted((arguments or {}).items())))


class _Transport(asyncio.Protocol):
    """asyncio glue: forwards everything to the owning :class:`Connection`."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        conn = self.connection
        if conn._transport_proto is self:
            conn._data_received(data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection._transport_lost(self, exc)

    def pause_writing(self) -> None:
        if self.connection._transport_proto is self:
            self.connection._set_write_paused(True)

    def resume_writing(self) -> None:
        if self.connection._transport_proto is self:
            self.connection._set_write_paused(False)


class Connection:
    """An AMQP connection; made by :func:`connect`."""

    _ids = itertools.count(1)

    def __init__(
        self,
        parameters: ConnectionParameters,
        *,
        name: str | None = None,
        rpc_timeout: float = 30.0,
        blocked_timeout: float | None = 60.0,
        recovery: bool = True,
        recovery_initial_delay: float = 0.1,
        recovery_max_delay: float = 10.0,
        recovery_attempts: int | None = None,
        client_properties: FieldTable | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.parameters = parameters
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
        #: Why the connection closed (None while open, or when the application closed it).
        self.close_reason: BaseException | None = None
        self.server_properties: FieldTable = {}
        self._client_properties = client_properties
        self._proto = ProtocolConnection(Role.CLIENT)
        self._transport_proto: _Transport | None = None
        self._transport: asyncio.Transport | None = None
        self._frame_max = parameters.frame_max
        self._channel_max = parameters.channel_max or 65535
        self._channels: dict[int, Channel] = {}
        self._last_channel = 0
        self._handshaking = False
        self._ch0: list[Method] = []
        self._ch0_waiter: asyncio.Future[None] | None = None
        self._handshake_error: BaseException | None = None
        self._flush_scheduled = False
        self._pending = 0
        self._write_paused = False
        self._blocked = False
        #: The reason the broker gave in connection.blocked (None when not blocked).
        self.blocked_reason: str | None = None
        self._publish_paused = False
        self._publishable = asyncio.Event()
        self._publishable.set()
        self._hb_handle: asyncio.TimerHandle | None = None
        self._server_close: AMQPError | None = None
        self._lost_reason: BaseException | None = None
        self._close_waiter: asyncio.Future[None] | None = None
        self._closed = self.loop.create_future()
        self._recovery_task: asyncio.Task[None] | None = None
        self._recovered = asyncio.Event()
        self._recovered.set()
        self._consumer_tags = itertools.count(1)
        # recorded topology
        self._exchanges: dict[str, _ExchangeRecord] = {}
        self._queues: dict[str, _QueueRecord] = {}
        self._bindings: dict[tuple[str, str, str, str, str], _BindingRecord] = {}
        #: application-visible queue names -> current server names (renamed only)
        self._names: dict[str, str] = {}
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
    def is_open(self) -> bool:
        """Open and usable now (False while recovering)."""
        return self.state is ConnectionState.OPEN

    @property
    def is_closed(self) -> bool:
        """Closed for good; ``close_reason`` says why (None after :meth:`close`)."""
        return self.state is ConnectionState.CLOSED

    @property
    def blocked(self) -> bool:
        """True while the broker has blocked publishing (connection.blocked)."""
        return self._blocked

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
        return self._channel_max

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
        names = self._names
        return names.get(queue, queue) if names else queue

    def __repr__(self) -> str:
        return f"<Connection {self.parameters.display} {self.state.value}>"

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- opening --

    def _client_properties_table(self) -> FieldTable:
        properties: dict[str, Any] = {
            "product": "kiltmq",
            "version": __version__,
            "platform": f"Python {sys.version.split()[0]}",
            "information": "asyncio AMQP 0-9-1 client",
            "capabilities": dict(CAPABILITIES),
        }
        if self.name:
            properties["connection_name"] = self.name
        if self._client_properties:
            properties.update(self._client_properties)
        return properties

    def _auth_response(self, offered: list[str]) -> tuple[str, bytes]:
        params = self.parameters
        for mechanism in params.auth_mechanisms:
            if mechanism in offered:
                break
        else:
            raise ConnectError(
                f"the broker offers {' '.join(offered) or 'no'} authentication mechanisms, "
                f"none of {', '.join(params.auth_mechanisms)}"
            )
        if mechanism == "PLAIN":
            response = f"\0{params.username}\0{params.password}".encode()
        elif mechanism == "AMQPLAIN":
            response = encode_table({"LOGIN": params.username, "PASSWORD": params.password})[4:]
        else:  # EXTERNAL: the identity comes from the TLS client certificate
            response = b""
        return mechanism, response

    async def _next_ch0(self) -> Method:
        # a protocol error wins over methods received before it: the connection is
        # already closing
        while self._handshake_error is not None or not self._ch0:
            if self._handshake_error is not None:
                raise self._handshake_error
            waiter = self._ch0_waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self._ch0_waiter = None
        method = self._ch0.pop(0)
        if isinstance(method, spec.ConnectionClose):
            self._send_method(0, spec.ConnectionCloseOk())
            if method.reply_code == spec.ReplyCode.ACCESS_REFUSED:
                raise AuthenticationError(
                    method.reply_text, method.class_id, method.method_id
                )
            raise error_for(
                method.reply_code, method.reply_text, method.class_id, method.method_id,
                scope="connection",
            )
        return method

    async def _establish(self) -> None:
        """Open the socket and run the handshake (connect and each recovery attempt)."""
        params = self.parameters
        self._proto = ProtocolConnection(Role.CLIENT)
        self._ch0 = []
        self._handshake_error = None
        self._server_close = None
        self._lost_reason = None
        self._handshaking = True
        self._pending = 0
        transport_proto = _Transport(self)
        self._transport_proto = transport_proto
        timeout = params.connection_timeout
        try:
            async with asyncio.timeout(timeout):
                try:
                    await self.loop.create_connection(
                        lambda: transport_proto,
                        params.host,
                        params.port,
                        ssl=params.ssl_context(),
                        server_hostname=params.tls_server_hostname(),
                    )
                except OSError as exc:
                    reason = (
                        "connection refused"
                        if isinstance(exc, ConnectionRefusedError)
                        else exc.strerror or str(exc)
                    )
                    raise ConnectError(f"cannot connect to {params.display}: {reason}") from exc
                self._transport = transport_proto.transport
                self._proto.send_protocol_header()
                self._flush()
                start = await self._next_ch0()
                if not isinstance(start, spec.ConnectionStart):
                    raise ConnectError(f"expected connection.start, got {start.NAME}")
                self.server_properties = dict(start.server_properties or {})
                mechanism, response = self._auth_response(start.mechanisms.decode().split())
                self._send_method(
                    0,
                    spec.ConnectionStartOk(
                        self._client_properties_table(), mechanism, response, "en_US"
                    ),
                )
                tune = await self._next_ch0()
                if isinstance(tune, spec.ConnectionSecure):
                    raise ConnectError(f"the {mechanism} mechanism does not use a challenge")
                if not isinstance(tune, spec.ConnectionTune):
                    raise ConnectError(f"expected connection.tune, got {tune.NAME}")
                channel_max = negotiate(params.channel_max, tune.channel_max)
                frame_max = negotiate(params.frame_max, tune.frame_max)
                heartbeat = negotiate(params.heartbeat, tune.heartbeat) if params.heartbeat else 0
                self._send_method(0, spec.ConnectionTuneOk(channel_max, frame_max, heartbeat))
                self._frame_max = frame_max
                self._channel_max = channel_max or 65535
                self._send_method(0, spec.ConnectionOpen(params.virtual_host))
                ok = await self._next_ch0()
                if not isinstance(ok, spec.ConnectionOpenOk):
                    raise ConnectError(f"expected connection.open-ok, got {ok.NAME}")
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
        self._publish_paused = self._write_paused = self._blocked = False
        self.blocked_reason = None
        self._publishable.set()
        heartbeat_state = self._proto.heartbeat
        if heartbeat_state.interval:
            heartbeat_state.start(heartbeat_state.interval, self.loop.time())
            self._hb_handle = self.loop.call_later(
                heartbeat_state.interval / 2, self._heartbeat_tick
            )

    def _abort_transport(self) -> None:
        transport = self._transport or (
            self._transport_proto.transport if self._transport_proto else None
        )
        self._transport_proto = None
        self._transport = None
        if transport is not None:
            transport.abort()

    # -- writing --

    def _send_method(self, channel: int, method: Method) -> None:
        self._proto.send_method(channel, method)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _send_frames(self, data: bytes) -> None:
        """Queue pre-encoded frames (publishes, acks)."""
        self._proto.send_raw(data)
        pending = self._pending + len(data)
        if pending >= _FLUSH_THRESHOLD:
            self._flush()
        else:
            self._pending = pending
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._pending = 0
        data = self._proto.data_to_send()
        transport = self._transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)
            self._proto.heartbeat.last_sent = self.loop.time()

    def _set_write_paused(self, paused: bool) -> None:
        self._write_paused = paused
        self._update_publishable()

    def _update_publishable(self) -> None:
        self._publish_paused = self._write_paused or self._blocked
        if self._publish_paused:
            self._publishable.clear()
        else:
            self._publishable.set()

    async def _wait_publishable(self) -> None:
        while self._publish_paused and self.state is ConnectionState.OPEN:
            if self._blocked:
                try:
                    async with asyncio.timeout(self.blocked_timeout):
                        await self._publishable.wait()
                except TimeoutError:
                    if not self.blocked:
                        continue
                    raise BlockedTimeout(
                        f"the broker blocked the connection ({self.blocked_reason}) for longer "
                        f"than blocked_timeout ({self.blocked_timeout} s)"
                    ) from None
            else:
                async with asyncio.timeout(self.rpc_timeout):
                    await self._publishable.wait()

    # -- heartbeats --

    def _heartbeat_tick(self) -> None:
        self._hb_handle = None
        if self.state is not ConnectionState.OPEN or self._transport is None:
            return
        heartbeat = self._proto.heartbeat
        now = self.loop.time()
        if heartbeat.peer_dead(now):
            self._lost_reason = ConnectionLost(
                f"no data from {self.parameters.display} for "
                f"{heartbeat.interval * heartbeat.miss_limit:g} s (missed heartbeats)"
            )
            logger.warning("%s", self._lost_reason)
            transport = self._transport
            transport.abort()
            return
        if heartbeat.send_due(now):
            self._proto.send_heartbeat()
            self.heartbeats_sent += 1
            self._flush()
        deadline = heartbeat.next_deadline(now)
        if deadline is not None:
            self._hb_handle = self.loop.call_later(max(deadline - now, 0.01), self._heartbeat_tick)

    # -- reading --

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
            self._handshake_failed(ConnectError(f"protocol error during the handshake: {error}"))
        # during the handshake, or with a close already under way, the core refuses
        # connection.close: the socket just closes
        with contextlib.suppress(LocalProtocolError):
            self._send_method(
                0,
                spec.ConnectionClose(
                    error.reply_code, error.reply_text[:255], error.class_id, error.method_id
                ),
            )
            self._flush()
        if self._transport is not None:
            self._transport.close()

    def _handshake_failed(self, error: BaseException) -> None:
        self._handshake_error = error
        waiter = self._ch0_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_connection_method(self, method: Method) -> None:
        if self._handshaking:
            self._ch0.append(method)
            waiter = self._ch0_waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        kind = type(method)
        if kind is spec.ConnectionClose:
            assert isinstance(method, spec.ConnectionClose)
            self._send_method(0, spec.ConnectionCloseOk())
            self._flush()
            if self.state is ConnectionState.CLOSING:
                self._resolve_close()
            else:
                self._server_close = error_for(
                    method.reply_code, method.reply_text, method.class_id, method.method_id,
                    scope="connection",
                )
                logger.warning("the broker closed the connection: %s", self._server_close)
            if self._transport is not None:
                self._transport.close()
        elif kind is spec.ConnectionCloseOk:
            self._resolve_close()
        elif kind is spec.ConnectionBlocked:
            assert isinstance(method, spec.ConnectionBlocked)
            self._blocked = True
            self.blocked_reason = method.reason
            self._update_publishable()
            for callback in list(self.on_blocked):
                callback(method.reason)
        elif kind is spec.ConnectionUnblocked:
            self._blocked = False
            self.blocked_reason = None
            self._update_publishable()
            for unblocked_callback in list(self.on_unblocked):
                unblocked_callback()

    def _resolve_close(self) -> None:
        waiter = self._close_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _transport_lost(self, transport_proto: _Transport, exc: Exception | None) -> None:
        if transport_proto is not self._transport_proto:
            return
        self._transport_proto = None
        self._transport = None
        if self._hb_handle is not None:
            self._hb_handle.cancel()
            self._hb_handle = None
        if self._write_paused:
            self._set_write_paused(False)
        if self._handshaking:
            error = self._server_close or ConnectError(
                f"{self.parameters.display} closed the connection during the handshake"
                + (f": {exc}" if exc else "")
            )
            self._handshake_failed(error)
            return
        if self.state is ConnectionState.CLOSING:
            self._resolve_close()
            return
        if self.state is ConnectionState.CLOSED:
            return
        reason = self._server_close or self._lost_reason
        lost: BaseException
        if isinstance(reason, AMQPError):
            lost = connection_lost(reason)
        elif isinstance(reason, ConnectionLost):
            lost = reason
        else:
            lost = ConnectionLost(
                f"connection to {self.parameters.display} lost" + (f": {exc}" if exc else ""),
                exc,
            )
        self._lost(lost)

    def _lost(self, error: BaseException) -> None:
        """The connection ended without the application asking."""
        was_open = self.state is ConnectionState.OPEN
        for callback in list(self.on_connection_lost):
            try:
                callback(error)
            except Exception:
                logger.exception("on_connection_lost callback failed")
        for channel in list(self._channels.values()):
            channel._suspend(error)
        if self.state is ConnectionState.RECOVERING:
            return  # the recovery loop notices and tries again
        if self.recovery and was_open and not isinstance(error, AuthenticationError):
            logger.warning("%s; recovering", error)
            self.state = ConnectionState.RECOVERING
            self._recovered.clear()
            self._recovery_task = self.loop.create_task(self._recover())
        else:
            self._terminate(error)

    def _terminate(self, reason: BaseException | None) -> None:
        """Closed for good: fail everything still pending."""
        if self.state is ConnectionState.CLOSED:
            return
        self.state = ConnectionState.CLOSED
        self.close_reason = reason
        channel_reason = reason or ConnectionClosed("the application closed the connection")
        for channel in list(self._channels.values()):
            channel._closed(channel_reason)
        self._channels.clear()
        if self._hb_handle is not None:
            self._hb_handle.cancel()
            self._hb_handle = None
        self._abort_transport()
        self._recovered.set()
        self._publishable.set()
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

    # -- recovery --

    async def _recover(self) -> None:
        delay = self.recovery_initial_delay
        attempt = 0
        last_error: BaseException | None = None
        while self.state is ConnectionState.RECOVERING:
            attempt += 1
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, self.recovery_max_delay)
            if not self._recovering():
                return
            try:
                await self._establish()
                await self._restore()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                last_error = exc
                logger.warning("recovery attempt %d failed: %s", attempt, exc)
                for channel in list(self._channels.values()):
                    if channel.state is not ChannelState.CLOSED:
                        channel._suspend(
                            ConnectionLost("connection lost during recovery", exc)
                        )
                self._abort_transport()
                if self.recovery_attempts is not None and attempt >= self.recovery_attempts:
                    self._terminate(
                        ConnectionLost(f"recovery failed after {attempt} attempts", last_error)
                    )
                    return
                continue
            self.state = ConnectionState.OPEN
            self.recoveries += 1
            for channel in self._channels.values():
                if channel.state in (ChannelState.RECOVERING, ChannelState.OPENING):
                    channel.state = ChannelState.OPEN
            self._recovered.set()
            logger.info("connection to %s recovered", self.parameters.display)
            for callback in list(self.on_recovered):
                try:
                    callback()
                except Exception:
                    logger.exception("on_recovered callback failed")
            return

    def _recovering(self) -> bool:
        return self.state is ConnectionState.RECOVERING

    async def _restore(self) -> None:
        channels = sorted(self._channels.values(), key=lambda ch: ch.number)
        for channel in channels:
            if channel.state is ChannelState.RECOVERING:
                await channel._reopen()
        if self._exchanges or self._queues or self._bindings:
            await self._restore_entities()
        for channel in channels:
            if channel.state is ChannelState.RECOVERING:
                with contextlib.suppress(SoftError):  # the broker closed that channel
                    await channel._recover_consumers()

    async def _restore_entities(self) -> None:
        """Declare exchanges, queues and bindings again on a temporary channel; an
        error (say, an exchange declared elsewhere with other arguments) is logged and
        recovery goes on with the next entity."""
        holder: list[Channel] = [await self._recovery_channel()]

        async def attempt(what: str, method: Method, responses: tuple[type[Method], ...]) -> Any:
            for retry in range(5):
                try:
                    return await holder[0]._rpc(method, responses, recovering=True)
                except SoftError as exc:
                    holder[0] = await self._recovery_channel()
                    if isinstance(exc, ResourceLocked) and retry < 4:
                        # an exclusive queue of the dead connection not yet cleaned up
                        await asyncio.sleep(0.2 * (retry + 1))
                        continue
                    logger.warning("could not recover %s: %s", what, exc)
                    return None
            return None

        for record in list(self._exchanges.values()):
            await attempt(
                f"exchange {record.name!r}",
                spec.ExchangeDeclare(
                    record.name, record.type, False, record.durable, record.auto_delete,
                    record.internal, False, record.arguments,
                ),
                (spec.ExchangeDeclareOk,),
            )
        for queue in list(self._queues.values()):
            await self._declare_recorded_queue(queue, attempt)
        for binding in list(self._bindings.values()):
            if binding.kind == "queue":
                method: Method = spec.QueueBind(
                    self.current_name(binding.destination), binding.source,
                    binding.routing_key, False, binding.arguments,
                )
                responses: tuple[type[Method], ...] = (spec.QueueBindOk,)
            else:
                method = spec.ExchangeBind(
                    binding.destination, binding.source, binding.routing_key, False,
                    binding.arguments,
                )
                responses = (spec.ExchangeBindOk,)
            await attempt(f"binding {binding}", method, responses)
        await holder[0].close()

    async def _declare_recorded_queue(
        self, record: _QueueRecord, attempt: Callable[..., Any]
    ) -> None:
        current = self.current_name(record.name)
        ok = await attempt(
            f"queue {record.name!r}",
            spec.QueueDeclare(
                "" if record.server_named else current, False, record.durable,
                record.exclusive, record.auto_delete, False, record.arguments,
            ),
            (spec.QueueDeclareOk,),
        )
        if ok is not None and record.server_named and ok.queue != current:
            self._rename(record.name, ok.queue)

    def _rename(self, name: str, new: str) -> None:
        """A server-named queue known as ``name`` is now called ``new`` by the broker."""
        old = self.current_name(name)
        names = self._names
        for key, value in list(names.items()):
            if value == old:
                names[key] = new
        names[name] = new
        if old != name:
            names[old] = new
        logger.info("server-named queue %r recovered as %r", name, new)

    async def _recovery_channel(self) -> Channel:
        number = self._allocate_channel()
        channel = Channel(self, number)
        self._channels[number] = channel
        await channel._open()
        return channel

    async def _redeclare_queue(self, channel: Channel, queue: str) -> None:
        """Declare a recorded queue, its bindings and their source exchanges again
        (consumer resubscription after the broker's basic.cancel)."""
        record = self._queues.get(queue)
        if record is None:
            return

        async def attempt(
            what: str, method: Method, responses: tuple[type[Method], ...]
        ) -> Any:
            return await channel._rpc(method, responses)

        await self._declare_recorded_queue(record, attempt)
        for binding in list(self._bindings.values()):
            if binding.kind == "queue" and binding.destination == queue:
                exchange = self._exchanges.get(binding.source)
                if exchange is not None:  # an auto-delete exchange may have gone with it
                    await channel._rpc(
                        spec.ExchangeDeclare(
                            exchange.name, exchange.type, False, exchange.durable,
                            exchange.auto_delete, exchange.internal, False, exchange.arguments,
                        ),
                        (spec.ExchangeDeclareOk,),
                    )
                await channel._rpc(
                    spec.QueueBind(
                        self.current_name(queue), binding.source, binding.routing_key, False,
                        binding.arguments,
                    ),
                    (spec.QueueBindOk,),
                )

    def _can_redeclare(self, queue: str) -> bool:
        return queue in self._queues

    # -- topology records --

    def _record_exchange(
        self,
        name: str,
        type: str,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable | None,
    ) -> None:
        if not name or name.startswith("amq."):
            return
        self._exchanges[name] = _ExchangeRecord(
            name, type, durable, auto_delete, internal, dict(arguments) if arguments else None
        )

    def _forget_exchange(self, name: str) -> None:
        self._exchanges.pop(name, None)
        for key, binding in list(self._bindings.items()):
            if binding.source == name or (
                binding.kind == "exchange" and binding.destination == name
            ):
                del self._bindings[key]

    def _record_queue(
        self,
        name: str,
        actual: str,
        server_named: bool,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: FieldTable | None,
    ) -> None:
        if server_named or name in self._queues:
            record = self._queues.get(name)
            server_named = server_named or (record is not None and record.server_named)
        self._queues[name] = _QueueRecord(
            name, server_named, durable, exclusive, auto_delete,
            dict(arguments) if arguments else None,
        )

    def _forget_queue(self, name: str) -> None:
        current = self.current_name(name)
        for name in [k for k, r in self._queues.items() if self.current_name(r.name) == current]:
            del self._queues[name]
        for key, binding in list(self._bindings.items()):
            if binding.kind == "queue" and self.current_name(binding.destination) == current:
                del self._bindings[key]
        for name in [k for k, v in self._names.items() if v == current]:
            del self._names[name]

    def _record_binding(
        self,
        kind: str,
        destination: str,
        source: str,
        routing_key: str,
        arguments: FieldTable | None,
    ) -> None:
        key = _binding_key(kind, destination, source, routing_key, arguments)
        self._bindings[key] = _BindingRecord(
            kind, destination, source, routing_key, dict(arguments) if arguments else None
        )

    def _forget_binding(
        self,
        kind: str,
        destination: str,
        source: str,
        routing_key: str,
        arguments: FieldTable | None,
    ) -> None:
        self._bindings.pop(_binding_key(kind, destination, source, routing_key, arguments), None)
        exchange = self._exchanges.get(source)
        if exchange is not None and exchange.auto_delete and not any(
            b.source == source for b in self._bindings.values()
        ):
            del self._exchanges[source]  # the broker deletes it with its last binding

    def _record_consumer(self, consumer: Consumer) -> None:
        """Consumers are recorded by their channel (``Channel._consumers``)."""

    def _forget_consumer(self, consumer: Consumer, cancelled: bool = False) -> None:
        """A consumer is gone while the connection lives: an auto-delete queue goes with
        its last consumer."""
        if self.state is not ConnectionState.OPEN:
            return
        record = self._queues.get(consumer.queue)
        if record is None or not record.auto_delete:
            return
        current = self.current_name(consumer.queue)
        for channel in self._channels.values():
            for other in channel._consumers.values():
                if other is not consumer and self.current_name(other.queue) == current:
                    return
        self._forget_queue(consumer.queue)

    def _new_consumer_tag(self) -> str:
        return f"kiltmq.{self.id}.{next(self._consumer_tags)}"

    # -- channels --

    def _allocate_channel(self) -> int:
        limit = self._channel_max
        used = self._channels
        protocol_channels = self._proto.channels
        number = self._last_channel
        for _ in range(limit):
            number = number % limit + 1
            if number not in used and number not in protocol_channels:
                self._last_channel = number
                return number
        raise ClientError(f"all {limit} channels are in use")

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
        number = self._allocate_channel()
        channel = Channel(self, number)
        self._channels[number] = channel
        try:
            await channel._open(timeout)
        except BaseException:
            if self._channels.get(number) is channel:
                del self._channels[number]
            channel.state = ChannelState.CLOSED
            raise
        return channel

    def _channel_closed(self, channel: Channel) -> None:
        if self._channels.get(channel.number) is channel:
            del self._channels[channel.number]

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
            self._close_waiter = self.loop.create_future()
            try:
                self._send_method(0, spec.ConnectionClose(reply_code, reply_text, 0, 0))
                self._flush()
                async with asyncio.timeout(timeout if timeout is not None else self.rpc_timeout):
                    await self._close_waiter
            except (TimeoutError, ClientError, AMQPError):
                pass
            if self._transport is not None:
                self._transport.close()
        self._terminate(None)

    def __del__(self) -> None:
        if self.state not in (ConnectionState.CLOSED, ConnectionState.CONNECTING):
            transport = self._transport
            if transport is not None and not self.loop.is_closed():
                transport.abort()


class connect:  # used like a function
    """Open a connection: ``conn = await connect(url)`` or
    ``async with connect(url) as conn``.

    ``url`` defaults to ``$AMQP_URL``, else ``amqp://guest:guest@localhost:5672/``; see
    :mod:`kiltmq.client.url` for its query parameters. Keyword arguments:

    * ``name``: shown by the broker as the connection's name (client property
      ``connection_name``);
    * ``rpc_timeout`` (30 s): default timeout of synchronous methods and confirms;
    * ``blocked_timeout`` (60 s): a publish waiting on connection.blocked raises
      :class:`BlockedTimeout` after this (None: wait as long as it takes);
    * ``recovery`` (True), ``recovery_initial_delay`` (0.1 s), ``recovery_max_delay``
      (10 s), ``recovery_attempts`` (None: keep trying): automatic recovery;
    * ``heartbeat``, ``connection_timeout`` (seconds), ``frame_max``, ``channel_max``:
      override the URL's values;
    * ``client_properties``: extra client properties for connection.start-ok.

    Errors: :class:`ConnectError` (refused, unreachable, TLS), :class:`ConnectTimeout`,
    :class:`AuthenticationError` (bad credentials), the broker's connection error (e.g.
    ``NotAllowed`` for a missing virtual host), :class:`InvalidURL`.
    """

    def __init__(
        self,
        url: str | ConnectionParameters | None = None,
        *,
        name: str | None = None,
        rpc_timeout: float = 30.0,
        blocked_timeout: float | None = 60.0,
        recovery: bool = True,
        recovery_initial_delay: float = 0.1,
        recovery_max_delay: float = 10.0,
        recovery_attempts: int | None = None,
        heartbeat: int | None = None,
        connection_timeout: float | None = None,
        frame_max: int | None = None,
        channel_max: int | None = None,
        client_properties: FieldTable | None = None,
    ) -> None:
        params = url if isinstance(url, ConnectionParameters) else parse_url(url)
        overrides: dict[str, object] = {}
        if heartbeat is not None:
            overrides["heartbeat"] = heartbeat
        if connection_timeout is not None:
            overrides["connection_timeout"] = connection_timeout
        if frame_max is not None:
            overrides["frame_max"] = frame_max
        if channel_max is not None:
            overrides["channel_max"] = channel_max
        if overrides:
            params = params.replace(**overrides)
        self.parameters = params
        self._options: dict[str, Any] = {
            "name": name,
            "rpc_timeout": rpc_timeout,
            "blocked_timeout": blocked_timeout,
            "recovery": recovery,
            "recovery_initial_delay": recovery_initial_delay,
            "recovery_max_delay": recovery_max_delay,
            "recovery_attempts": recovery_attempts,
            "client_properties": client_properties,
        }
        self._connection: Connection | None = None

    async def _open(self) -> Connection:
        connection = Connection(self.parameters, **self._options)
        try:
            await connection._establish()
        except BaseException:
            connection.state = ConnectionState.CLOSED
            if not connection._closed.done():
                connection._closed.set_result(None)
            raise
        connection.state = ConnectionState.OPEN
        self._connection = connection
        return connection

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._open().__await__()

    async def __aenter__(self) -> Connection:
        return await self._open()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._connection is not None:
            await self._connection.close()

