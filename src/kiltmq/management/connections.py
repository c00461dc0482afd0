"""Connections, channels and consumers: ``/api/connections[/{name}[/channels]]``
(DELETE closes, the ``X-Reason`` header as the close text), ``/api/channels[/{name}]``,
``/api/consumers[/{vhost}]`` and the per-vhost lists ``/api/vhosts/{vhost}/connections``
and ``/api/vhosts/{vhost}/channels``.

Users see their own connections and channels; monitors and administrators see all, and
only administrators (or the owner) may close a connection."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kiltmq.broker.monitor import ChannelDetail, ConnectionDetail, ConsumerDetail
from kiltmq.management.context import Context, caller, context, vhost_param
from kiltmq.management.errors import bad_request, not_authorised, object_not_found
from kiltmq.management.listing import reply_item, reply_list, reply_rows, wanted
from kiltmq.management.message_json import plain
from kiltmq.management.request import disable_stats
from kiltmq.management.stats import (
    CHANNEL_FIELDS,
    Range,
    message_stats,
    object_history,
    with_rates,
)

__all__ = ["channel_details", "consumer_item", "routes"]

routes = web.RouteTableDef()


def connection_item(
    ctx: Context, c: ConnectionDetail, keys: frozenset[str] | None = None
) -> dict[str, Any]:
    """A connection's JSON; with ``keys``, at least those keys."""
    item: dict[str, Any] = {
        "name": c.name,
        "node": ctx.node,
        "type": "network",
        "state": "blocked" if c.blocked else "running",
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
        "protocol": c.protocol,
        "auth_mechanism": "PLAIN",
        "host": c.host,
        "port": c.port,
        "peer_host": c.peer_host,
        "peer_port": c.peer_port,
        "ssl": False,
        "peer_cert_issuer": None,
        "peer_cert_subject": None,
        "peer_cert_validity": None,
        "ssl_cipher": None,
        "ssl_hash": None,
        "ssl_key_exchange": None,
        "ssl_protocol": None,
        "channels": c.channels,
        "channel_max": c.channel_max,
        "frame_max": c.frame_max,
        "timeout": c.heartbeat,
        "connected_at": int(c.connected_at * 1000),
    }
    if wanted(keys, "client_properties"):
        item["client_properties"] = plain(c.client_properties)
    if c.user_provided_name is not None:
        item["user_provided_name"] = c.user_provided_name
    if wanted(keys, "recv_oct", "recv_oct_details", "send_oct", "send_oct_details"):
        rates = ctx.sampler.rates(("connection", c.name), 2)
        with_rates(item, {"recv_oct": c.recv_oct, "send_oct": c.send_oct}, rates)
    if wanted(keys, "recv_cnt", "send_cnt"):
        item["recv_cnt"] = c.recv_cnt
        item["send_cnt"] = c.send_cnt
    return item


def channel_details(c: ChannelDetail, node: str) -> dict[str, Any]:
    """The ``channel_details`` of a consumer."""
    conn = c.connection
    return {
        "connection_name": conn.name,
        "name": c.name,
        "node": node,
        "number": c.number,
        "peer_host": conn.peer_host,
        "peer_port": conn.peer_port,
        "user": conn.user,
    }


def consumer_item(c: ConsumerDetail, node: str) -> dict[str, Any]:
    return {
        "consumer_tag": c.tag,
        "queue": {"name": c.queue, "vhost": c.vhost},
        "channel_details": channel_details(c.channel, node),
        "ack_required": not c.no_ack,
        "exclusive": c.exclusive,
        "prefetch_count": c.prefetch_count,
        "active": c.active,
        "activity_status": "up" if c.active else "waiting",
        "arguments": plain(c.arguments),
    }


def channel_item(
    ctx: Context, c: ChannelDetail, keys: frozenset[str] | None = None
) -> dict[str, Any]:
    """A channel's JSON; with ``keys``, at least those keys."""
    conn = c.connection
    item: dict[str, Any] = {
        "name": c.name,
        "node": ctx.node,
        "number": c.number,
        "user": conn.user,
        "user_who_performed_action": conn.user,
        "vhost": conn.vhost,
        "state": "running",
        "connection_details": {
            "name": conn.name,
            "peer_host": conn.peer_host,
            "peer_port": conn.peer_port,
        },
        "consumer_count": c.consumers,
        "prefetch_count": c.prefetch_count,
        "global_prefetch_count": c.global_prefetch_count,
        "messages_unacknowledged": c.unacked,
        "messages_unconfirmed": c.unconfirmed,
        "messages_uncommitted": 0,
        "acks_uncommitted": 0,
        "confirm": c.confirm,
        "transactional": c.transactional,
    }
    key = ("channel", c.name)
    if wanted(keys, "message_stats"):
        stats = message_stats(c.counts, ctx.sampler.rates(key, 11), CHANNEL_FIELDS)
        if stats is not None:
            item["message_stats"] = stats
    if wanted(keys, "idle_since"):
        idle = ctx.sampler.idle_since(key)
        if idle is not None:
            item["idle_since"] = idle
    return item


def _connections(request: web.Request, vhost: str | None = None) -> list[ConnectionDetail]:
    who = caller(request)
    return [c for c in context(request).monitor.connections(vhost) if who.sees_user(c.user)]


def _channels(request: web.Request, vhost: str | None = None) -> list[ChannelDetail]:
    who = caller(request)
    return [
        c for c in context(request).monitor.channels(vhost) if who.sees_user(c.connection.user)
    ]


def _connection(request: web.Request) -> ConnectionDetail:
    name = request.match_info["name"]
    for conn in context(request).monitor.connections():
        if conn.name == name:
            if not caller(request).sees_user(conn.user):
                raise not_authorised("User not authorised to access object")
            return conn
    raise object_not_found()


#: What ?disable_stats=true refuses, as RabbitMQ does (channels and consumers are
#: statistics there).
STATS_DISABLED = "Stats in management UI are disabled on this node"


def _stats_needed(request: web.Request) -> None:
    if disable_stats(request):
        raise bad_request(STATS_DISABLED)


def _reply_connections(
    request: web.Request, rows: list[ConnectionDetail], *, tracked: bool = False
) -> web.Response:
    ctx = context(request)
    if tracked and disable_stats(request):  # RabbitMQ's tracked connections: no statistics
        return reply_list(request, [
            {"name": c.name, "node": ctx.node, "user": c.user, "vhost": c.vhost} for c in rows
        ])
    return reply_rows(
        request, rows, lambda shown, keys: [connection_item(ctx, c, keys) for c in shown]
    )


def _reply_channels(request: web.Request, rows: list[ChannelDetail]) -> web.Response:
    ctx = context(request)
    return reply_rows(
        request, rows, lambda shown, keys: [channel_item(ctx, c, keys) for c in shown]
    )


@routes.get("/api/connections")
async def list_connections(request: web.Request) -> web.Response:
    return _reply_connections(request, _connections(request), tracked=True)


@routes.get("/api/vhosts/{vhost}/connections")
async def vhost_connections(request: web.Request) -> web.Response:
    return _reply_connections(request, _connections(request, vhost_param(request)))


@routes.get("/api/connections/{name}")
async def get_connection(request: web.Request) -> web.Response:
    ctx = context(request)
    conn = _connection(request)
    if disable_stats(request):
        return reply_item(request, {"name": conn.name})
    item = connection_item(ctx, conn)
    object_history(
        item, ctx.sampler, ("connection", conn.name), ("recv_oct", "send_oct"),
        Range.of(request.query, "data_rates"),
    )
    return reply_item(request, item)


@routes.delete("/api/connections/{name}")
async def close_connection(request: web.Request) -> web.Response:
    conn = _connection(request)
    who = caller(request)
    if not who.is_admin and conn.user != who.name:
        raise not_authorised("User not authorised to access object")
    reason = request.headers.get("X-Reason", "Closed via management plugin")
    admin = context(request).admin
    peer = f"{conn.peer_host}:{conn.peer_port}"
    admin.close_connections(
        admin.open_connections(vhost=conn.vhost, name_or_peer=peer),
        f"CONNECTION_FORCED - {reason}",
    )
    return web.Response(status=204)


@routes.get("/api/connections/{name}/channels")
async def connection_channels(request: web.Request) -> web.Response:
    conn = _connection(request)
    channels = context(request).monitor.channels(conn.vhost)
    return _reply_channels(request, [c for c in channels if c.connection.name == conn.name])


@routes.get("/api/channels")
async def list_channels(request: web.Request) -> web.Response:
    _stats_needed(request)
    return _reply_channels(request, _channels(request))


@routes.get("/api/vhosts/{vhost}/channels")
async def vhost_channels(request: web.Request) -> web.Response:
    _stats_needed(request)
    return _reply_channels(request, _channels(request, vhost_param(request)))


@routes.get("/api/channels/{name}")
async def get_channel(request: web.Request) -> web.Response:
    _stats_needed(request)
    ctx = context(request)
    name = request.match_info["name"]
    for channel in _channels(request):
        if channel.name == name:
            item = channel_item(ctx, channel)
            item["consumer_details"] = [
                consumer_item(c, ctx.node)
                for c in ctx.monitor.consumers(channel.connection.vhost)
                if c.channel.name == name
            ]
            return reply_item(request, item)
    raise object_not_found()


@routes.get("/api/consumers")
async def list_consumers(request: web.Request) -> web.Response:
    _stats_needed(request)
    ctx = context(request)
    visible = caller(request).visible_vhosts(ctx.broker)
    items = [
        consumer_item(c, ctx.node) for c in ctx.monitor.consumers() if c.vhost in visible
    ]
    return reply_list(request, items, ("queue.vhost", "queue.name"))


@routes.get("/api/consumers/{vhost}")
async def vhost_consumers(request: web.Request) -> web.Response:
    vhost = vhost_param(request)
    _stats_needed(request)
    ctx = context(request)
    items = [consumer_item(c, ctx.node) for c in ctx.monitor.consumers(vhost)]
    return reply_list(request, items, ("queue.vhost", "queue.name"))
