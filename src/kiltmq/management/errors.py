"""RabbitMQ's error replies: an HTTP status with a JSON body ``{"error": ..., "reason":
...}``, raised as :class:`ApiError` anywhere in a handler and rendered by the
middleware in :mod:`kiltmq.management.app`."""

from __future__ import annotations

from typing import Any

from kiltmq.broker.user_actions import TopicAccessRefused
from kiltmq.protocol.errors import AMQPError

__all__ = [
    "REALM",
    "ApiError",
    "amqp_failure",
    "bad_request",
    "login_failed",
    "not_authorised",
    "not_found",
    "object_not_found",
    "vhost_not_found",
]

#: The ``WWW-Authenticate`` challenge RabbitMQ sends.
REALM = 'Basic realm="RabbitMQ Management"'


class ApiError(Exception):
    """An error reply. ``error`` None: no body (a bare 401 challenge)."""

    def __init__(
        self,
        status: int,
        error: str | None,
        reason: Any = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason
        self.headers = headers or {}


def object_not_found() -> ApiError:
    """A resource that does not exist (a vhost, queue, exchange... in the path)."""
    return ApiError(404, "Object Not Found", "Not Found")


def not_found(reason: str) -> ApiError:
    return ApiError(404, "not_found", reason)


def vhost_not_found() -> ApiError:
    """A declaration in a vhost that does not exist."""
    return not_found("vhost_not_found")


def bad_request(reason: str) -> ApiError:
    return ApiError(400, "bad_request", reason)


def not_authorised(reason: str) -> ApiError:
    """An authenticated user who may not do this (RabbitMQ answers 401 too)."""
    return ApiError(401, "not_authorised", reason)


def login_failed() -> ApiError:
    return ApiError(401, "not_authorized", "Login failed", {"WWW-Authenticate": REALM})


def _explanation(error: AMQPError) -> str:
    text = error.reply_text
    name, sep, rest = text.partition(" - ")
    return rest if sep and name.isupper() else text


def amqp_failure(error: AMQPError, *, with_code: bool = False) -> ApiError:
    """What RabbitMQ answers when an operation done as the user fails as an AMQP method
    would: 404 with the explanation, 401 "Access refused." for 403 and 530 (but for a
    publish's routing key refused by a topic permission, which RabbitMQ learns from the
    channel it publishes on), else 400
    with the explanation (``with_code``: "<code> <reply text>", as for publish and get,
    which RabbitMQ runs on a channel)."""
    code = error.reply_code
    if code == 404 and not with_code:
        return not_found(_explanation(error))
    if code in (403, 530) and not (with_code and isinstance(error, TopicAccessRefused)):
        return not_authorised("Access refused.")
    if with_code:
        if code == 404:
            return not_found(error.reply_text)
        return bad_request(f"{code} {error.reply_text}")
    return bad_request(_explanation(error))
