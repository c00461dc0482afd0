"""Reading a request as RabbitMQ does: the JSON body (empty, ``null`` and ``undefined``
mean ``{}``), required keys, and boolean and integer values given as JSON or as text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from kiltmq.management.errors import ApiError, bad_request

__all__ = ["body", "disable_stats", "flag", "integer", "require", "text"]


def disable_stats(request: web.Request) -> bool:
    """Whether the query asks to leave statistics out (``?disable_stats=true``)."""
    return request.query.get("disable_stats") == "true"


async def body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; 400 ``not_json`` if it is not JSON."""
    raw = (await request.read()).strip()
    if raw in (b"", b"null", b"undefined"):
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("not_json") from None
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        raise bad_request(
            "invalid payload: the request body JSON-decoded to a string. "
            "Is the input doubly-JSON-encoded?"
        )
    if value is None or isinstance(value, bool):
        return {}
    raise bad_request("not_json")


def require(values: dict[str, Any], keys: Sequence[str]) -> None:
    """400 naming the missing keys as RabbitMQ does: ``[{key_missing,ackmode}]``."""
    missing = [k for k in keys if values.get(k) is None]
    if missing:
        raise bad_request("[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]")


def flag(values: dict[str, Any], key: str, default: bool) -> bool:
    """A boolean given as JSON or as "true"/"false"."""
    value = values.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ApiError(400, "bad_request", ["not_boolean", value])


def integer(values: dict[str, Any], key: str, default: int) -> int:
    """An integer given as JSON or as text; RabbitMQ's ``["not_integer", value]``."""
    value = values.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise ApiError(400, "bad_request", ["not_integer", value])


def text(values: dict[str, Any], key: str, default: str = "") -> str:
    value = values.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_request(f"{key} must be a string")
    return value
