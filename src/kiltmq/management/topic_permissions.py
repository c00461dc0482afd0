"""Topic permissions, as RabbitMQ 3.10 serves them (administrators only):
``/api/topic-permissions``, ``/api/vhosts/{vhost}/topic-permissions``,
``/api/users/{user}/topic-permissions``, ``/api/topic-permissions/{vhost}/{user}`` (GET
the pair's list, PUT one ``{"exchange", "write", "read"}``, DELETE them all) and
``/api/topic-permissions/{vhost}/{user}/{exchange}`` (GET: the pair's list, as RabbitMQ;
DELETE: the one for that exchange).

As RabbitMQ: the pair's resource exists only while the user has a topic permission in
the vhost (404 otherwise), so a PUT answers 201 for the first and 204 after; a PUT for
an unknown user or vhost is 400 ``vhost_or_user_not_found``, checked before missing keys
and bad regexes (``["invalid_regexp", pattern, [message, position]]``, the message as
Erlang's list of character codes)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kiltmq.broker.snapshots import TopicPermissionInfo
from kiltmq.broker.topic_permissions_admin import InvalidRegex
from kiltmq.management.context import caller, context
from kiltmq.management.errors import ApiError, bad_request, object_not_found
from kiltmq.management.listing import reply_list
from kiltmq.management.request import body, require

__all__ = ["routes"]

routes = web.RouteTableDef()

_ORDER = ("vhost", "user", "exchange")


def topic_permission_item(p: TopicPermissionInfo) -> dict[str, Any]:
    return {
        "user": p.user,
        "vhost": p.vhost,
        "exchange": p.exchange,
        "write": p.write,
        "read": p.read,
    }


def _reply(request: web.Request, found: list[TopicPermissionInfo]) -> web.Response:
    return reply_list(request, [topic_permission_item(p) for p in found], _ORDER)


@routes.get("/api/topic-permissions")
async def list_topic_permissions(request: web.Request) -> web.Response:
    caller(request).require_admin()
    return _reply(request, context(request).admin.topic_permissions())


@routes.get("/api/vhosts/{vhost}/topic-permissions")
async def vhost_topic_permissions(request: web.Request) -> web.Response:
    caller(request).require_admin()
    ctx = context(request)
    vhost = request.match_info["vhost"]
    if vhost not in ctx.broker.vhosts:
        raise object_not_found()
    return _reply(request, ctx.admin.topic_permissions(vhost=vhost))


@routes.get("/api/users/{user}/topic-permissions")
async def user_topic_permissions(request: web.Request) -> web.Response:
    caller(request).require_admin()
    ctx = context(request)
    user = request.match_info["user"]
    if user not in ctx.broker.auth.users:
        raise object_not_found()
    return _reply(request, ctx.admin.topic_permissions(user=user))


def _known(request: web.Request) -> bool:
    ctx = context(request)
    return (
        request.match_info["vhost"] in ctx.broker.vhosts
        and request.match_info["user"] in ctx.broker.auth.users
    )


def _pair(request: web.Request) -> list[TopicPermissionInfo]:
    """The pair's topic permissions; 404 for an unknown user or vhost, or none."""
    if not _known(request):
        raise object_not_found()
    found = context(request).admin.topic_permissions(
        vhost=request.match_info["vhost"], user=request.match_info["user"]
    )
    if not found:
        raise object_not_found()
    return found


@routes.get("/api/topic-permissions/{vhost}/{user}")
@routes.get("/api/topic-permissions/{vhost}/{user}/{exchange}")
async def get_topic_permissions(request: web.Request) -> web.Response:
    caller(request).require_admin()
    return _reply(request, _pair(request))


@routes.put("/api/topic-permissions/{vhost}/{user}")
async def put_topic_permission(request: web.Request) -> web.Response:
    caller(request).require_admin()
    values = await body(request)
    if not _known(request):
        raise bad_request("vhost_or_user_not_found")
    require(values, ("exchange", "write", "read"))
    fields = [values[k] for k in ("exchange", "write", "read")]
    if not all(isinstance(f, str) for f in fields):
        raise bad_request("exchange, write and read must be strings")
    ctx = context(request)
    try:
        created = ctx.admin.set_topic_permissions(
            request.match_info["user"], request.match_info["vhost"], *fields
        )
    except InvalidRegex as exc:
        reason = [[ord(c) for c in exc.message], exc.position]
        raise ApiError(400, "bad_request", ["invalid_regexp", exc.pattern, reason]) from None
    await ctx.admin.committed()
    return web.Response(status=201 if created else 204)


@routes.delete("/api/topic-permissions/{vhost}/{user}")
@routes.delete("/api/topic-permissions/{vhost}/{user}/{exchange}")
async def delete_topic_permissions(request: web.Request) -> web.Response:
    caller(request).require_admin()
    _pair(request)
    ctx = context(request)
    ctx.admin.clear_topic_permissions(
        request.match_info["user"], request.match_info["vhost"],
        request.match_info.get("exchange"),
    )
    await ctx.admin.committed()
    return web.Response(status=204)
