"""Per-user limits: ``/api/user-limits``, ``/api/user-limits/{user}`` and
``/api/user-limits/{user}/{name}`` (PUT ``{"value": N}``, DELETE). As in RabbitMQ, every
management user reads every user's limits and only administrators change them; reasons
of refusals are RabbitMQ's, without the "Validation failed" of vhost limits."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kiltmq.broker.user_limits import UserLimitError, parse_user_limits
from kiltmq.management.context import caller, context
from kiltmq.management.errors import ApiError, bad_request, object_not_found
from kiltmq.management.listing import reply_list
from kiltmq.management.request import body, require

__all__ = ["routes"]

routes = web.RouteTableDef()


def _items(request: web.Request, user: str | None) -> list[dict[str, Any]]:
    return [
        {"user": name, "value": dict(sorted(limits.items()))}
        for name, limits in context(request).admin.user_limits(user)
        if limits
    ]


def _no_such_user(request: web.Request) -> str:
    """The user in the path; RabbitMQ's 400 when there is no such user."""
    user = request.match_info["user"]
    if user not in context(request).broker.auth.users:
        raise ApiError(400, "bad_request", ["no_such_user", user])
    return user


@routes.get("/api/user-limits")
async def list_user_limits(request: web.Request) -> web.Response:
    return reply_list(request, _items(request, None), ("user",))


@routes.get("/api/user-limits/{user}")
async def user_limits(request: web.Request) -> web.Response:
    user = request.match_info["user"]
    if user not in context(request).broker.auth.users:
        raise object_not_found()
    return reply_list(request, _items(request, user), ("user",))


@routes.put("/api/user-limits/{user}/{name}")
async def put_user_limit(request: web.Request) -> web.Response:
    caller(request).require_admin()
    values = await body(request)
    user = _no_such_user(request)
    require(values, ("value",))
    ctx = context(request)
    try:
        limits = parse_user_limits({request.match_info["name"]: values["value"]})
    except UserLimitError as error:
        raise bad_request(str(error)) from None
    ctx.admin.set_user_limits(user, limits)
    await ctx.admin.committed()
    return web.Response(status=204)


@routes.delete("/api/user-limits/{user}/{name}")
async def delete_user_limit(request: web.Request) -> web.Response:
    caller(request).require_admin()
    ctx = context(request)
    ctx.admin.clear_user_limits(_no_such_user(request), request.match_info["name"])
    await ctx.admin.committed()
    return web.Response(status=204)
