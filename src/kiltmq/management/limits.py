"""Per-vhost limits: ``/api/vhost-limits``, ``/api/vhost-limits/{vhost}`` and
``/api/vhost-limits/{vhost}/{name}`` (PUT ``{"value": N}``, DELETE; administrators)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from kiltmq.broker.vhost_limits import LIMIT_NAMES
from kiltmq.management.context import caller, context
from kiltmq.management.errors import bad_request, object_not_found, vhost_not_found
from kiltmq.management.listing import reply_list
from kiltmq.management.request import body, require

__all__ = ["routes"]

routes = web.RouteTableDef()


def _erlang(value: Any) -> str:
    """A JSON value as RabbitMQ's validation messages print it."""
    if isinstance(value, str):
        return f'<<"{value}">>'
    return json.dumps(value)


def _items(request: web.Request, vhost: str | None) -> list[dict[str, Any]]:
    ctx = context(request)
    visible = caller(request).listed_vhosts(ctx.broker)
    return [
        {"vhost": name, "value": limits}
        for name, limits in ctx.admin.vhost_limits(vhost)
        if name in visible and limits
    ]


@routes.get("/api/vhost-limits")
async def list_limits(request: web.Request) -> web.Response:
    return reply_list(request, _items(request, None), ("vhost",))


@routes.get("/api/vhost-limits/{vhost}")
async def vhost_limits(request: web.Request) -> web.Response:
    vhost = request.match_info["vhost"]
    caller(request).require_vhost_visible(context(request).broker, vhost)
    if vhost not in context(request).broker.vhosts:
        raise object_not_found()
    return reply_list(request, _items(request, vhost), ("vhost",))


@routes.put("/api/vhost-limits/{vhost}/{name}")
async def put_limit(request: web.Request) -> web.Response:
    caller(request).require_admin()
    ctx = context(request)
    vhost, name = request.match_info["vhost"], request.match_info["name"]
    values = await body(request)
    if vhost not in ctx.broker.vhosts:
        raise vhost_not_found()
    require(values, ("value",))
    value = values["value"]
    if name not in LIMIT_NAMES:
        raise bad_request(
            f"Validation failed\n\nUnrecognised terms [{{<<\"{name}\">>,{_erlang(value)}}}] "
            "in limits\n"
        )
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(
            f"Validation failed\n\n{name} should be a number, actually was {_erlang(value)}\n"
        )
    [(_vhost, limits)] = ctx.admin.vhost_limits(vhost)
    ctx.admin.set_vhost_limits(vhost, {**limits, name: value})
    await ctx.admin.committed()
    return web.Response(status=204)


@routes.delete("/api/vhost-limits/{vhost}/{name}")
async def delete_limit(request: web.Request) -> web.Response:
    caller(request).require_admin()
    ctx = context(request)
    vhost, name = request.match_info["vhost"], request.match_info["name"]
    if vhost not in ctx.broker.vhosts:
        raise object_not_found()
    [(_vhost, limits)] = ctx.admin.vhost_limits(vhost)
    limits.pop(name, None)
    ctx.admin.set_vhost_limits(vhost, limits)
    await ctx.admin.committed()
    return web.Response(status=204)
