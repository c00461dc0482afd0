"""Virtual hosts: ``/api/vhosts`` and ``/api/vhosts/{vhost}`` (GET, PUT, DELETE)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kiltmq.management.context import Context, caller, context, vhost_param
from kiltmq.management.errors import object_not_found
from kiltmq.management.listing import reply_item, reply_list
from kiltmq.management.request import body
from kiltmq.management.stats import CHANNEL_FIELDS, message_stats

__all__ = ["routes", "vhost_item"]

routes = web.RouteTableDef()


def vhost_item(ctx: Context, name: str) -> dict[str, Any]:
    queues = ctx.monitor.queues(name)
    item: dict[str, Any] = {
        "name": name,
        "description": "",
        "tags": [],
        "default_queue_type": "undefined",
        "metadata": {"description": "", "tags": []},
        "tracing": False,
        "cluster_state": {ctx.node: "running"},
    }
    item["messages"] = sum(q.stats.messages for q in queues)
    item["messages_ready"] = sum(q.stats.ready for q in queues)
    item["messages_unacknowledged"] = sum(q.stats.unacked for q in queues)
    sampler = ctx.sampler
    stats = message_stats(
        sampler.totals(name), sampler.rates(("vhost", name), 11), CHANNEL_FIELDS
    )
    if stats is not None:
        item["message_stats"] = stats
    return item


@routes.get("/api/vhosts")
async def list_vhosts(request: web.Request) -> web.Response:
    ctx = context(request)
    names = caller(request).listed_vhosts(ctx.broker)
    return reply_list(request, [vhost_item(ctx, n) for n in sorted(names)], ("name",))


@routes.get("/api/vhosts/{vhost}")
async def get_vhost(request: web.Request) -> web.Response:
    ctx = context(request)
    name = request.match_info["vhost"]
    caller(request).require_vhost_visible(ctx.broker, name)
    if name not in ctx.broker.vhosts:
        raise object_not_found()
    return reply_item(request, vhost_item(ctx, name))


@routes.put("/api/vhosts/{vhost}")
async def put_vhost(request: web.Request) -> web.Response:
    who = caller(request)
    who.require_admin()
    await body(request)
    ctx = context(request)
    name = request.match_info["vhost"]
    created = ctx.admin.add_vhost(name, users=[who.name])
    await ctx.admin.committed()
    return web.Response(status=201 if created else 204)


@routes.delete("/api/vhosts/{vhost}")
async def delete_vhost(request: web.Request) -> web.Response:
    caller(request).require_admin()
    ctx = context(request)
    name = vhost_param(request)
    ctx.admin.delete_vhost(name)
    await ctx.admin.committed()
    return web.Response(status=204)
