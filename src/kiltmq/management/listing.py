"""List replies as RabbitMQ makes them: ``sort`` (dotted paths, after which the default
sort applies), ``sort_reverse``, ``columns`` (comma-separated dotted paths kept, the rest
dropped), and pagination (``page``, ``page_size`` up to 500, ``name`` filtered as a
case-insensitive substring or, with ``use_regex=true``, a regular expression), which
wraps the items in RabbitMQ's envelope."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from kiltmq.management.errors import ApiError, bad_request

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "json_reply", "reply_item", "reply_list"]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500

Item = dict[str, Any]


def json_reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-cache"},
    )


def _columns(request: web.Request) -> list[list[str]] | None:
    raw = request.query.get("columns")
    if raw is None:
        return None
    return [[p for p in c.split(".") if p] for c in raw.split(",") if c]


def _extract(value: Any, columns: list[list[str]] | None) -> Any:
    if columns is None:
        return value
    if isinstance(value, list):
        return [_extract(v, columns) for v in value]
    if not isinstance(value, dict):
        return value
    kept: Item = {}
    for key, sub in value.items():
        below: list[list[str]] | None = []
        for path in columns:
            if not path or path[0] != key:
                continue
            if len(path) == 1:
                below = None
                break
            assert below is not None
            below.append(path[1:])
        if below is None:
            kept[key] = sub
        elif below:
            kept[key] = _extract(sub, below)
    return kept


def _dotted(item: Mapping[str, Any], path: str) -> Any:
    value: Any = item
    keys = [k for k in path.split(".") if k]
    for i, key in enumerate(keys):
        if not isinstance(value, Mapping):
            return 0 if i == len(keys) - 1 else []
        value = value.get(key, 0 if i == len(keys) - 1 else [])
    return value


def _order(value: Any) -> tuple[int, Any]:
    """Erlang's term order, which RabbitMQ sorts by: numbers, atoms (true, false,
    null), maps, lists, then strings."""
    if isinstance(value, bool) or value is None:
        return (1, str(value).lower())
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, dict):
        return (2, json.dumps(value, sort_keys=True))
    if isinstance(value, list):
        return (3, json.dumps(value, sort_keys=True))
    return (4, str(value).encode())


def _sorted(items: list[Item], request: web.Request, default: Sequence[str]) -> list[Item]:
    sort = request.query.get("sort")
    if sort == "":
        return items
    keys = ([sort] if sort is not None else []) + list(default)
    result = sorted(items, key=lambda item: [_order(_dotted(item, k)) for k in keys])
    if request.query.get("sort_reverse") == "true":
        result.reverse()
    return result


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request("Pagination parameters are invalid") from None


def _pagination(request: web.Request) -> tuple[int, int] | None:
    page = _int_param(request, "page")
    size = _int_param(request, "page_size")
    if page is None:
        return None
    if page > 0 and size is None:
        return page, DEFAULT_PAGE_SIZE
    if page > 0 and size is not None and 0 < size <= MAX_PAGE_SIZE:
        return page, size
    shown = "undefined" if size is None else str(size)
    raise ApiError(
        400,
        "invalid_pagination_parameters",
        f"Invalid pagination parameters: page number {page}, page size {shown}",
    )


def _name_filter(items: list[Item], request: web.Request) -> list[Item]:
    name = request.query.get("name")
    if not name:
        return items
    if request.query.get("use_regex") == "true":
        try:
            pattern = re.compile(name, re.IGNORECASE)
        except re.error:
            raise bad_request("Pagination parameters are invalid") from None
        return [i for i in items if pattern.search(str(i.get("name", "")))]
    needle = name.lower()
    return [i for i in items if needle in str(i.get("name", "")).lower()]


def reply_list(
    request: web.Request, items: list[Item], default_sort: Sequence[str] = ("vhost", "name")
) -> web.Response:
    """Sort, filter, page and cut ``items`` as the request's query asks."""
    pagination = _pagination(request)
    columns = _columns(request)
    ordered = _sorted(items, request, default_sort)
    if pagination is None:
        return json_reply(_extract(ordered, columns))
    page, size = pagination
    filtered = _name_filter(ordered, request)
    start = (page - 1) * size
    if start > len(filtered):
        raise ApiError(
            400,
            "page_out_of_range",
            f"Page out of range, page: {page} page size: {size}, len: {len(filtered)}",
        )
    chosen = filtered[start : start + size]
    return json_reply(
        {
            "filtered_count": len(filtered),
            "item_count": len(chosen),
            "items": _extract(chosen, columns),
            "page": page,
            "page_count": math.ceil(len(filtered) / size),
            "page_size": size,
            "total_count": len(ordered),
        }
    )


def reply_item(request: web.Request, item: Item) -> web.Response:
    """One object, cut to the requested ``columns``."""
    return json_reply(_extract(item, _columns(request)))
