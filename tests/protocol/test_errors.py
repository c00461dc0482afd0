"""AMQP errors: the class for each reply code, soft vs hard, and what they print."""

from __future__ import annotations

import pytest

from kiltmq.protocol import spec
from kiltmq.protocol.errors import (
    AccessRefused,
    AMQPError,
    AMQPNotImplemented,
    AMQPSyntaxError,
    ChannelError,
    CommandInvalid,
    ContentTooLarge,
    FrameError,
    HardError,
    NotAllowed,
    NotFound,
    PreconditionFailed,
    ResourceLocked,
    SoftError,
    UnexpectedFrame,
    error_for,
)


@pytest.mark.parametrize(
    ("code", "cls", "hard"),
    [
        (311, ContentTooLarge, False),
        (403, AccessRefused, False),
        (404, NotFound, False),
        (405, ResourceLocked, False),
        (406, PreconditionFailed, False),
        (501, FrameError, True),
        (502, AMQPSyntaxError, True),
        (503, CommandInvalid, True),
        (504, ChannelError, True),
        (505, UnexpectedFrame, True),
        (530, NotAllowed, True),
        (540, AMQPNotImplemented, True),
    ],
)
def test_error_for_each_reply_code(code: int, cls: type[AMQPError], hard: bool) -> None:
    error = error_for(code, "text", 50, 10)
    assert type(error) is cls
    assert (error.reply_code, error.reply_text, error.class_id, error.method_id) == (
        code,
        "text",
        50,
        10,
    )
    assert error.hard is hard
    assert isinstance(error, HardError if hard else SoftError)
    assert (code in spec.HARD_ERRORS) is hard


def test_scope_overrides_the_spec_classification() -> None:
    # RabbitMQ closes the connection with 403 when authentication fails
    refused = error_for(403, "ACCESS_REFUSED - Login was refused", scope="connection")
    assert isinstance(refused, AccessRefused)
    assert refused.hard
    assert not error_for(403, "", scope="channel").hard
    assert not error_for(504, "", scope="channel").hard


def test_unknown_reply_code() -> None:
    soft = error_for(399, "odd", scope="channel")
    assert type(soft) is SoftError and soft.reply_code == 399 and not soft.hard
    hard = error_for(599, "odd", scope="connection")
    assert type(hard) is HardError and hard.reply_code == 599 and hard.hard
    assert hard.reply_name == "599"
    # without a scope, only the spec's hard-error codes are hard
    assert not error_for(599, "odd").hard


def test_error_text() -> None:
    error = NotFound("NOT_FOUND - no queue 'q' in vhost '/'", 50, 10)
    assert error.reply_name == "NOT_FOUND"
    assert error.method_name == "queue.declare"
    assert str(error) == "404 NOT_FOUND - NOT_FOUND - no queue 'q' in vhost '/' (in queue.declare)"
    assert repr(error) == (
        "NotFound(reply_code=404, reply_text=\"NOT_FOUND - no queue 'q' in vhost '/'\","
        " class_id=50, method_id=10)"
    )
    plain = FrameError("bad frame")
    assert plain.method_name is None
    assert str(plain) == "501 FRAME_ERROR - bad frame"


def test_errors_are_raisable_and_catchable_by_kind() -> None:
    with pytest.raises(SoftError):
        raise error_for(406, "PRECONDITION_FAILED")
    with pytest.raises(AMQPError):
        raise error_for(320, "CONNECTION_FORCED")
