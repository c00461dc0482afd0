"""Exchanges: ``/api/exchanges[/{vhost}[/{name}]]`` (GET, PUT, DELETE with ``if-unused``),
``/api/exchanges/{vhost}/{name}/publish`` (POST, answers ``{"routed": ...}``) and
``/api/exchanges/{vhost}/{name}/bindings/source|destination``. Declarations, deletions
and publishes are done as the calling user, with that user's permissions."""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from kiltmq.broker.snapshots import ExchangeInfo
from kiltmq.management.bindings import bindings_of, exchange_name
from kiltmq.management.context import Context, caller, context, vhost_param
from kiltmq.management.errors import (
    ApiError,
    amqp_failure,
    bad_request,
    object_not_found,
    vhost_not_found,
)
from kiltmq.management.listing import (
    Item,
    json_reply,
    reply_item,
    reply_list,
    reply_rows,
    wanted,
)
from kiltmq.management.message_json import plain, properties_from_json
from kiltmq.management.request import body, disable_stats, flag, require, text
from kiltmq.management.stats import exchange_stats
from kiltmq.protocol.errors import AMQPError

__all__ = ["routes"]

routes = web.RouteTableDef()


def exchange_item(
    ctx: Context, vhost: str, x: ExchangeInfo, keys: frozenset[str] | None = None,
    *, stats: bool = True,
) -> dict[str, Any]:
    """An exchange's JSON; with ``keys``, at least those keys; without ``stats``, no
    ``message_stats``."""
    item: dict[str, Any] = {
        "name": x.name,
        "vhost": vhost,
        "type": x.type,
        "durable": x.durable,
        "auto_delete": x.auto_delete,
        "internal": x.internal,
        "arguments": plain(x.arguments),
    }
    if x.policy is not None:  # RabbitMQ shows the key only when a policy applies
        item["policy"] = x.policy
    if stats and wanted(keys, "message_stats"):
        rates = ctx.sampler.rates(("exchange", vhost, x.name), 2)
        counted = exchange_stats(x.publish_in, x.publish_out, rates)
        if counted is not None:
            item["message_stats"] = counted
    return item


def _list(request: web.Request, vhosts: list[str]) -> web.Response:
    ctx = context(request)
    rows = [(v, x) for v in vhosts for x in ctx.admin.exchanges(v)]
    # ?disable_stats=true: no message_stats in lists (RabbitMQ's single exchange keeps them)
    stats = not disable_stats(request)

    def build(shown: Sequence[tuple[str, ExchangeInfo]], keys: frozenset[str] | None) -> list[Item]:
        return [exchange_item(ctx, v, x, keys, stats=stats) for v, x in shown]

    return reply_rows(request, rows, build)


@routes.get("/api/exchanges")
async def list_exchanges(request: web.Request) -> web.Response:
    visible = caller(request).visible_vhosts(context(request).broker)
    return _list(request, sorted(visible))


@routes.get("/api/exchanges/{vhost}")
async def vhost_exchanges(request: web.Request) -> web.Response:
    return _list(request, [vhost_param(request)])


def _exchange(request: web.Request) -> tuple[str, ExchangeInfo]:
    vhost = vhost_param(request)
    name = exchange_name(request.match_info["name"])
    for x in context(request).admin.exchanges(vhost):
        if x.name == name:
            return vhost, x
    raise object_not_found()


@routes.get("/api/exchanges/{vhost}/{name}")
async def get_exchange(request: web.Request) -> web.Response:
    vhost, x = _exchange(request)
    item = exchange_item(context(request), vhost, x)
    item["incoming"] = []
    item["outgoing"] = []
    return reply_item(request, item)


@routes.put("/api/exchanges/{vhost}/{name}")
async def put_exchange(request: web.Request) -> web.Response:
    ctx = context(request)
    name = request.match_info["vhost"]
    caller(request).require_vhost(ctx.broker, name)
    values = await body(request)
    if name not in ctx.broker.vhosts:
        raise vhost_not_found()
    xname = exchange_name(request.match_info["name"])
    existed = xname in ctx.admin.vhost(name).exchanges
    arguments = values.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise bad_request("arguments must be an object")
    try:
        ctx.actions(caller(request)).declare_exchange(
            name,
            xname,
            text(values, "type", "direct"),
            durable=flag(values, "durable", False),
            auto_delete=flag(values, "auto_delete", False),
            internal=flag(values, "internal", False),
            arguments=arguments,
        )
    except AMQPError as error:
        raise amqp_failure(error) from None
    await ctx.admin.committed()
    return web.Response(status=204 if existed else 201)


@routes.delete("/api/exchanges/{vhost}/{name}")
async def delete_exchange(request: web.Request) -> web.Response:
    vhost, x = _exchange(request)
    ctx = context(request)
    try:
        ctx.actions(caller(request)).delete_exchange(
            vhost, x.name, if_unused=request.query.get("if-unused") == "true"
        )
    except AMQPError as error:
        raise amqp_failure(error) from None
    await ctx.admin.committed()
    return web.Response(status=204)


@routes.post("/api/exchanges/{vhost}/{name}/publish")
async def publish(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = vhost_param(request)
    values = await body(request)
    require(values, ("routing_key", "properties", "payload", "payload_encoding"))
    encoding = values["payload_encoding"]
    payload = values["payload"]
    if not isinstance(payload, str):
        raise bad_request("payload must be a string")
    if encoding == "string":
        data = payload.encode()
    elif encoding == "base64":
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "bad_request", ["not_base64", payload]) from None
    else:
        raise ApiError(400, "bad_request", ["unsupported_encoding", encoding])
    properties = properties_from_json(values["properties"])
    name = exchange_name(request.match_info["name"])
    try:
        routed = ctx.actions(caller(request)).publish(
            vhost, name, text(values, "routing_key"), data, properties
        )
    except (ValueError, OverflowError, struct.error) as error:  # cannot be encoded
        raise bad_request(str(error)) from None
    except AMQPError as error:
        if error.reply_code == 404:  # RabbitMQ learns it from the channel's close
            raise bad_request(f"404 {error.reply_text}") from None
        raise amqp_failure(error, with_code=True) from None
    return json_reply({"routed": routed})


@routes.get("/api/exchanges/{vhost}/{name}/bindings/source")
async def bindings_source(request: web.Request) -> web.Response:
    vhost, x = _exchange(request)
    items = [b for b in bindings_of(request, vhost) if b["source"] == x.name]
    return reply_list(request, items, ())


@routes.get("/api/exchanges/{vhost}/{name}/bindings/destination")
async def bindings_destination(request: web.Request) -> web.Response:
    vhost, x = _exchange(request)
    items = [
        b for b in bindings_of(request, vhost)
        if b["destination_type"] == "exchange" and b["destination"] == x.name
    ]
    return reply_list(request, items, ())
