"""The broker as a whole: ``/api/overview``, ``/api/nodes[/{node}]``,
``/api/nodes/{node}/memory[/relative]``, ``/api/whoami``, ``/api/extensions``,
``/api/cluster-name``, ``/api/auth`` and ``/api/auth/attempts/{node}[/source]``."""

from __future__ import annotations

import os
import resource
import shutil
from typing import Any

from aiohttp import web

from kiltmq.broker.disk import DEFAULT_DISK_FREE_LIMIT
from kiltmq.broker.exchange import EXCHANGE_TYPES
from kiltmq.broker.monitor import MessageCounts, QueueDetail
from kiltmq.broker.snapshots import resident_memory
from kiltmq.management.context import Context, caller, context
from kiltmq.management.errors import object_not_found
from kiltmq.management.listing import json_reply, reply_item, reply_list
from kiltmq.management.request import disable_stats
from kiltmq.management.stats import (
    OVERVIEW_FIELDS,
    message_stats,
    overview_history,
    with_rates,
)
from kiltmq.management.vhosts import depth_rates
from kiltmq.version import __version__

__all__ = ["API_VERSION", "routes"]

routes = web.RouteTableDef()

#: The RabbitMQ management API this one answers as (``management_version``,
#: ``rabbitmq_version``); the product is kiltmq.
API_VERSION = "3.10.8"
#: RabbitMQ's default free disk space limit.

_DESCRIPTIONS = {
    "direct": "AMQP direct exchange, as per the AMQP specification",
    "fanout": "AMQP fanout exchange, as per the AMQP specification",
    "headers": "AMQP headers exchange, as per the AMQP specification",
    "topic": "AMQP topic exchange, as per the AMQP specification",
}


def exchange_types() -> list[dict[str, Any]]:
    return [
        {"name": name, "description": _DESCRIPTIONS.get(name, ""), "enabled": True}
        for name in sorted(EXCHANGE_TYPES)
    ]


def _listeners(ctx: Context, request: web.Request) -> list[dict[str, Any]]:
    found = [
        {
            "node": ctx.node,
            "protocol": "amqp",
            "ip_address": host or "0.0.0.0",
            "port": port,
            "socket_opts": {},
        }
        for (host, _), port in zip(ctx.broker.listeners, ctx.broker.ports, strict=False)
    ]
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sockname, tuple):
        found.append(
            {
                "node": ctx.node,
                "protocol": "http",
                "ip_address": str(sockname[0]),
                "port": int(sockname[1]),
                "socket_opts": {"port": int(sockname[1])},
            }
        )
    return found


def _contexts(ctx: Context, request: web.Request) -> list[dict[str, Any]]:
    """Where the API is served, as RabbitMQ's web ``contexts``."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    port = str(sockname[1]) if isinstance(sockname, tuple) else ""
    return [{"node": ctx.node, "description": "kiltmq management", "path": "/", "port": port}]


def _message_stats(ctx: Context, vhosts: set[str] | None) -> dict[str, Any]:
    """The overview's ``message_stats``: of the whole broker (None), or summed over
    ``vhosts``."""
    sampler = ctx.sampler
    if vhosts is None:
        return message_stats(
            sampler.totals(), sampler.rates("overview", 11), OVERVIEW_FIELDS
        ) or {}
    counts = sum((sampler.totals(v) for v in sorted(vhosts)), MessageCounts())
    rates = [0.0] * 11
    for v in vhosts:
        for i, rate in enumerate(sampler.rates(("vhost", v), 11)):
            rates[i] += rate
    return message_stats(counts, rates, OVERVIEW_FIELDS) or {}


def _queue_totals(ctx: Context, queues: list[QueueDetail], everything: bool) -> dict[str, Any]:
    queue_totals: dict[str, Any] = {}
    if not queues:
        return queue_totals
    rates = ctx.sampler.rates("queue_totals", 3) if everything else depth_rates(ctx, queues)
    with_rates(
        queue_totals,
        {
            "messages": sum(q.stats.messages for q in queues),
            "messages_ready": sum(q.stats.ready for q in queues),
            "messages_unacknowledged": sum(q.stats.unacked for q in queues),
        },
        rates,
    )
    return queue_totals


@routes.get("/api/overview")
async def get_overview(request: web.Request) -> web.Response:
    """As RabbitMQ: a monitoring user or an administrator sees the whole broker; any
    other user the sums over the vhosts it may use, its own connections and channels,
    and no consumer count, node, listeners or contexts."""
    ctx = context(request)
    who = caller(request)
    monitor = ctx.monitor
    sampler = ctx.sampler
    everything = who.is_monitor
    visible = set(ctx.broker.vhosts) if everything else who.visible_vhosts(ctx.broker)
    exchanges = sum(len(ctx.admin.vhost(v).exchanges) for v in visible)
    body: dict[str, Any] = {
        "management_version": API_VERSION,
        "rates_mode": "basic",
        "sample_retention_policies": {
            "global": [600, 3600, 28800, 86400],
            "basic": [600, 3600],
            "detailed": [600],
        },
        "exchange_types": exchange_types(),
        "product_version": __version__,
        "product_name": "kiltmq",
        "rabbitmq_version": API_VERSION,
        "cluster_name": ctx.cluster_name,
        "disable_stats": disable_stats(request),
        "enable_queue_totals": request.query.get("enable_queue_totals") == "true",
    }
    if disable_stats(request):
        queue_count = sum(len(ctx.admin.vhost(v).queues) for v in visible)
        totals: dict[str, Any] = {"queues": queue_count, "exchanges": exchanges}
        if everything:
            totals["connections"] = len(monitor.connections())
        body["node"] = ctx.node
        body["object_totals"] = totals
        return reply_item(request, body)
    queues = [q for q in monitor.queues() if q.stats.vhost in visible]
    channels = [c for c in monitor.channels() if who.sees_user(c.connection.user)]
    connections = [c for c in monitor.connections() if who.sees_user(c.user)]
    object_totals: dict[str, Any] = {
        "channels": len(channels),
        "connections": len(connections),
        "exchanges": exchanges,
        "queues": len(queues),
    }
    if everything:
        object_totals["consumers"] = sum(q.stats.consumers for q in queues)
    body["message_stats"] = _message_stats(ctx, None if everything else visible)
    body["queue_totals"] = _queue_totals(ctx, queues, everything)
    body["object_totals"] = object_totals
    body["statistics_db_event_queue"] = 0
    churn = ctx.broker.churn
    body["churn_rates"] = {}
    with_rates(
        body["churn_rates"], dict(zip(churn.FIELDS, churn.values(), strict=True)),
        sampler.rates("churn", len(churn.FIELDS)),
    )
    overview_history(body, sampler, request.query, visible)
    if everything:
        body["node"] = ctx.node
        body["listeners"] = _listeners(ctx, request)
        body["contexts"] = _contexts(ctx, request)
    return reply_item(request, body)


def _node(ctx: Context, request: web.Request) -> dict[str, Any]:
    status = ctx.admin.status()
    data_dir = status.data_dir or os.getcwd()
    try:
        disk_free = shutil.disk_usage(data_dir).free
    except OSError:
        disk_free = 0
    fd_total = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    try:
        fd_used = len(os.listdir("/proc/self/fd"))
    except OSError:
        fd_used = 0
    return {
        "name": ctx.node,
        "type": "disc",
        "running": True,
        "os_pid": str(status.pid),
        "uptime": int(status.uptime * 1000),
        "processors": os.cpu_count() or 1,
        "mem_used": status.process_memory or status.queued_bytes,
        "mem_limit": status.memory_limit or 0,
        "mem_alarm": status.memory_alarm,
        "mem_calculation_strategy": "rss",
        "disk_free": disk_free,
        "disk_free_limit": status.disk_free_limit or DEFAULT_DISK_FREE_LIMIT,
        "disk_free_alarm": "disk" in status.alarms,
        "fd_used": fd_used,
        "fd_total": fd_total,
        "sockets_used": status.connections,
        "sockets_total": fd_total,
        "partitions": [],
        "rates_mode": "basic",
        "exchange_types": exchange_types(),
        "auth_mechanisms": [
            {"name": "PLAIN", "description": "SASL PLAIN authentication mechanism",
             "enabled": True},
            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": True},
        ],
        "enabled_plugins": ["rabbitmq_management"],
        "applications": [
            {"name": "kiltmq", "description": "kiltmq broker", "version": __version__}
        ],
        "db_dir": status.data_dir or "",
        "log_files": [],
        "config_files": [],
        "net_ticktime": 60,
        "cluster_links": [],
        "contexts": _contexts(ctx, request),
    }


def _node_or_name(ctx: Context, request: web.Request) -> dict[str, Any]:
    """The node; with ``?disable_stats=true`` its name, type and state only (as
    RabbitMQ's)."""
    if disable_stats(request):
        return {"name": ctx.node, "type": "disc", "running": True}
    return _node(ctx, request)


@routes.get("/api/nodes")
async def get_nodes(request: web.Request) -> web.Response:
    caller(request).require_monitor()
    return reply_list(request, [_node_or_name(context(request), request)], ("name",))


@routes.get("/api/nodes/{node}")
async def get_node(request: web.Request) -> web.Response:
    caller(request).require_monitor()
    ctx = context(request)
    if request.match_info["node"] != ctx.node:
        raise object_not_found()
    return reply_item(request, _node_or_name(ctx, request))


def _memory(ctx: Context) -> dict[str, Any]:
    """The node's memory by use, under RabbitMQ's ``rabbit_vm:memory()`` names where
    kiltmq has the same use: the messages of queues (``queue_procs``), deliveries and
    transactions held by channels (``connection_channels``), messages being read
    (``connection_readers``) and write buffers (``connection_writers``), as the memory
    alarm counts them; the rest of the process is ``other_system``. ``total``: the
    resident set size (``rss``, the strategy)."""
    use = ctx.broker.memory_use()
    parts = {
        "connection_readers": use.partial,
        "connection_writers": use.outbound,
        "connection_channels": use.unacked + use.uncommitted,
        "queue_procs": use.ready,
    }
    rss = resident_memory() or use.total
    parts["other_system"] = max(0, rss - sum(parts.values()))
    return {**parts, "strategy": "rss", "total": {"rss": rss}}


def _percent(part: int, total: int) -> int:
    """As RabbitMQ's relative figures: rounded, and 1 rather than 0 for a non-zero part."""
    shown = round(part * 100 / total) if total else 0
    return 1 if shown == 0 and part else shown


@routes.get("/api/nodes/{node}/memory")
async def node_memory(request: web.Request) -> web.Response:
    return reply_item(request, {"memory": _memory(_this_node(request))})


@routes.get("/api/nodes/{node}/memory/relative")
async def node_memory_relative(request: web.Request) -> web.Response:
    memory = _memory(_this_node(request))
    total = memory["total"]["rss"]
    relative = {"total": 100}
    for key, value in memory.items():
        if key not in ("total", "strategy"):
            relative[key] = _percent(value, total)
    return reply_item(request, {"memory": relative})


def _this_node(request: web.Request) -> Context:
    """The context, after checking that the caller is a monitor and ``{node}`` is this
    node (404)."""
    caller(request).require_monitor()
    ctx = context(request)
    if request.match_info["node"] != ctx.node:
        raise object_not_found()
    return ctx


@routes.get("/api/auth/attempts/{node}")
async def auth_attempts(request: web.Request) -> web.Response:
    return json_reply(_this_node(request).broker.auth.attempts.items())


@routes.delete("/api/auth/attempts/{node}")
async def reset_auth_attempts(request: web.Request) -> web.Response:
    _this_node(request).broker.auth.attempts.reset()
    return web.Response(status=204)


@routes.get("/api/auth/attempts/{node}/source")
async def auth_attempts_by_source(request: web.Request) -> web.Response:
    """Attempts by remote address and user: not tracked (RabbitMQ's default,
    ``track_auth_attempt_source`` false, gives the same empty list)."""
    _this_node(request)
    return json_reply([])


@routes.get("/api/whoami")
async def whoami(request: web.Request) -> web.Response:
    who = caller(request)
    return json_reply({"name": who.name, "tags": sorted(who.tags)})


@routes.get("/api/extensions")
async def extensions(request: web.Request) -> web.Response:
    return json_reply([])


@routes.get("/api/cluster-name")
async def cluster_name(request: web.Request) -> web.Response:
    return json_reply({"name": context(request).cluster_name})


@routes.get("/api/auth")
async def auth_settings(request: web.Request) -> web.Response:
    """How the web UI logs in: basic authentication only (no OAuth 2)."""
    return json_reply({"enable_uaa": False, "uaa_client_id": "", "uaa_location": ""})
