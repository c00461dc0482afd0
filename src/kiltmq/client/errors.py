"""Errors raised by the client.

Reply codes reuse :mod:`kiltmq.protocol.errors`: a channel.close from the broker raises
the matching :class:`~kiltmq.protocol.errors.SoftError` subclass (``NotFound``,
``PreconditionFailed``, ...) on the call that was waiting, and a connection.close raises
the matching :class:`~kiltmq.protocol.errors.HardError` subclass on every pending call.
The client's own errors::

    ClientError
    ├── ConnectError             the connection could not be opened (refused, TLS, DNS)
    │   ├── ConnectTimeout       ... within connection_timeout (also a TimeoutError)
    │   └── AuthenticationError  bad credentials (also an AccessRefused, reply code 403)
    ├── ConnectionClosed         the connection is closed; ``reason`` says why
    │   └── ConnectionLost       it closed without the application asking (socket drop,
    │                            missed heartbeats, closed by the server); pending calls
    │                            and unconfirmed publishes fail with it
    ├── ChannelClosed            the channel is closed; ``reason`` says why
    ├── PublishError             the broker did not take a published message
    │   ├── PublishNacked        it answered basic.nack
    │   └── Unroutable           a mandatory message was returned (``message``)
    └── BlockedTimeout           publishing waited longer than blocked_timeout while the
                                 broker had blocked the connection (also a TimeoutError)

RPCs that get no answer within their timeout raise the built-in :class:`TimeoutError`.

When the server closes the connection with a reply code, pending calls get an exception
that is both the reply code's class and :class:`ConnectionLost` (for example
``isinstance(exc, ConnectionForced) and isinstance(exc, ConnectionLost)``), so both
``except ConnectionForced`` and ``except ConnectionLost`` work.
"""

from __future__ import annotations

from typing import Any, Protocol

from kiltmq.protocol.errors import AccessRefused, AMQPError
from kiltmq.protocol.spec import BasicProperties

__all__ = [
    "AuthenticationError",
    "BlockedTimeout",
    "ChannelClosed",
    "ClientError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionLost",
    "PublishError",
    "PublishNacked",
    "Unroutable",
    "connection_lost",
    "lost_error",
]


class ReturnedMessage(Protocol):
    """The returned message an :class:`Unroutable` carries (a
    :class:`~kiltmq.client.message.Message`)."""

    @property
    def body(self) -> bytes: ...

    @property
    def properties(self) -> BasicProperties: ...

    @property
    def exchange(self) -> str: ...

    @property
    def routing_key(self) -> str: ...


class ClientError(Exception):
    """Base of the client's own errors."""


class ConnectError(ClientError):
    """The connection could not be opened."""


class ConnectTimeout(ConnectError, TimeoutError):
    """The connection was not open within ``connection_timeout``."""


class AuthenticationError(AccessRefused, ConnectError):
    """The broker refused the credentials (connection.close 403 ACCESS_REFUSED)."""

    hard = True


class ConnectionClosed(ClientError):
    """The connection is closed. ``reason``: the error that closed it, if any."""

    def __init__(self, message: str = "connection closed", reason: BaseException | None = None):
        super().__init__(message)
        self.reason = reason


class ConnectionLost(ConnectionClosed):
    """The connection closed without the application asking for it."""

    def __init__(self, message: str = "connection lost", reason: BaseException | None = None):
        super().__init__(message, reason)


class ChannelClosed(ClientError):
    """The channel is closed (by us, by a channel error, or with its connection).

    ``reason``: the error that closed it (a SoftError such as NotFound, or the
    connection's error), or None when the application closed it.
    """

    def __init__(self, message: str = "channel closed", reason: BaseException | None = None):
        super().__init__(message)
        self.reason = reason


class PublishError(ClientError):
    """The broker did not accept a published message."""


class PublishNacked(PublishError):
    """The broker answered the publish with basic.nack (publisher confirms)."""

    def __init__(self, delivery_tag: int) -> None:
        super().__init__(f"the broker nacked the message (publish sequence {delivery_tag})")
        self.delivery_tag = delivery_tag


class Unroutable(PublishError):
    """A mandatory message was returned with basic.return (NO_ROUTE): no queue took it.

    ``message`` is the returned message; ``reply_code``/``reply_text`` come from the return.
    """

    def __init__(self, message: ReturnedMessage, reply_code: int, reply_text: str) -> None:
        super().__init__(
            f"message returned: {reply_code} {reply_text} "
            f"(exchange {message.exchange!r}, routing key {message.routing_key!r})"
        )
        self.message = message
        self.reply_code = reply_code
        self.reply_text = reply_text


class BlockedTimeout(ClientError, TimeoutError):
    """Publishing waited longer than ``blocked_timeout`` for the broker to unblock."""


_LOST_CLASSES: dict[type[AMQPError], type[Any]] = {}


def connection_lost(error: AMQPError) -> AMQPError:
    """``error`` (a connection.close reply code) as an instance of both its own class and
    :class:`ConnectionLost`, for the calls that were pending when it closed the connection.
    """
    if isinstance(error, ConnectionLost):
        return error
    base = type(error)
    cls = _LOST_CLASSES.get(base)
    if cls is None:
        cls = type(base.__name__, (base, ConnectionLost), {"__module__": base.__module__})
        _LOST_CLASSES[base] = cls
    lost: AMQPError = cls(
        error.reply_text,
        error.class_id,
        error.method_id,
        reply_code=error.reply_code,
        hard=error.hard,
    )
    lost.reason = error  # type: ignore[attr-defined]
    return lost


def lost_error(reason: BaseException | None, display: str, exc: Exception | None) -> BaseException:
    """What pending calls raise when the connection to ``display`` dropped: ``reason``
    (the broker's connection.close, a protocol error, missed heartbeats) as a
    :class:`ConnectionLost`, else the socket's error ``exc``."""
    if isinstance(reason, AMQPError):
        return connection_lost(reason)
    if isinstance(reason, ConnectionLost):
        return reason
    return ConnectionLost(f"connection to {display} lost" + (f": {exc}" if exc else ""), exc)

