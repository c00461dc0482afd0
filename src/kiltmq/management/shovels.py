"""Dynamic shovels that move messages between queues of this broker: the ``shovel``
component of ``/api/parameters`` and ``/api/shovels[/{vhost}]``, as RabbitMQ's shovel
plugin shows them.

A shovel here moves a fixed number of messages (``src-delete-after``: ``queue-length``
or a count) from a queue to a queue, both reached with ``amqp://`` URIs without a host
(this broker), then its parameter goes away (see
:mod:`~kiltmq.broker.shovel_parameter`); it is kept in the store until then, and goes on
after a restart (:mod:`~kiltmq.broker.shovel`). Other forms (remote brokers, exchanges,
AMQP 1.0, shovels that never end) are refused with a 400."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kiltmq.broker.queue.stream import StreamQueue
from kiltmq.broker.shovel import Shovel
from kiltmq.broker.shovel_parameter import ShovelInvalid, ShovelParameter
from kiltmq.management.context import caller, context
from kiltmq.management.errors import bad_request, not_authorised
from kiltmq.management.listing import reply_list

__all__ = ["COMPONENT", "parameter", "parameter_items", "routes", "start"]

routes = web.RouteTableDef()

COMPONENT = "shovel"


def _invalid(reason: str) -> Exception:
    return bad_request(f"Validation failed\n\n{reason}\n")


def parameter(value: Any) -> ShovelParameter:
    """The shovel ``value`` describes; RabbitMQ's 400 if kiltmq cannot run it."""
    try:
        return ShovelParameter.parse(value)
    except ShovelInvalid as error:
        raise _invalid(str(error)) from None


def start(request: web.Request, vhost: str, name: str, value: Any) -> None:
    """Start the shovel ``name`` of ``vhost`` described by the parameter ``value``."""
    shovel = parameter(value)
    ctx = context(request)
    who = caller(request)
    actions = ctx.actions(who)
    for key, target in (("src-uri", shovel.src_vhost), ("dest-uri", shovel.dest_vhost)):
        if target not in ctx.broker.vhosts:
            raise _invalid(f"{key}: no vhost {target!r}")
        if not who.is_admin and target not in who.login_vhosts(ctx.broker):
            raise not_authorised("User not authorised to access object")
    source = actions.queue_to("read", shovel.src_vhost, shovel.src_queue)
    destination = actions.queue_to("write", shovel.dest_vhost, shovel.dest_queue)
    if source is destination:
        raise _invalid("src-queue and dest-queue are the same queue")
    if isinstance(source, StreamQueue):
        raise _invalid("kiltmq shovels do not move messages out of streams")
    ctx.shovels.start(vhost, name, source, destination, shovel.count, dict(value))


def parameter_items(request: web.Request, vhost: str | None) -> list[dict[str, Any]]:
    return [
        {"value": s.value, "vhost": s.vhost, "component": COMPONENT, "name": s.name}
        for s in context(request).shovels.all(vhost)
    ]


def stop(request: web.Request, vhost: str, name: str) -> bool:
    return context(request).shovels.stop(vhost, name)


def _status(request: web.Request, shovel: Shovel) -> dict[str, Any]:
    value = shovel.value
    item: dict[str, Any] = {
        "node": context(request).node,
        "timestamp": shovel.started.strftime("%Y-%m-%d %H:%M:%S"),
        "name": shovel.name,
        "vhost": shovel.vhost,
        "type": "dynamic",
        "state": shovel.state,
    }
    if shovel.state == "running":
        item.update({
            "src_protocol": "amqp091",
            "dest_protocol": "amqp091",
            "src_uri": value.get("src-uri"),
            "dest_uri": value.get("dest-uri"),
            "src_queue": value.get("src-queue"),
            "dest_queue": value.get("dest-queue"),
        })
    else:
        item["reason"] = shovel.reason
    return item


def _statuses(request: web.Request, vhost: str | None) -> list[dict[str, Any]]:
    visible = caller(request).visible_vhosts(context(request).broker)
    return [
        _status(request, s) for s in context(request).shovels.all(vhost) if s.vhost in visible
    ]


@routes.get("/api/shovels")
async def list_shovels(request: web.Request) -> web.Response:
    return reply_list(request, _statuses(request, None), ("vhost", "name"))


@routes.get("/api/shovels/{vhost}")
async def vhost_shovels(request: web.Request) -> web.Response:
    vhost = request.match_info["vhost"]
    caller(request).require_vhost(context(request).broker, vhost)
    return reply_list(request, _statuses(request, vhost), ("name",))
