"""AMQP errors: each carries the reply code to send and whether it closes a channel or the
whole connection.

::

    AMQPError                      reply_code, reply_text, class_id, method_id
    ├── SoftError                  soft-error: closes the channel (channel.close)
    │   ├── ContentTooLarge        311
    │   ├── NoRoute                312 (used by basic.return, not by close)
    │   ├── NoConsumers            313
    │   ├── AccessRefused          403
    │   ├── NotFound               404
    │   ├── ResourceLocked         405
    │   └── PreconditionFailed     406
    └── HardError                  hard-error: closes the connection (connection.close)
        ├── ConnectionForced       320
        ├── InvalidPath            402
        ├── FrameError             501
        ├── SyntaxError            502  (AMQPSyntaxError)
        ├── CommandInvalid         503
        ├── ChannelError           504  (a channel used wrongly)
        ├── UnexpectedFrame        505
        ├── ResourceError          506
        ├── NotAllowed             530
        ├── NotImplemented         540  (AMQPNotImplemented)
        └── InternalError          541

RabbitMQ closes the connection with 403 ACCESS_REFUSED when authentication fails; that
case is raised as ``AccessRefused(..., hard=True)`` via :func:`error_for` with
``scope="connection"``.

``error_for(code, text, class_id, method_id)`` builds the right subclass for a received
channel.close or connection.close, so callers can ``except NotFound``.
"""

from __future__ import annotations

from kiltmq.protocol.spec import HARD_ERRORS, METHODS, ReplyCode


class AMQPError(Exception):
    """An AMQP protocol-level error with the reply code that reports it."""

    reply_code: int = ReplyCode.INTERNAL_ERROR
    #: True when the error closes the whole connection, False for only the channel.
    hard: bool = True

    def __init__(
        self,
        reply_text: str = "",
        class_id: int = 0,
        method_id: int = 0,
        *,
        reply_code: int | None = None,
        hard: bool | None = None,
    ) -> None:
        if reply_code is not None:
            self.reply_code = reply_code
        if hard is not None:
            self.hard = hard
        self.reply_text = reply_text
        self.class_id = class_id
        self.method_id = method_id
        super().__init__(reply_text)

    @property
    def reply_name(self) -> str:
        try:
            return ReplyCode(self.reply_code).name
        except ValueError:
            return str(self.reply_code)

    @property
    def method_name(self) -> str | None:
        """The spec name of the method that caused the error (``"queue.declare"``)."""
        method = METHODS.get((self.class_id << 16) | self.method_id)
        return method.NAME if method is not None else None

    def __str__(self) -> str:
        where = f" (in {self.method_name})" if self.method_name else ""
        return f"{self.reply_code} {self.reply_name} - {self.reply_text}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reply_code={self.reply_code}, reply_text={self.reply_text!r},"
            f" class_id={self.class_id}, method_id={self.method_id})"
        )


class SoftError(AMQPError):
    """A soft error: it closes the channel; the connection goes on."""

    hard = False


class HardError(AMQPError):
    """A hard error: it closes the connection."""

    hard = True


class ContentTooLarge(SoftError):
    reply_code = ReplyCode.CONTENT_TOO_LARGE


class NoRoute(SoftError):
    reply_code = ReplyCode.NO_ROUTE


class NoConsumers(SoftError):
    reply_code = ReplyCode.NO_CONSUMERS


class AccessRefused(SoftError):
    reply_code = ReplyCode.ACCESS_REFUSED


class NotFound(SoftError):
    reply_code = ReplyCode.NOT_FOUND


class ResourceLocked(SoftError):
    reply_code = ReplyCode.RESOURCE_LOCKED


class PreconditionFailed(SoftError):
    reply_code = ReplyCode.PRECONDITION_FAILED


class ConnectionForced(HardError):
    reply_code = ReplyCode.CONNECTION_FORCED


class InvalidPath(HardError):
    reply_code = ReplyCode.INVALID_PATH


class FrameError(HardError):
    reply_code = ReplyCode.FRAME_ERROR


class AMQPSyntaxError(HardError):
    reply_code = ReplyCode.SYNTAX_ERROR


class CommandInvalid(HardError):
    reply_code = ReplyCode.COMMAND_INVALID


class ChannelError(HardError):
    """504 CHANNEL_ERROR: a channel used wrongly (not open, already open, bad number)."""

    reply_code = ReplyCode.CHANNEL_ERROR


class UnexpectedFrame(HardError):
    reply_code = ReplyCode.UNEXPECTED_FRAME


class ResourceError(HardError):
    reply_code = ReplyCode.RESOURCE_ERROR


class NotAllowed(HardError):
    reply_code = ReplyCode.NOT_ALLOWED


class AMQPNotImplemented(HardError):
    reply_code = ReplyCode.NOT_IMPLEMENTED


class InternalError(HardError):
    reply_code = ReplyCode.INTERNAL_ERROR


_BY_CODE: dict[int, type[AMQPError]] = {
    cls.reply_code: cls
    for cls in (
        ContentTooLarge,
        NoRoute,
        NoConsumers,
        AccessRefused,
        NotFound,
        ResourceLocked,
        PreconditionFailed,
        ConnectionForced,
        InvalidPath,
        FrameError,
        AMQPSyntaxError,
        CommandInvalid,
        ChannelError,
        UnexpectedFrame,
        ResourceError,
        NotAllowed,
        AMQPNotImplemented,
        InternalError,
    )
}


def error_for(
    reply_code: int,
    reply_text: str = "",
    class_id: int = 0,
    method_id: int = 0,
    *,
    scope: str | None = None,
) -> AMQPError:
    """The error for a reply code, as received in channel.close or connection.close.

    ``scope`` ("channel" or "connection") says which close carried it; by default the
    spec's classification of the code decides.
    """
    cls = _BY_CODE.get(reply_code)
    hard = reply_code in HARD_ERRORS if scope is None else scope == "connection"
    if cls is None:
        cls = HardError if hard else SoftError
        return cls(reply_text, class_id, method_id, reply_code=reply_code)
    error = cls(reply_text, class_id, method_id)
    if error.hard != hard:
        error.hard = hard
    return error


class LocalProtocolError(Exception):
    """Our own side tried to do something the protocol does not allow (a bug in the
    caller, not in the peer): for example sending on a channel that is not open."""
