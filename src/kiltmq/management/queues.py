"""Queues: ``/api/queues[/{vhost}[/{name}]]`` (GET, PUT, DELETE with ``if-empty`` and
``if-unused``), ``/api/queues/{vhost}/{name}/contents`` (DELETE: purge),
``/api/queues/{vhost}/{name}/get`` (POST) and ``/api/queues/{vhost}/{name}/bindings``.
Changes are done as the calling user, with that user's permissions."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from kiltmq.broker.admin import NotFound
from kiltmq.broker.monitor import QueueDetail, QueueFigures
from kiltmq.broker.user_actions import ACK_MODES, Fetched
from kiltmq.management.bindings import bindings_of
from kiltmq.management.connections import consumer_item
from kiltmq.management.context import Context, caller, context, vhost_param
from kiltmq.management.errors import (
    ApiError,
    amqp_failure,
    bad_request,
    object_not_found,
    vhost_not_found,
)
from kiltmq.management.listing import Item, json_reply, reply_item, reply_list, reply_rows, wanted
from kiltmq.management.message_json import plain, properties_to_json
from kiltmq.management.request import body, disable_stats, flag, integer, require
from kiltmq.management.stats import QUEUE_FIELDS, Range, message_stats, object_history, with_rates
from kiltmq.protocol.errors import AMQPError

__all__ = ["routes"]

routes = web.RouteTableDef()


#: The keys of a queue's JSON by what they cost: its properties, its depth with rates,
#: its bytes, its counters with rates.
PROPERTY_KEYS = (
    "durable", "auto_delete", "exclusive", "arguments", "node", "type", "state", "policy",
    "operator_policy", "effective_policy_definition", "consumers", "exclusive_consumer_tag",
    "head_message_timestamp", "owner_pid_details",
)
DEPTH = ("messages", "messages_ready", "messages_unacknowledged")
DEPTH_KEYS = (*DEPTH, *(f"{n}_details" for n in DEPTH), *(f"{n}_ram" for n in DEPTH))
BYTES_KEYS = ("message_bytes", "message_bytes_ready", "message_bytes_unacknowledged")


def queue_item(
    ctx: Context, q: QueueDetail, *, stats: bool = True, keys: frozenset[str] | None = None
) -> dict[str, Any]:
    """A queue's JSON; with ``keys``, at least those keys (statistics only if ``stats``)."""
    s = q.stats
    item: dict[str, Any] = {"name": s.name, "vhost": s.vhost}
    if wanted(keys, *PROPERTY_KEYS):
        item.update({
            "durable": s.durable,
            "auto_delete": s.auto_delete,
            "exclusive": s.exclusive,
            "arguments": plain(s.arguments),
            "node": ctx.node,
            "type": s.type,
            "state": "running",
            "policy": s.policy,
            "operator_policy": s.operator_policy,
            "effective_policy_definition": plain(s.effective_policy_definition),
            "consumers": s.consumers,
            "exclusive_consumer_tag": q.exclusive_consumer_tag,
            "head_message_timestamp": None,
        })
        if q.owner is not None:
            host, _, port = q.owner.partition(" -> ")[0].rpartition(":")
            item["owner_pid_details"] = {
                "name": q.owner, "peer_host": host, "peer_port": int(port or 0),
            }
    if stats:
        figures = QueueFigures(
            s.vhost, s.name, s.ready, s.unacked, s.consumers, q.ready_bytes, q.unacked_bytes,
            q.counts.values(),
        )
        _statistics(item, ctx, figures, keys)
        if wanted(keys, "memory"):
            item["memory"] = q.memory
    return item


def _statistics(
    item: dict[str, Any], ctx: Context, f: QueueFigures, keys: frozenset[str] | None
) -> None:
    key = ("queue", f.vhost, f.name)
    if keys is not None and keys.isdisjoint(DEPTH_KEYS[3:]):  # depths only
        for name, value in zip(DEPTH, (f.messages, f.ready, f.unacked), strict=True):
            if name in keys:
                item[name] = value
    elif wanted(keys, *DEPTH_KEYS):
        with_rates(
            item,
            {
                "messages": f.messages,
                "messages_ready": f.ready,
                "messages_unacknowledged": f.unacked,
            },
            ctx.sampler.rates(("depth", *key), 3),
        )
        item["messages_ram"] = f.messages
        item["messages_ready_ram"] = f.ready
        item["messages_unacknowledged_ram"] = f.unacked
    if wanted(keys, *BYTES_KEYS):
        item["message_bytes"] = f.ready_bytes + f.unacked_bytes
        item["message_bytes_ready"] = f.ready_bytes
        item["message_bytes_unacknowledged"] = f.unacked_bytes
    if wanted(keys, "message_stats"):
        counts = message_stats(f.counts, ctx.sampler.rates(key, 11), QUEUE_FIELDS)
        if counts is not None:
            item["message_stats"] = counts
    if wanted(keys, "idle_since"):
        idle = ctx.sampler.idle_since(key, ("depth", *key))
        if idle is not None:
            item["idle_since"] = idle


#: The keys an item made of a queue's figures has (see :func:`_figures_item`).
FIGURES_KEYS = frozenset(
    {"name", "vhost", "consumers", *DEPTH_KEYS, *BYTES_KEYS, "message_stats", "idle_since"}
)


def _figures_item(
    ctx: Context, f: QueueFigures, keys: frozenset[str] | None, stats: bool
) -> dict[str, Any]:
    item: dict[str, Any] = {"name": f.name, "vhost": f.vhost, "consumers": f.consumers}
    if stats:
        _statistics(item, ctx, f, keys)
    return item


def _list(request: web.Request, vhosts: list[str]) -> web.Response:
    ctx = context(request)
    stats = not disable_stats(request)

    def build(rows: Sequence[tuple[str, str]], keys: frozenset[str] | None) -> list[Item]:
        if keys is not None and keys <= {"name", "vhost"}:
            return [{"name": name, "vhost": vhost} for vhost, name in rows]
        if keys is not None and keys <= FIGURES_KEYS:
            return [_figures_item(ctx, f, keys, stats) for f in ctx.monitor.queue_figures(rows)]
        return [
            queue_item(ctx, q, stats=stats, keys=keys) for q in ctx.monitor.queues_named(rows)
        ]

    names = [n for v in vhosts for n in ctx.monitor.queue_names(v)]
    return reply_rows(request, names, build)


@routes.get("/api/queues")
async def list_queues(request: web.Request) -> web.Response:
    visible = caller(request).visible_vhosts(context(request).broker)
    return _list(request, sorted(visible))


@routes.get("/api/queues/{vhost}")
async def vhost_queues(request: web.Request) -> web.Response:
    return _list(request, [vhost_param(request)])


def _queue(request: web.Request) -> QueueDetail:
    vhost = vhost_param(request)
    try:
        return context(request).monitor.queue(vhost, request.match_info["name"])
    except NotFound:
        raise object_not_found() from None


@routes.get("/api/queues/{vhost}/{name}")
async def get_queue(request: web.Request) -> web.Response:
    ctx = context(request)
    q = _queue(request)
    stats = not disable_stats(request)
    item = queue_item(ctx, q, stats=stats)
    if stats:
        key = ("queue", q.stats.vhost, q.stats.name)
        lengths = Range.of(request.query, "lengths")
        object_history(item, ctx.sampler, ("depth", *key), DEPTH, lengths)
        if "message_stats" in item:
            object_history(
                item["message_stats"], ctx.sampler, key, None,
                Range.of(request.query, "msg_rates"),
            )
    item["consumer_details"] = [
        consumer_item(c, ctx.node)
        for c in ctx.monitor.consumers(q.stats.vhost)
        if c.queue == q.stats.name
    ]
    item["incoming"] = []
    item["deliveries"] = []
    return reply_item(request, item)


@routes.put("/api/queues/{vhost}/{name}")
async def put_queue(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = request.match_info["vhost"]
    caller(request).require_vhost(ctx.broker, vhost)
    values = await body(request)
    if vhost not in ctx.broker.vhosts:
        raise vhost_not_found()
    arguments = values.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise bad_request("arguments must be an object")
    try:
        created = ctx.actions(caller(request)).declare_queue(
            vhost,
            request.match_info["name"],
            durable=flag(values, "durable", False),
            auto_delete=flag(values, "auto_delete", False),
            arguments=arguments,
        )
    except AMQPError as error:
        raise amqp_failure(error) from None
    await ctx.admin.committed()
    return web.Response(status=201 if created else 204)


@routes.delete("/api/queues/{vhost}/{name}")
async def delete_queue(request: web.Request) -> web.Response:
    q = _queue(request)
    ctx = context(request)
    query = request.query
    try:
        ctx.actions(caller(request)).delete_queue(
            q.stats.vhost,
            q.stats.name,
            if_unused=query.get("if-unused") == "true",
            if_empty=query.get("if-empty") == "true",
        )
    except AMQPError as error:
        raise amqp_failure(error) from None
    await ctx.admin.committed()
    return web.Response(status=204)


@routes.delete("/api/queues/{vhost}/{name}/contents")
async def purge_queue(request: web.Request) -> web.Response:
    q = _queue(request)
    ctx = context(request)
    try:
        ctx.actions(caller(request)).purge_queue(q.stats.vhost, q.stats.name)
    except AMQPError as error:
        raise amqp_failure(error) from None
    return web.Response(status=204)


def _fetched_item(m: Fetched, encoding: str, truncate: int | None) -> dict[str, Any]:
    payload = m.body if truncate is None else m.body[:truncate]
    item: dict[str, Any] = {
        "payload_bytes": len(m.body),
        "redelivered": m.redelivered,
        "exchange": m.exchange,
        "routing_key": m.routing_key,
        "message_count": m.message_count,
        "properties": properties_to_json(m.properties),
    }
    text: str | None = None
    if encoding == "auto":
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if text is not None:
        item["payload"] = text
        item["payload_encoding"] = "string"
    else:
        item["payload"] = base64.b64encode(payload).decode()
        item["payload_encoding"] = "base64"
    return item


@routes.post("/api/queues/{vhost}/{name}/get")
async def get_messages(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = vhost_param(request)
    values = await body(request)
    require(values, ("count", "ackmode", "encoding"))
    count = integer(values, "count", 1)
    ackmode = values["ackmode"]
    encoding = values["encoding"]
    if ackmode not in ACK_MODES:
        raise ApiError(500, None)  # as RabbitMQ, which fails on it
    if encoding not in ("auto", "base64"):
        raise bad_request("Unsupported encoding. Please use auto or base64.")
    truncate = integer(values, "truncate", -1) if values.get("truncate") is not None else None
    try:
        fetched = ctx.actions(caller(request)).get(
            vhost, request.match_info["name"], count, ackmode
        )
    except AMQPError as error:
        raise amqp_failure(error, with_code=True) from None
    if truncate is not None and truncate < 0:
        truncate = None
    return json_reply([_fetched_item(m, encoding, truncate) for m in fetched])


@routes.get("/api/queues/{vhost}/{name}/bindings")
async def queue_bindings(request: web.Request) -> web.Response:
    q = _queue(request)
    items = [
        b for b in bindings_of(request, q.stats.vhost)
        if b["destination_type"] == "queue" and b["destination"] == q.stats.name
    ]
    return reply_list(request, items, ())
