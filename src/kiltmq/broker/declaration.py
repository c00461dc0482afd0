"""RabbitMQ's rules for declaring exchanges and queues: a redeclaration must be
equivalent to the first declaration, and queue arguments must be valid.

Errors are :class:`~kiltmq.protocol.errors.PreconditionFailed` with RabbitMQ's reply
text; ``what`` names the object as the vhost describes it ("queue 'q' in vhost '/'").
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from kiltmq.protocol.codec import DeepValue, FieldTable, Timestamp
from kiltmq.protocol.errors import PreconditionFailed

__all__ = [
    "EXCHANGE_EQUIVALENCE_ARGS",
    "QUEUE_EQUIVALENCE_ARGS",
    "check_args",
    "check_flags",
    "check_queue_type",
    "check_type_args",
    "queue_type",
    "refuse_server_named",
    "type_name",
    "validate_exchange_args",
    "validate_queue_args",
]

#: Exchange arguments RabbitMQ compares when an exchange is redeclared.
EXCHANGE_EQUIVALENCE_ARGS = ("alternate-exchange",)
#: Queue arguments RabbitMQ compares when a queue is redeclared.
QUEUE_EQUIVALENCE_ARGS = (
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
)
_OVERFLOW = ("drop-head", "reject-publish", "reject-publish-dlx")
#: The longest TTL or expiry RabbitMQ takes, in milliseconds (ten years): longer ones
#: are ``{value_too_large,N}``.
MAX_EXPIRY = 315360000000
#: Queue types (x-queue-type) and RabbitMQ's module name for each.
QUEUE_TYPES = {
    "classic": "rabbit_classic_queue",
    "quorum": "rabbit_quorum_queue",
    "stream": "rabbit_stream_queue",
}
#: Queue arguments RabbitMQ knows that a queue type refuses.
_UNSUPPORTED_ARGS = {
    "quorum": (
        "x-max-priority",
        "x-queue-mode",
        "x-queue-master-locator",
        "x-max-age",
        "x-stream-max-segment-size-bytes",
        "x-initial-cluster-size",
    ),
    "stream": (
        "x-expires",
        "x-message-ttl",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-dead-letter-strategy",
        "x-max-length",
        "x-max-in-memory-length",
        "x-max-in-memory-bytes",
        "x-max-priority",
        "x-overflow",
        "x-queue-mode",
        "x-queue-master-locator",
        "x-single-active-consumer",
        "x-delivery-limit",
        "x-quorum-initial-group-size",
    ),
}
#: Arguments compared on redeclaration for queues of a type, besides the common ones.
TYPE_EQUIVALENCE_ARGS = {"quorum": ("x-delivery-limit", "x-dead-letter-strategy")}


def _bool(value: bool) -> str:
    return "true" if value else "false"


def check_flags(what: str, *flags: tuple[str, bool, bool]) -> None:
    """A redeclaration must repeat the flags (name, received, current) it was declared
    with: 406 otherwise, in RabbitMQ's words."""
    for arg, received, current in flags:
        if received != current:
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - inequivalent arg '{arg}' for {what}: "
                f"received '{_bool(received)}' but current is '{_bool(current)}'"
            )


def type_name(value: Any) -> str:
    """The AMQP field type of ``value`` as RabbitMQ names it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Timestamp | datetime):
        return "timestamp"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, DeepValue):
        return "table" if value.encoded[:1] == b"F" else "array"
    if isinstance(value, int):
        return "signedint" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "longstr"
    if isinstance(value, bytes):
        return "binary"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    return "void" if value is None else type(value).__name__


def _describe(value: Any) -> str:
    return f"the value '{value}' of type '{type_name(value)}'"


def queue_type(args: FieldTable | None) -> str:
    """The type of a queue declared with ``args`` (validated): classic unless told."""
    value = (args or {}).get("x-queue-type", "classic")
    return value if isinstance(value, str) else "classic"


def refuse_server_named(args: FieldTable | None) -> None:
    """Only classic queues may be server-named (declared with an empty name)."""
    kind = (args or {}).get("x-queue-type")
    if isinstance(kind, str) and kind in QUEUE_TYPES and kind != "classic":
        raise PreconditionFailed(
            f"PRECONDITION_FAILED - Cannot declare a server-named queue for type "
            f"{QUEUE_TYPES[kind]}"
        )


def check_queue_type(
    what: str, args: FieldTable, *, durable: bool, exclusive: bool, auto_delete: bool
) -> str:
    """Check x-queue-type and what the type allows (RabbitMQ 3.10's refusals, in its
    order); returns the type."""
    value = args.get("x-queue-type", "classic")
    if not isinstance(value, str):
        raise PreconditionFailed(
            f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for {what}: "
            f"{{unacceptable_type,{type_name(value)}}}"
        )
    if value not in QUEUE_TYPES:
        raise PreconditionFailed(
            f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for {what}: "
            f"\"unsupported queue type '{value}'\""
        )
    if value == "classic":
        return value
    module = QUEUE_TYPES[value]
    for arg in _UNSUPPORTED_ARGS[value]:
        if arg in args:
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - invalid arg '{arg}' for {what} of queue type {module}"
            )
    for prop, refused in (
        ("auto-delete", auto_delete),
        ("exclusive-owner", exclusive),
        ("non-durable", not durable),
    ):
        if refused:
            raise PreconditionFailed(f"PRECONDITION_FAILED - invalid property '{prop}' for {what}")
    return value


def check_type_args(what: str, received_args: FieldTable | None, current_args: FieldTable) -> None:
    """A redeclaration must name the same queue type (none and 'classic' are the same)
    and repeat the type's own arguments."""
    kind = queue_type(current_args)
    if queue_type(received_args) != kind or kind != "classic":
        check_args(what, ("x-queue-type",), received_args, current_args)
    check_args(what, TYPE_EQUIVALENCE_ARGS.get(kind, ()), received_args, current_args)


def check_args(
    what: str,
    names: tuple[str, ...],
    received_args: FieldTable | None,
    current_args: FieldTable,
) -> None:
    """A redeclaration must repeat the arguments ``names`` it was declared with (same
    value, same type): 406 otherwise."""
    received_args = received_args or {}
    for arg in names:
        received = received_args.get(arg)
        current = current_args.get(arg)
        if received == current and type(received) is type(current):
            continue
        if received is None:
            detail = f"received none but current is {_describe(current)}"
        elif current is None:
            detail = f"received {_describe(received)} but current is none"
        else:
            detail = f"received '{received}' but current is '{current}'"
        raise PreconditionFailed(
            f"PRECONDITION_FAILED - inequivalent arg '{arg}' for {what}: {detail}"
        )


def validate_queue_args(what: str, args: FieldTable) -> None:
    """Check the arguments of a new queue (types, ranges, combinations)."""

    def invalid(arg: str, reason: str) -> PreconditionFailed:
        return PreconditionFailed(
            f"PRECONDITION_FAILED - invalid arg '{arg}' for {what}: {reason}"
        )

    for arg, minimum in (
        ("x-message-ttl", 0),
        ("x-expires", 1),
        ("x-max-length", 0),
        ("x-max-length-bytes", 0),
        ("x-max-priority", 0),
    ):
        if arg not in args:
            continue
        value = args[arg]
        if not isinstance(value, int) or isinstance(value, bool | Timestamp):
            raise invalid(arg, f'"expected integer, got {type_name(value)}"')
        if value < minimum:
            raise invalid(arg, f"{{value_{'zero' if value == 0 else 'negative'},{value}}}")
        if value > MAX_EXPIRY and arg in ("x-message-ttl", "x-expires"):
            raise invalid(arg, f"{{value_too_large,{value}}}")
    for arg in ("x-dead-letter-exchange", "x-dead-letter-routing-key"):
        if arg in args and not isinstance(args[arg], str):
            raise invalid(arg, f'"expected string, got {type_name(args[arg])}"')
    if "x-dead-letter-routing-key" in args and "x-dead-letter-exchange" not in args:
        raise invalid("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined")
    strategy = args.get("x-dead-letter-strategy")
    if strategy is not None and strategy not in ("at-most-once", "at-least-once"):
        raise invalid("x-dead-letter-strategy", "invalid_dlx_strategy")
    age = args.get("x-max-age")
    if age is not None and not isinstance(age, str):
        raise invalid("x-max-age", f"{{unacceptable_type,{type_name(age)}}}")
    overflow = args.get("x-overflow")
    if overflow is not None and overflow not in _OVERFLOW:
        raise invalid("x-overflow", "invalid_overflow")
    priority = args.get("x-max-priority")
    if priority is not None and priority > 255:
        raise invalid("x-max-priority", f"{{max_value_exceeded,{priority}}}")


def validate_exchange_args(what: str, args: FieldTable | None) -> None:
    """Check the arguments of a new exchange."""
    alternate = (args or {}).get("alternate-exchange")
    if alternate is not None and not isinstance(alternate, str):
        raise PreconditionFailed(
            f"PRECONDITION_FAILED - invalid arg 'alternate-exchange' for {what}: "
            "expected a string"
        )
