"""Bindings: ``/api/bindings[/{vhost}]``, ``/api/bindings/{vhost}/e/{source}/{q|e}/{dest}``
(GET, POST returning the new binding's ``Location``) and
``.../{props}`` (GET, DELETE), where ``props`` is the binding's ``properties_key``: its
routing key, then ``~`` and a digest of its arguments when it has any."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import quote

from aiohttp import web

from kiltmq.broker.snapshots import BindingInfo
from kiltmq.management.context import caller, context, vhost_param
from kiltmq.management.errors import amqp_failure, bad_request, object_not_found
from kiltmq.management.listing import reply_item, reply_list, reply_rows
from kiltmq.management.message_json import plain
from kiltmq.management.request import body, text
from kiltmq.protocol.errors import AMQPError

__all__ = ["binding_item", "bindings_of", "exchange_name", "properties_key", "routes"]

routes = web.RouteTableDef()

_KINDS = {"q": "queue", "e": "exchange"}


def exchange_name(name: str) -> str:
    """``amq.default`` in a path names the default exchange, ``""``."""
    return "" if name == "amq.default" else name


def properties_key(routing_key: str, arguments: dict[str, Any]) -> str:
    if not arguments:
        return quote(routing_key, safe="") if routing_key else "~"
    digest = hashlib.md5(json.dumps(arguments, sort_keys=True, default=str).encode()).digest()
    tail = base64.urlsafe_b64encode(digest[:6]).decode().rstrip("=")
    return f"{quote(routing_key, safe='')}~{tail}"


def binding_item(vhost: str, b: BindingInfo) -> dict[str, Any]:
    arguments = plain(b.arguments)
    return {
        "source": b.source,
        "vhost": vhost,
        "destination": b.destination,
        "destination_type": b.destination_type,
        "routing_key": b.routing_key,
        "arguments": arguments,
        "properties_key": properties_key(b.routing_key, arguments),
    }


def bindings_of(request: web.Request, vhost: str) -> list[dict[str, Any]]:
    return [binding_item(vhost, b) for b in context(request).admin.bindings(vhost)]


def _all(request: web.Request, vhosts: list[str]) -> web.Response:
    admin = context(request).admin
    rows = [(v, b) for v in vhosts for b in admin.bindings(v)]
    return reply_rows(
        request, rows, lambda shown, _keys: [binding_item(v, b) for v, b in shown], ()
    )


@routes.get("/api/bindings")
async def list_bindings(request: web.Request) -> web.Response:
    ctx = context(request)
    return _all(request, sorted(caller(request).visible_vhosts(ctx.broker)))


@routes.get("/api/bindings/{vhost}")
async def vhost_bindings(request: web.Request) -> web.Response:
    return _all(request, [vhost_param(request)])


def _ends(request: web.Request) -> tuple[str, str, str, str]:
    """(vhost, source, destination kind, destination), after checking both exist."""
    vhost = vhost_param(request)
    kind = _KINDS.get(request.match_info["kind"])
    if kind is None:
        raise object_not_found()
    source = exchange_name(request.match_info["source"])
    destination = request.match_info["destination"]
    if kind == "exchange":
        destination = exchange_name(destination)
    host = context(request).admin.vhost(vhost)
    if source not in host.exchanges:
        raise object_not_found()
    if kind == "queue" and destination not in host.queues:
        return vhost, source, kind, destination  # the bind itself says "no queue"
    if kind == "exchange" and destination not in host.exchanges:
        raise object_not_found()
    return vhost, source, kind, destination


def _between(request: web.Request) -> list[dict[str, Any]]:
    vhost, source, kind, destination = _ends(request)
    return [
        item for item in bindings_of(request, vhost)
        if item["source"] == source and item["destination_type"] == kind
        and item["destination"] == destination
    ]


_PAIR = "/api/bindings/{vhost}/e/{source}/{kind:[qe]}/{destination}"


@routes.get(_PAIR)
async def get_bindings_between(request: web.Request) -> web.Response:
    return reply_list(request, _between(request), ())


@routes.post(_PAIR)
async def post_binding(request: web.Request) -> web.Response:
    vhost, source, kind, destination = _ends(request)
    values = await body(request)
    routing_key = text(values, "routing_key")
    arguments = values.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise bad_request("arguments must be an object")
    actions = context(request).actions(caller(request))
    try:
        actions.bind(vhost, source, kind, destination, routing_key, arguments)
    except AMQPError as error:
        raise amqp_failure(error) from None
    await context(request).admin.committed()
    # the properties key is percent-encoded already; RabbitMQ encodes it once more here
    key = quote(properties_key(routing_key, arguments), safe="~")
    location = f"{quote(request.match_info['destination'], safe='')}/{key}"
    return web.Response(status=201, headers={"Location": location})


def _one(request: web.Request) -> dict[str, Any]:
    props = quote(request.match_info["props"], safe="~")
    for item in _between(request):
        if item["properties_key"] == props:
            return item
    raise object_not_found()


@routes.get(_PAIR + "/{props}")
async def get_binding(request: web.Request) -> web.Response:
    return reply_item(request, _one(request))


@routes.delete(_PAIR + "/{props}")
async def delete_binding(request: web.Request) -> web.Response:
    item = _one(request)
    actions = context(request).actions(caller(request))
    try:
        actions.unbind(
            item["vhost"], item["source"], item["destination_type"], item["destination"],
            item["routing_key"], item["arguments"],
        )
    except AMQPError as error:
        raise amqp_failure(error) from None
    await context(request).admin.committed()
    return web.Response(status=204)
