"""One client connection as the broker sees it: the handshake (start, authentication,
tune, open), the channels, and the dispatch of every received event.

The protocol core (:class:`kiltmq.protocol.Connection`) has already checked framing and
the state machines; what reaches :meth:`Session.handle` is legal at the protocol level.
Handlers raise :class:`~kiltmq.protocol.errors.AMQPError`: a soft one closes its channel
(channel.close with the reply code), a hard one the connection (connection.close), as
RabbitMQ does. Reply texts carry RabbitMQ's "NAME - text" form.

A client that speaks AMQP 0-8 (:mod:`kiltmq.protocol.dialect`) is answered in 0-8: its
connection.start version (with an empty capabilities table, as RabbitMQ's), channel.open-ok
and connection.close. Its methods with the 0-9-1 layout arrive as the 0-9-1 classes, so
it shares exchanges and queues with 0-9-1 clients through the same handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kiltmq.broker.channel import Channel
from kiltmq.broker.channel.ack_timeout import timed_out_text
from kiltmq.broker.handshake import (
    MECHANISMS,
    BadCredentials,
    authenticate,
    check_tune,
    is_loopback,
    server_properties,
)
from kiltmq.broker.queue import Queue
from kiltmq.broker.reply_text import reply_text
from kiltmq.broker.session_owner import SessionBroker, SessionConnection
from kiltmq.broker.tls import ExternalLogin
from kiltmq.protocol import spec
from kiltmq.protocol.connection import (
    ContentReceived,
    ContentRefused,
    Event,
    HeartbeatReceived,
    MethodReceived,
    ProtocolError,
    ProtocolHeaderReceived,
)
from kiltmq.protocol.dialect import AMQP_0_9_1
from kiltmq.protocol.errors import (
    AccessRefused,
    AMQPError,
    AMQPNotImplemented,
    CommandInvalid,
    InternalError,
    NotAllowed,
    PreconditionFailed,
)

if TYPE_CHECKING:
    from kiltmq.broker.auth import Permission, TopicPermission
    from kiltmq.broker.vhost import VirtualHost

__all__ = ["Session", "SessionBroker", "SessionConnection", "server_properties"]

log = logging.getLogger("kiltmq.broker")


def log_failure(peer: str, what: str, exc: BaseException) -> None:
    """One log line for an unexpected exception on a connection; its traceback only at
    debug level, so no peer can fill the log with them."""
    text = str(exc)
    if len(text) > 200:
        text = text[:200] + "..."
    log.error("%s: %s: %s: %s", peer, what, type(exc).__name__, text)
    log.debug("%s: %s", peer, what, exc_info=exc)


#: Events held on a channel waiting for a reply that waits for the store (tx.commit-ok,
#: declare-ok of a durable object) beyond which the connection stops reading until the
#: commit is on disk.
HELD_EVENTS_MAX = 1000


class Session:
    """Handshake, channels and dispatch for one connection."""

    def __init__(self, broker: SessionBroker, conn: SessionConnection, peer: Any) -> None:
        self.broker = broker
        self.conn = conn
        self.core = conn.core
        self.peer = peer
        self.channels: dict[int, Channel] = {}
        self.vhost: VirtualHost = None  # type: ignore[assignment]  # set at connection.open
        self.permission: Permission | None = None
        #: The user's topic permissions in the vhost by exchange (None: none).
        self.topic_permissions: dict[str, TopicPermission] | None = None
        self.username = ""
        self.user_tags: frozenset[str] = frozenset()
        self.client_properties: dict[str, Any] = {}
        #: Set on a TLS connection that offers SASL EXTERNAL (its certificate's user).
        self.external: ExternalLogin | None = None
        self.cancel_notify = False
        self.auth_failure_close = False
        self.blocked_capable = False
        self.opened = False
        self.closing = False
        self.closed = False
        #: An alarm is on (publishing blocks the connection).
        self.blocked_by_alarm = False
        #: The connection is blocked: it published during an alarm, and is not read.
        self.blocked = False
        self._alarm_reason = ""
        self._exclusive: dict[Queue, None] = {}
        #: Flushes of channels with publisher confirms to send when the connection flushes.
        self.confirm_flushes: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"Session({self.peer!r}, user={self.username!r})"

    # -- event dispatch ---------------------------------------------------------------

    def handle(self, events: list[Event]) -> None:
        channels = self.channels
        for event in events:
            kind = type(event)
            if kind is ContentReceived:
                assert isinstance(event, ContentReceived)
                channel = channels.get(event.channel)
                if channel is None or channel.closed:
                    continue
                if channel.held is not None:
                    self._hold(channel, event)
                    continue
                try:
                    channel.publish(event.method, event.raw_properties, event.body)  # type: ignore[arg-type]
                except AMQPError as error:
                    self._error(channel, event.method, error)
            elif kind is MethodReceived:
                assert isinstance(event, MethodReceived)
                number = event.channel
                method = event.method
                if number == 0:
                    try:
                        self._connection_method(method)
                    except AMQPError as error:
                        self._fill_ids(error, method)
                        self.connection_error(
                            error, handshake_reply=isinstance(method, spec.ConnectionOpen)
                        )
                    continue
                channel = channels.get(number)
                if channel is not None and channel.held is not None:
                    self._hold(channel, event)
                    continue
                try:
                    if method.CLASS_ID == 20:
                        self._channel_method(number, channel, method)
                    elif channel is not None and not channel.closed:
                        channel.handle(method)
                except AMQPError as error:
                    self._error(channel, method, error)
            elif kind is HeartbeatReceived:
                continue
            elif kind is ContentRefused:
                assert isinstance(event, ContentRefused)
                channel = channels.get(event.channel)
                if channel is not None and channel.held is not None:
                    self._hold(channel, event)  # after the events held before it
                elif channel is not None:
                    self.channel_error(channel, event.error)  # nothing if already closed
            elif kind is ProtocolError:
                assert isinstance(event, ProtocolError)
                self.connection_error(event.error, core_failed=True)
                return
            elif kind is ProtocolHeaderReceived:
                assert isinstance(event, ProtocolHeaderReceived)
                self._protocol_header(event)
            if self.closed:
                return

    def _hold(self, channel: Channel, event: Event) -> None:
        """Keep ``event`` until ``channel``'s reply waiting for the store has gone out."""
        assert channel.held is not None
        channel.held.append(event)
        if len(channel.held) == HELD_EVENTS_MAX:
            self.conn.pause_reading(f"held:{channel.number}")

    def replay(self, number: int, events: list[Event]) -> None:
        """Handle the events held while channel ``number`` waited for the store (called
        from the store's commit callback, outside ``data_received``)."""
        self.conn.resume_reading(f"held:{number}")
        if not events:
            return
        try:
            self.handle(events)
        except Exception as exc:
            self.internal_error(exc)

    @staticmethod
    def _fill_ids(error: AMQPError, method: spec.Method) -> None:
        # RabbitMQ reports internal errors without the method
        if not error.class_id and not error.method_id and error.reply_code != 541:
            error.class_id = method.CLASS_ID
            error.method_id = method.METHOD_ID

    def _error(self, channel: Channel | None, method: spec.Method, error: AMQPError) -> None:
        self._fill_ids(error, method)
        if error.hard or channel is None:
            self.connection_error(error)
        else:
            self.channel_error(channel, error)

    @property
    def peer_name(self) -> str:
        peer = self.peer
        if isinstance(peer, tuple) and len(peer) >= 2:
            return f"{peer[0]}:{peer[1]}"
        return str(peer)

    # -- channels ---------------------------------------------------------------------

    def _channel_method(self, number: int, channel: Channel | None, method: spec.Method) -> None:
        if isinstance(method, spec.ChannelOpen):
            if self.closing:  # sent right behind a connection.open that was refused
                return
            broker = self.broker
            try:
                user = broker.auth.users.get(self.username)
                broker.user_usage.open_channel(user, self.username)
            except AMQPError as error:  # RabbitMQ names no method here
                self.connection_error(error)
                return
            self.channels[number] = Channel(self, number)
            self.vhost.churn.channel_created += 1
            self.conn.send_method(number, self.core.dialect.channel_open_ok)
        elif isinstance(method, spec.ChannelClose):
            if channel is not None:
                channel.close()
                self._forget_channel(channel)
            self.conn.send_method(number, spec.ChannelCloseOk())
        elif isinstance(method, spec.ChannelCloseOk):
            if channel is not None:
                self._forget_channel(channel)
        elif channel is not None and not channel.closed:
            channel.handle(method)

    def _forget_channel(self, channel: Channel) -> None:
        if self.channels.get(channel.number) is channel:
            del self.channels[channel.number]
            self.broker.user_usage.close_channels(self.username)

    def channel_error(self, channel: Channel, error: AMQPError) -> None:
        """Close ``channel`` with a soft error; the channel stays known until close-ok."""
        if channel.closed:
            return
        log.debug("%s: channel %d error: %s", self.peer_name, channel.number, error)
        channel.close()
        self.conn.send_method(
            channel.number,
            spec.ChannelClose(error.reply_code, reply_text(error), error.class_id, error.method_id),
        )

    def check_ack_timeouts(self, now: float, timeout: float) -> None:
        """Close (406) each channel whose oldest unacked delivery is older than
        ``timeout`` seconds, as RabbitMQ's consumer_timeout does."""
        if self.closing:
            return
        for channel in list(self.channels.values()):
            if not channel.closed and channel.ack_overdue(now, timeout):
                text = timed_out_text(channel.number, round(timeout * 1000))
                log.warning("%s: %s", self.peer_name, text)
                self.channel_error(channel, PreconditionFailed(text))

    def confirms_pending(self, flush: Callable[[], None]) -> None:
        """Call ``flush`` (a channel's) when the connection next flushes its output."""
        self.confirm_flushes.append(flush)
        self.conn.want_flush()

    def flush_confirms(self) -> None:
        flushes = self.confirm_flushes
        self.confirm_flushes = []
        for flush in flushes:
            flush()

    def resume_consumers(self) -> None:
        """The connection can take output again: let its consumers' queues deliver."""
        queues: dict[Queue, None] = {}
        for channel in self.channels.values():
            for consumer in channel.consumers.values():
                queues[consumer.queue] = None
        for queue in queues:
            queue.drain()

    def own_queue(self, queue: Queue) -> None:
        """Remember an exclusive queue of this connection (deleted when it closes)."""
        self._exclusive[queue] = None
        queue.on_delete.append(self._exclusive_deleted)

    def _exclusive_deleted(self, queue: Queue) -> None:
        self._exclusive.pop(queue, None)

    # -- the connection -----------------------------------------------------------------

    def _protocol_header(self, event: ProtocolHeaderReceived) -> None:
        if not event.supported:
            log.info("%s: unsupported protocol header %r", self.peer_name, event.header)
            self.conn.send_unsupported_header()
            return
        dialect = self.core.dialect
        major, minor = dialect.version
        properties = server_properties(
            self.broker.cluster_name, capabilities=dialect is AMQP_0_9_1
        )
        mechanisms = MECHANISMS if self.external is None else MECHANISMS + b" EXTERNAL"
        self.conn.send_method(
            0, spec.ConnectionStart(major, minor, properties, mechanisms, b"en_US")
        )

    def _connection_method(self, method: spec.Method) -> None:
        if isinstance(method, spec.ConnectionStartOk):
            self._start_ok(method)
        elif isinstance(method, spec.ConnectionTuneOk):
            self._tune_ok(method)
        elif isinstance(method, spec.ConnectionOpen):
            self._open(method)
        elif isinstance(method, spec.ConnectionClose):
            self.cleanup()
            self.conn.send_method(0, self.core.dialect.connection_close_ok())
            self.conn.close_after_flush()
        elif isinstance(method, spec.ConnectionCloseOk):
            self.conn.close_after_flush()
        elif isinstance(method, spec.ConnectionUpdateSecret):
            self.conn.send_method(0, spec.ConnectionUpdateSecretOk())
        elif isinstance(method, spec.ConnectionSecureOk):
            raise CommandInvalid("COMMAND_INVALID - unexpected connection.secure-ok")
        # connection.blocked / unblocked from a client carry no meaning for a broker

    def _start_ok(self, m: spec.ConnectionStartOk) -> None:
        props = dict(m.client_properties or {})
        self.client_properties = props
        capabilities = props.get("capabilities")
        if isinstance(capabilities, dict):
            self.cancel_notify = capabilities.get("consumer_cancel_notify") is True
            self.auth_failure_close = capabilities.get("authentication_failure_close") is True
            # 0-8 has no connection.blocked: its ids are 0-8's connection.close
            self.blocked_capable = (
                capabilities.get("connection.blocked") is True
                and self.core.dialect is AMQP_0_9_1
            )
        mechanism = m.mechanism
        auth = self.broker.auth
        try:
            name, user = authenticate(auth, mechanism, m.response, self.external)
        except BadCredentials as error:
            auth.attempts.record("amqp091", False)
            return self._auth_failed(mechanism, str(error))
        if user is None:
            auth.attempts.record("amqp091", False)
            return self._auth_failed(mechanism, f"invalid credentials for user '{name}'")
        if auth.loopback_only(name) and not is_loopback(self.peer):
            auth.attempts.record("amqp091", False)
            return self._auth_failed(mechanism, f"user '{name}' can only connect via localhost")
        auth.attempts.record("amqp091", True)
        self.username = user.name
        self.user_tags = user.tags
        broker = self.broker
        self.conn.send_method(
            0, spec.ConnectionTune(broker.channel_max, broker.frame_max, broker.heartbeat)
        )

    def _auth_failed(self, mechanism: str, reason: str) -> None:
        log.warning("%s: login refused: %s", self.peer_name, reason)
        error = AccessRefused(
            f"ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. "
            "For details see the broker logfile.",
            hard=True,
        )
        if self.auth_failure_close:
            self.connection_error(error, handshake_reply=True)
        else:
            # RabbitMQ closes the socket without a word for clients that did not ask
            self.closing = True
            self.conn.close_after_flush()

    def _tune_ok(self, m: spec.ConnectionTuneOk) -> None:
        broker = self.broker
        check_tune(m, broker.frame_max, broker.channel_max)
        if not m.channel_max:
            self.core.channel_max = broker.channel_max
        self.conn.start_heartbeat(m.heartbeat)

    def _open(self, m: spec.ConnectionOpen) -> None:
        name = m.virtual_host
        vhost = self.broker.vhosts.get(name)
        if vhost is None:
            raise NotAllowed(f"NOT_ALLOWED - vhost {name} not found", 10, 40)
        auth, usage = self.broker.auth, self.broker.user_usage
        # RabbitMQ's order: the vhost's connection limit, the user's, then access
        vhost.check_connection(self.username)
        usage.check_connection(auth.users.get(self.username), self.username)
        permission = auth.permission(self.username, name)
        if permission is None:
            raise NotAllowed(
                f"NOT_ALLOWED - access to vhost '{name}' refused for user '{self.username}'",
                10,
                40,
            )
        vhost.open_connection(self.username)
        usage.open_connection(self.username)
        self.vhost = vhost
        self.permission = permission
        self.topic_permissions = auth.topic_permission(self.username, name)
        self.opened = True
        self.conn.opened()
        self.conn.send_method(0, spec.ConnectionOpenOk())
        log.info("%s: connection open (user %r, vhost %r)", self.peer_name, self.username, name)

    def connection_error(
        self, error: AMQPError, *, core_failed: bool = False, handshake_reply: bool = False
    ) -> None:
        """Close the connection with ``error``'s reply code (connection.close).

        Before connection.open succeeded RabbitMQ answers only a refused login or vhost
        with connection.close; other handshake errors just close the socket
        (``handshake_reply`` says which). So do unknown methods: RabbitMQ's parser drops the
        connection.
        """
        if self.closing:
            return
        self.closing = True
        log.info("%s: closing connection: %s", self.peer_name, error)
        self.cleanup()
        silent = (not self.opened and not handshake_reply) or (
            isinstance(error, AMQPNotImplemented) and error.reply_text.startswith("unknown method")
        )
        if silent:
            self.conn.close_after_flush()
            return
        self.conn.send_method(
            0,
            self.core.dialect.connection_close(
                error.reply_code, reply_text(error), error.class_id, error.method_id
            ),
        )
        self.conn.await_close_ok(core_failed=core_failed)

    def internal_error(self, exc: BaseException) -> None:
        """An unexpected exception while handling this connection: 541, as RabbitMQ.
        Logged in one line (the traceback at debug level)."""
        log_failure(self.peer_name, "internal error", exc)
        if self.closing:
            self.conn.abort()
            return
        self.connection_error(InternalError("INTERNAL_ERROR"))

    def cleanup(self) -> None:
        """Close every channel and delete the connection's exclusive queues (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.confirm_flushes = []  # channels' methods: a cycle through the session
        if self.opened:
            self.vhost.close_connection()
            self.broker.user_usage.close_connection(self.username)
        channels = list(self.channels.values())
        self.channels.clear()
        if channels:
            self.broker.user_usage.close_channels(self.username, len(channels))
        for channel in channels:
            channel.close()
        for queue in list(self._exclusive):
            if not queue.deleted:
                queue.vhost.delete_queue(queue)
        self._exclusive.clear()

    def set_permission(self, permission: Permission | None) -> None:
        """The user's permissions in this connection's vhost changed (``kiltmq ctl``):
        every channel checks the new ones from its next operation on (None: nothing is
        allowed any more)."""
        self.permission = permission
        for channel in self.channels.values():
            channel.set_permission(permission)

    def set_topic_permissions(self, topics: dict[str, TopicPermission] | None) -> None:
        """The user's topic permissions in this connection's vhost changed: every
        channel checks routing keys against them from its next operation on."""
        self.topic_permissions = topics
        for channel in self.channels.values():
            channel.set_topic_permissions(topics)

    # -- resource alarms ----------------------------------------------------------------

    def set_alarm(self, reason: str) -> None:
        """The broker's resource alarms changed (see :mod:`kiltmq.broker.alarm`):
        ``reason`` is connection.blocked's text, "" once no alarm is left. As RabbitMQ,
        a connection is blocked when it publishes while an alarm is on, and unblocked
        once none is."""
        self.blocked_by_alarm = bool(reason)
        self._alarm_reason = reason
        if reason or not self.blocked:
            return
        self.blocked = False
        self.conn.resume_reading("alarm")
        if self.blocked_capable and not self.closing:
            self.conn.send_method(0, spec.ConnectionUnblocked())

    def publishing_while_blocked(self) -> None:
        """A publish arrived while an alarm is on: block the connection (connection.blocked
        to clients that support it, and no more reading)."""
        if self.blocked:
            return
        self.blocked = True
        if self.blocked_capable and not self.closing:
            self.conn.send_method(0, spec.ConnectionBlocked(self._alarm_reason))
        self.conn.pause_reading("alarm")
