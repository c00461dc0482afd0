"""List replies as RabbitMQ makes them: ``sort`` (dotted paths, after which the default
sort applies), ``sort_reverse``, ``columns`` (comma-separated dotted paths kept, the rest
dropped), and pagination (``page``, ``page_size`` up to 500, ``name`` filtered as a
case-insensitive substring or, with ``use_regex=true``, a regular expression), which
wraps the items in RabbitMQ's envelope."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web

from kiltmq.management.errors import ApiError, bad_request

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "Build",
    "Item",
    "json_reply",
    "reply_item",
    "reply_list",
    "reply_rows",
    "wanted",
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500

Item = dict[str, Any]
Row = TypeVar("Row")
#: Makes the items of rows; given top-level keys, it may leave the others out.
Build = Callable[[Sequence[Row], frozenset[str] | None], list[Item]]


def wanted(keys: frozenset[str] | None, *names: str) -> bool:
    """Whether an item built for ``keys`` (None: all) needs any of ``names``."""
    return keys is None or not keys.isdisjoint(names)


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
    if type(value) is str:  # code point order is UTF-8's byte order
        return (4, value)
    if isinstance(value, bool) or value is None:
        return (1, str(value).lower())
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, dict):
        return (2, json.dumps(value, sort_keys=True))
    if isinstance(value, list):
        return (3, json.dumps(value, sort_keys=True))
    return (4, str(value))


def _sort_key(path: str) -> Callable[[Item], tuple[int, Any]]:
    parts = [p for p in path.split(".") if p]
    if len(parts) == 1:
        key = parts[0]
        return lambda item: _order(item.get(key, 0))
    return lambda item: _order(_dotted(item, path))


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


def _name_filter(request: web.Request) -> Callable[[str], bool] | None:
    name = request.query.get("name")
    if not name:
        return None
    if request.query.get("use_regex") == "true":
        try:
            pattern = re.compile(name, re.IGNORECASE)
        except re.error:
            raise bad_request("Pagination parameters are invalid") from None
        return lambda text: pattern.search(text) is not None
    needle = name.lower()
    return lambda text: needle in text.lower()


def _top(paths: Iterable[str]) -> frozenset[str] | None:
    """The top-level keys the dotted ``paths`` start with (None: the whole item)."""
    tops = set()
    for path in paths:
        parts = [p for p in path.split(".") if p]
        if not parts:
            return None
        tops.add(parts[0])
    return frozenset(tops)


def reply_list(
    request: web.Request, items: list[Item], default_sort: Sequence[str] = ("vhost", "name")
) -> web.Response:
    """Sort, filter, page and cut ``items`` as the request's query asks."""
    return reply_rows(request, items, lambda rows, _wanted: list(rows), default_sort)


def reply_rows(
    request: web.Request,
    rows: Sequence[Row],
    build: Build[Row],
    default_sort: Sequence[str] = ("vhost", "name"),
) -> web.Response:
    """Sort, filter, page and cut the items that ``build`` makes of ``rows``, as the
    request's query asks, building the whole items of the rows shown only.

    ``build(rows, wanted)`` makes one item per row; with ``wanted`` (top-level keys) it
    may leave out the other keys, so filtering and sorting cost only the columns they
    read."""
    pagination = _pagination(request)
    columns = _columns(request)
    sort = request.query.get("sort")
    keys = [] if sort == "" else ([sort] if sort is not None else []) + list(default_sort)
    reverse = sort != "" and request.query.get("sort_reverse") == "true"
    matches = _name_filter(request) if pagination is not None else None
    chosen: Sequence[Row] = rows
    if keys or matches is not None:
        needed = _top([*keys, *(["name"] if matches is not None else [])])
        pairs = list(zip(build(rows, needed), rows, strict=True))
        if keys:
            order = [_sort_key(k) for k in keys]
            pairs.sort(key=lambda pair: [f(pair[0]) for f in order])
        if reverse:
            pairs.reverse()
        if matches is not None:
            pairs = [p for p in pairs if matches(str(p[0].get("name", "")))]
        chosen = [row for _item, row in pairs]
    elif reverse:
        chosen = list(reversed(rows))
    wanted = None if columns is None else _top(".".join(c) for c in columns)
    if pagination is None:
        return json_reply(_extract(build(chosen, wanted), columns))
    page, size = pagination
    start = (page - 1) * size
    if start > len(chosen):
        raise ApiError(
            400,
            "page_out_of_range",
            f"Page out of range, page: {page} page size: {size}, len: {len(chosen)}",
        )
    shown = chosen[start : start + size]
    return json_reply(
        {
            "filtered_count": len(chosen),
            "item_count": len(shown),
            "items": _extract(build(shown, wanted), columns),
            "page": page,
            "page_count": math.ceil(len(chosen) / size),
            "page_size": size,
            "total_count": len(rows),
        }
    )


def reply_item(request: web.Request, item: Item) -> web.Response:
    """One object, cut to the requested ``columns``."""
    return json_reply(_extract(item, _columns(request)))
