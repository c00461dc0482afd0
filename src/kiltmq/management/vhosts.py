"""Virtual hosts: ``/api/vhosts`` and ``/api/vhosts/{vhost}`` (GET, PUT with
``description``, ``tags`` and ``default_queue_type``, kept as given by each PUT, DELETE)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from kiltmq.broker.monitor import QueueDetail
from kiltmq.broker.vhost_metadata import VhostMetadata
from kiltmq.management.context import Context, caller, context, vhost_param
from kiltmq.management.errors import bad_request, object_not_found
from kiltmq.management.listing import reply_item, reply_list
from kiltmq.management.request import body, disable_stats, text
from kiltmq.management.stats import CHANNEL_FIELDS, message_stats, with_rates
from kiltmq.management.users import parse_tags

__all__ = ["routes", "vhost_item"]

routes = web.RouteTableDef()


def depth_rates(ctx: Context, queues: Iterable[QueueDetail]) -> list[float]:
    """The rates of change of the queues' messages, ready and unacknowledged messages
    (summed over the queues)."""
    rates = [0.0, 0.0, 0.0]
    for q in queues:
        key = ("depth", "queue", q.stats.vhost, q.stats.name)
        for i, rate in enumerate(ctx.sampler.rates(key, 3)):
            rates[i] += rate
    return rates


def vhost_item(ctx: Context, name: str, *, stats: bool = True) -> dict[str, Any]:
    """A vhost's JSON; without ``stats`` (``?disable_stats=true``), no message counts."""
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
    if not stats:
        return item
    queues = ctx.monitor.queues(name)
    with_rates(item, {
        "messages": sum(q.stats.messages for q in queues),
        "messages_ready": sum(q.stats.ready for q in queues),
        "messages_unacknowledged": sum(q.stats.unacked for q in queues),
    }, depth_rates(ctx, queues))
    sampler = ctx.sampler
    counted = message_stats(
        sampler.totals(name), sampler.rates(("vhost", name), 11), CHANNEL_FIELDS
    )
    if counted is not None:
        item["message_stats"] = counted
    return item


@routes.get("/api/vhosts")
async def list_vhosts(request: web.Request) -> web.Response:
    ctx = context(request)
    names = caller(request).listed_vhosts(ctx.broker)
    stats = not disable_stats(request)
    items = [vhost_item(ctx, n, stats=stats) for n in sorted(names)]
    return reply_list(request, items, ("name",))


@routes.get("/api/vhosts/{vhost}")
async def get_vhost(request: web.Request) -> web.Response:
    ctx = context(request)
    name = request.match_info["vhost"]
    caller(request).require_vhost_visible(ctx.broker, name)
    if name not in ctx.broker.vhosts:
        raise object_not_found()
    return reply_item(request, vhost_item(ctx, name, stats=not disable_stats(request)))


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
