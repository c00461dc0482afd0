"""Policies and definitions for the web UI, under ``/ui/api/``, with the JSON and the
rules of RabbitMQ's ``/api/policies`` and ``/api/definitions``: the broker's admin
functions called as the API layer calls them. The pages name these paths in one place
(``KILT.adminApi`` in ``core.js``) so they can move to ``/api`` unchanged."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from kiltmq.broker.admin import NotFound
from kiltmq.management.context import caller, context, vhost_param
from kiltmq.management.errors import ApiError, bad_request, not_authorised, object_not_found
from kiltmq.management.listing import json_reply, reply_list
from kiltmq.management.request import body

__all__ = ["UI_API_PREFIX", "routes"]

UI_API_PREFIX = "/ui/api/"

routes = web.RouteTableDef()


def _require_policymaker(request: web.Request) -> None:
    if not caller(request).is_policymaker:
        raise not_authorised("Not policymaker user")


@routes.get("/ui/api/policies")
async def list_policies(request: web.Request) -> web.Response:
    _require_policymaker(request)
    ctx = context(request)
    visible = caller(request).visible_vhosts(ctx.broker)
    items = [p.as_json() for p in ctx.admin.policies() if p.vhost in visible]
    return reply_list(request, items)


@routes.put("/ui/api/policies/{vhost}/{name}")
async def put_policy(request: web.Request) -> web.Response:
    _require_policymaker(request)
    vhost = vhost_param(request)
    values = await body(request)
    ctx = context(request)
    name = request.match_info["name"]
    exists = any(p.name == name for p in ctx.admin.policies(vhost))
    try:
        ctx.admin.set_policy(
            vhost, name, values.get("pattern"), values.get("definition"),
            priority=values.get("priority", 0), apply_to=values.get("apply-to", "all"),
        )
    except NotFound:
        raise object_not_found() from None
    except ValueError as error:
        raise ApiError(400, "bad_request", getattr(error, "reason", str(error))) from None
    await ctx.admin.committed()
    return web.Response(status=204 if exists else 201)


@routes.delete("/ui/api/policies/{vhost}/{name}")
async def delete_policy(request: web.Request) -> web.Response:
    _require_policymaker(request)
    vhost = vhost_param(request)
    ctx = context(request)
    try:
        ctx.admin.clear_policy(vhost, request.match_info["name"])
    except NotFound:
        raise object_not_found() from None
    await ctx.admin.committed()
    return web.Response(status=204)


@routes.get("/ui/api/definitions")
async def export_definitions(request: web.Request) -> web.Response:
    caller(request).require_admin()
    reply = json_reply(context(request).admin.export_definitions())
    if request.query.get("download"):
        name = request.query["download"].replace('"', "")
        reply.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return reply


@routes.post("/ui/api/definitions")
async def import_definitions(request: web.Request) -> web.Response:
    caller(request).require_admin()
    raw = await request.read()
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("not_json") from None
    ctx = context(request)
    ctx.admin.import_definitions(data)
    await ctx.admin.committed()
    return web.Response(status=204)
