"""Message properties and field tables as JSON, both ways, as RabbitMQ's management API
writes them: a property list of the set properties only (an empty one is ``[]``), field
table values as plain JSON (an AMQP timestamp, in a header or an ``x-death`` entry, as
whole seconds since the epoch, as RabbitMQ 3.10 writes it)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from kiltmq.management.errors import ApiError, bad_request
from kiltmq.protocol.spec import BasicProperties

__all__ = ["plain", "properties_from_json", "properties_to_json"]

_SHORTSTR = (
    "content_type", "content_encoding", "correlation_id", "reply_to", "expiration",
    "message_id", "type", "user_id", "app_id", "cluster_id",
)
_INTEGERS = ("delivery_mode", "priority", "timestamp")


def plain(value: Any) -> Any:
    """A field-table value as JSON can hold it."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode(errors="replace")
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def properties_from_json(value: Any) -> BasicProperties:
    """``properties`` of a publish request (unknown keys are ignored, as RabbitMQ
    does); 400 for a property of the wrong type."""
    if value is None or value == []:
        return BasicProperties()
    if not isinstance(value, dict):
        raise bad_request("properties must be an object")
    given: dict[str, Any] = {}
    for key, item in value.items():
        if key in _SHORTSTR:
            if not isinstance(item, str):
                raise bad_request(f"property {key} must be a string")
            given[key] = item
        elif key in _INTEGERS:
            if isinstance(item, bool) or not isinstance(item, int):
                raise ApiError(400, "bad_request", ["not_int", key])
            given[key] = item
        elif key == "headers":
            if not isinstance(item, dict):
                raise bad_request("headers must be an object")
            given[key] = item
    return BasicProperties(**given)


def properties_to_json(properties: BasicProperties) -> dict[str, Any] | list[Any]:
    found = {
        name: plain(getattr(properties, name))
        for name in BasicProperties.FIELDS
        if getattr(properties, name) is not None
    }
    return found if found else []
