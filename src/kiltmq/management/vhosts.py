"""Virtual hosts: ``/api/vhosts`` and ``/api/vhosts/{vhost}`` (GET, PUT with
``description``, ``tags`` and ``default_queue_type``, kept as given by each PUT, DELETE)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kiltmq.broker.vhost_metadata import VhostMetadata
from kiltmq.management.context import Context, caller, context, vhost_param
from kiltmq.management.errors import bad_request, object_not_found
from kiltmq.management.listing import reply_item, reply_list
from kiltmq.management.request import body, text
from kiltmq.management.stats import CHANNEL_FIELDS, message_stats
from kiltmq.management.users import parse_tags

__all__ = ["routes", "vhost_item"]

routes = web.RouteTableDef()


def vhost_item(ctx: Context, name: str) -> dict[str, Any]:
    queues = ctx.monitor.queues(name)
    meta = ctx.admin.vhost(name).metadata
    item: dict[str, Any] = {
        "name": name,
        "description": meta.description,
        "tags": list(meta.tags),
        "default_queue_type": meta.default_queue_type or "undefined",
        "metadata": {"description": meta.description, "tags": list(meta.tags)},
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
    values = await body(request)
    description = text(values, "description")
    tags = parse_tags(values.get("tags") or [])
    queue_type = values.get("default_queue_type")
    if queue_type is not None and not isinstance(queue_type, str):
        raise bad_request("default_queue_type must be a string")
    ctx = context(request)
    name = request.match_info["vhost"]
    created = ctx.admin.add_vhost(name, users=[who.name])
    metadata = VhostMetadata.of(description, tags, queue_type)
    host = ctx.admin.vhost(name)
    if metadata != host.metadata:
        host.set_metadata(metadata)
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
