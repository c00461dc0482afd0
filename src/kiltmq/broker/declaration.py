"""RabbitMQ's rules for declaring exchanges and queues: a redeclaration must be
equivalent to the first declaration, and queue arguments must be valid.

Errors are :class:`~kiltmq.protocol.errors.PreconditionFailed` with RabbitMQ's reply
text; ``what`` names the object as the vhost describes it ("queue 'q' in vhost '/'").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from kiltmq.protocol.codec import DeepValue, FieldTable, Timestamp
from kiltmq.protocol.errors import InternalError, PreconditionFailed

__all__ = [
    "EXCHANGE_EQUIVALENCE_ARGS",
    "QUEUE_EQUIVALENCE_ARGS",
    "check_args",
    "check_dead_letter_exchange",
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
#: The queue arguments each queue type takes (RabbitMQ 3.10's ``capabilities()``); the
#: other arguments some type takes are refused, arguments no type takes are ignored.
QUEUE_ARGUMENTS = {
    "classic": (
        "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
        "x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow",
        "x-queue-mode", "x-queue-version", "x-single-active-consumer", "x-queue-type",
        "x-queue-master-locator",
    ),
    "quorum": (
        "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy",
        "x-expires", "x-max-length", "x-max-length-bytes", "x-max-in-memory-length",
        "x-max-in-memory-bytes", "x-overflow", "x-single-active-consumer", "x-queue-type",
        "x-quorum-initial-group-size", "x-delivery-limit", "x-message-ttl",
        "x-queue-leader-locator",
    ),
    "stream": (
        "x-max-length-bytes", "x-queue-type", "x-max-age", "x-stream-max-segment-size-bytes",
        "x-initial-cluster-size", "x-queue-leader-locator",
    ),
}
_KNOWN_ARGUMENTS = frozenset(arg for args in QUEUE_ARGUMENTS.values() for arg in args)
#: The policy keys each queue type does not support: a policy with any of them does not
#: apply to a queue of that type at all (RabbitMQ 3.10's ``unsupported_policies``).
UNSUPPORTED_POLICIES = {
    "classic": frozenset((
        "max-age", "stream-max-segment-size-bytes", "queue-leader-locator",
        "initial-cluster-size", "delivery-limit", "dead-letter-strategy",
    )),
    "quorum": frozenset((
        "max-priority", "queue-mode", "single-active-consumer", "ha-mode", "ha-params",
        "ha-sync-mode", "ha-promote-on-shutdown", "ha-promote-on-failure",
        "queue-master-locator", "max-age", "stream-max-segment-size-bytes",
        "initial-cluster-size",
    )),
    "stream": frozenset((
        "expires", "message-ttl", "dead-letter-exchange", "dead-letter-routing-key",
        "max-length", "max-in-memory-length", "max-in-memory-bytes", "max-priority",
        "overflow", "queue-mode", "single-active-consumer", "delivery-limit", "ha-mode",
        "ha-params", "ha-sync-mode", "ha-promote-on-shutdown", "ha-promote-on-failure",
        "queue-master-locator", "dead-letter-strategy",
    )),
}
#: The largest x-stream-max-segment-size-bytes RabbitMQ takes (3 GB).
MAX_SEGMENT_BYTES = 3_000_000_000
_LEADER_LOCATORS = ("client-local", "balanced", "random", "least-leaders")
_DLX_STRATEGIES = ("at-most-once", "at-least-once")
_QUEUE_MODES = ("default", "lazy")
_AGE_UNITS = ("Y", "M", "D", "h", "m", "s")
_AGE = re.compile(r"([0-9]*)(.*)", re.DOTALL)
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
    """Check a new queue's arguments and properties as RabbitMQ 3.10 does, in its order:
    x-queue-type; the type's own arguments (types and values); the arguments the type
    does not take (in the order they came); then what the type refuses of the queue's
    properties. Returns the type."""
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
    validate_queue_args(what, args, value)
    module = QUEUE_TYPES[value]
    taken = QUEUE_ARGUMENTS[value]
    for arg in args:
        if arg in _KNOWN_ARGUMENTS and arg not in taken:
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - invalid arg '{arg}' for {what} of queue type {module}"
            )
    if value == "classic":
        return value
    for prop, refused in (
        ("auto-delete", auto_delete),
        ("exclusive-owner", exclusive),
        ("non-durable", not durable),
    ):
        if refused:
            raise PreconditionFailed(f"PRECONDITION_FAILED - invalid property '{prop}' for {what}")
    segment = args.get("x-stream-max-segment-size-bytes")
    if value == "stream" and isinstance(segment, int) and segment > MAX_SEGMENT_BYTES:
        raise PreconditionFailed(
            "PRECONDITION_FAILED - Exceeded max value for x-stream-max-segment-size-bytes"
        )
    return value


def check_dead_letter_exchange(what: str, args: FieldTable | None) -> None:
    """x-dead-letter-exchange must be a string, whatever the queue type (RabbitMQ checks
    it before the other arguments)."""
    dlx = (args or {}).get("x-dead-letter-exchange")
    if dlx is not None and not isinstance(dlx, str):
        raise PreconditionFailed(
            f"PRECONDITION_FAILED - invalid type '{type_name(dlx)}' for arg "
            f"'x-dead-letter-exchange' in {what}"
        )


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


#: Why a queue argument's value is refused (RabbitMQ's term for it), or None.
_Check = Callable[[Any, FieldTable], "str | None"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool | Timestamp)


def _int(value: Any, args: FieldTable) -> str | None:
    return None if _is_int(value) else f'"expected integer, got {type_name(value)}"'


def _non_negative(value: Any, args: FieldTable) -> str | None:
    refused = _int(value, args)
    if refused is None and value < 0:
        return f"{{value_negative,{value}}}"
    return refused


def _expiry(value: int) -> str | None:
    if value < 0:
        return f"{{value_negative,{value}}}"
    return f"{{value_too_large,{value}}}" if value > MAX_EXPIRY else None


def _expires(value: Any, args: FieldTable) -> str | None:
    refused = _int(value, args)
    if refused is None and value == 0:
        return "{value_zero,0}"
    return refused or _expiry(value)


def _message_ttl(value: Any, args: FieldTable) -> str | None:
    return _int(value, args) or _expiry(value)


def _positive(value: Any, args: FieldTable) -> str | None:
    refused = _non_negative(value, args)
    return "{value_zero,0}" if refused is None and value == 0 else refused


def _max_priority(value: Any, args: FieldTable) -> str | None:
    refused = _non_negative(value, args)
    if refused is None and value > 255:
        return f"{{max_value_exceeded,{value}}}"
    return refused


def _one_of(choices: tuple[str, ...], otherwise: str) -> _Check:
    def check(value: Any, args: FieldTable) -> str | None:
        if not isinstance(value, str):
            return f"{{unacceptable_type,{type_name(value)}}}"
        return None if value in choices else otherwise

    return check


def _string(value: Any, args: FieldTable) -> str | None:
    return None if isinstance(value, str) else f"{{unacceptable_type,{type_name(value)}}}"


def _dlx_routing_key(value: Any, args: FieldTable) -> str | None:
    refused = _string(value, args)
    if refused is None and "x-dead-letter-exchange" not in args:
        return "routing_key_but_no_dlx_defined"
    return refused


def _queue_mode(value: Any, args: FieldTable) -> str | None:
    refused = _string(value, args)
    if refused is None and value not in _QUEUE_MODES:
        return f"\"unsupported queue mode '{value}'\""
    return refused


def _queue_version(value: Any, args: FieldTable) -> str | None:
    refused = _non_negative(value, args)
    if refused is None and value not in (1, 2):
        return f"\"unsupported queue version '{value}'\""
    return refused


def _boolean(value: Any, args: FieldTable) -> str | None:
    return None if isinstance(value, bool) else f"{{unacceptable_type,{type_name(value)}}}"


def _max_age(value: Any, args: FieldTable) -> str | None:
    refused = _string(value, args)
    if refused is not None:
        return refused
    match = _AGE.match(value)
    assert match is not None  # the pattern matches every string
    digits, unit = match.groups()
    if not digits:
        # RabbitMQ's check crashes on an age without digits: the connection closes
        raise InternalError("INTERNAL_ERROR")
    return None if int(digits) > 0 and unit in _AGE_UNITS else "invalid_max_age"


#: RabbitMQ's checks of queue arguments, in the order it makes them.
_ARGUMENT_CHECKS: tuple[tuple[str, _Check], ...] = (
    ("x-expires", _expires),
    ("x-message-ttl", _message_ttl),
    ("x-dead-letter-exchange", _string),
    ("x-dead-letter-routing-key", _dlx_routing_key),
    ("x-dead-letter-strategy", _one_of(_DLX_STRATEGIES, "invalid_dlx_strategy")),
    ("x-max-length", _non_negative),
    ("x-max-length-bytes", _non_negative),
    ("x-max-in-memory-length", _non_negative),
    ("x-max-in-memory-bytes", _non_negative),
    ("x-max-priority", _max_priority),
    ("x-overflow", _one_of(_OVERFLOW, "invalid_overflow")),
    ("x-queue-mode", _queue_mode),
    ("x-queue-version", _queue_version),
    ("x-single-active-consumer", _boolean),
    ("x-quorum-initial-group-size", _positive),
    ("x-max-age", _max_age),
    ("x-stream-max-segment-size-bytes", _non_negative),
    ("x-initial-cluster-size", _positive),
    ("x-queue-leader-locator", _one_of(_LEADER_LOCATORS, "invalid_queue_locator_arg")),
)


def validate_queue_args(what: str, args: FieldTable, kind: str = "classic") -> None:
    """Check the values of the arguments a new queue of type ``kind`` takes (types,
    ranges, combinations); the arguments it does not take are not looked at here."""
    taken = QUEUE_ARGUMENTS[kind]
    for arg, check in _ARGUMENT_CHECKS:
        if arg in args and arg in taken:
            reason = check(args[arg], args)
            if reason is not None:
                raise PreconditionFailed(
                    f"PRECONDITION_FAILED - invalid arg '{arg}' for {what}: {reason}"
                )


def validate_exchange_args(what: str, args: FieldTable | None) -> None:
    """Check the arguments of a new exchange."""
    alternate = (args or {}).get("alternate-exchange")
    if alternate is not None and not isinstance(alternate, str):
        raise PreconditionFailed(
            f"PRECONDITION_FAILED - invalid arg 'alternate-exchange' for {what}: "
            "expected a string"
        )
