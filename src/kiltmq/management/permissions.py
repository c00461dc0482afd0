"""Permissions: ``/api/permissions``, ``/api/permissions/{vhost}/{user}`` (GET, PUT,
DELETE), ``/api/vhosts/{vhost}/permissions`` and ``/api/users/{user}/permissions``;
administrators only. Topic permissions are in :mod:`kiltmq.management.topic_permissions`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kiltmq.broker.snapshots import PermissionInfo
from kiltmq.management.context import caller, context
from kiltmq.management.errors import bad_request, object_not_found
from kiltmq.management.listing import reply_item, reply_list
from kiltmq.management.request import body, require

__all__ = ["routes"]

routes = web.RouteTableDef()


def permission_item(p: PermissionInfo) -> dict[str, Any]:
    return {
        "user": p.user,
        "vhost": p.vhost,
        "configure": p.configure,
        "write": p.write,
        "read": p.read,
    }


def _reply(request: web.Request, found: list[PermissionInfo]) -> web.Response:
    return reply_list(request, [permission_item(p) for p in found], ("vhost", "user"))


@routes.get("/api/permissions")
async def list_permissions(request: web.Request) -> web.Response:
    caller(request).require_admin()
    return _reply(request, context(request).admin.permissions())


@routes.get("/api/vhosts/{vhost}/permissions")
async def vhost_permissions(request: web.Request) -> web.Response:
    caller(request).require_admin()
    ctx = context(request)
    vhost = request.match_info["vhost"]
    if vhost not in ctx.broker.vhosts:
        raise object_not_found()
    return _reply(request, ctx.admin.permissions(vhost))


@routes.get("/api/users/{user}/permissions")
async def user_permissions(request: web.Request) -> web.Response:
    caller(request).require_admin()
    ctx = context(request)
    user = request.match_info["user"]
    if user not in ctx.broker.auth.users:
        raise object_not_found()
    return _reply(request, [p for p in ctx.admin.permissions() if p.user == user])


def _one(request: web.Request) -> PermissionInfo:
    ctx = context(request)
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    if vhost not in ctx.broker.vhosts or user not in ctx.broker.auth.users:
        raise object_not_found()
    for p in ctx.admin.permissions(vhost):
        if p.user == user:
            return p
    raise object_not_found()


@routes.get("/api/permissions/{vhost}/{user}")
async def get_permission(request: web.Request) -> web.Response:
    caller(request).require_admin()
    return reply_item(request, permission_item(_one(request)))


@routes.put("/api/permissions/{vhost}/{user}")
async def put_permission(request: web.Request) -> web.Response:
    caller(request).require_admin()
    values = await body(request)
    require(values, ("configure", "write", "read"))
    ctx = context(request)
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    if vhost not in ctx.broker.vhosts or user not in ctx.broker.auth.users:
        raise bad_request("vhost_or_user_not_found")
    patterns = [values[k] for k in ("configure", "write", "read")]
    if not all(isinstance(p, str) for p in patterns):
        raise bad_request("configure, write and read must be strings")
    existed = any(p.user == user for p in ctx.admin.permissions(vhost))
    ctx.admin.set_permissions(user, vhost, *patterns)
    await ctx.admin.committed()
    return web.Response(status=204 if existed else 201)


@routes.delete("/api/permissions/{vhost}/{user}")
async def delete_permission(request: web.Request) -> web.Response:
    caller(request).require_admin()
    _one(request)
    ctx = context(request)
    ctx.admin.clear_permissions(request.match_info["user"], request.match_info["vhost"])
    await ctx.admin.committed()
    return web.Response(status=204)
