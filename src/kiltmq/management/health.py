"""Health checks: ``/api/health/checks/alarms``, ``local-alarms``,
``port-listener/{port}``, ``virtual-hosts``, ``node-is-quorum-critical`` and
``/api/aliveness-test/{vhost}``: 200 ``{"status": "ok"}`` or 503 ``{"status":
"failed", ...}`` as RabbitMQ answers them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kiltmq.broker.alarm import shown
from kiltmq.broker.user_actions import UserActions
from kiltmq.management.context import caller, context, vhost_param
from kiltmq.management.errors import bad_request
from kiltmq.management.listing import json_reply

__all__ = ["ALIVENESS_QUEUE", "routes"]

routes = web.RouteTableDef()

#: The queue the aliveness test declares (and leaves, as RabbitMQ does).
ALIVENESS_QUEUE = "aliveness-test"


def _ok(extra: dict[str, Any] | None = None) -> web.Response:
    return json_reply({"status": "ok", **(extra or {})})


def _failed(reason: str, extra: dict[str, Any] | None = None) -> web.Response:
    return json_reply({"status": "failed", "reason": reason, **(extra or {})}, 503)


def _alarms(request: web.Request, reason: str) -> web.Response:
    ctx = context(request)
    if ctx.broker.alarms:
        resources = sorted({shown(r) for r in ctx.broker.alarms})
        found = [{"node": ctx.node, "resource": r} for r in resources]
        return _failed(reason, {"alarms": found})
    return _ok()


@routes.get("/api/health/checks/alarms")
async def alarms(request: web.Request) -> web.Response:
    return _alarms(request, "There are alarms in effect in the cluster")


@routes.get("/api/health/checks/local-alarms")
async def local_alarms(request: web.Request) -> web.Response:
    return _alarms(request, "There are alarms in effect on the node")


@routes.get("/api/health/checks/port-listener/{port}")
async def port_listener(request: web.Request) -> web.Response:
    try:
        port = int(request.match_info["port"])
    except ValueError:
        raise bad_request("Invalid port") from None
    ctx = context(request)
    ports = list(ctx.broker.ports)
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sockname, tuple):
        ports.append(int(sockname[1]))
    if port in ports:
        return _ok({"port": port})
    return _failed("No active listener", {"missing": port, "ports": ports})


@routes.get("/api/healthchecks/node")
async def node_health(request: web.Request) -> web.Response:
    """The older, deprecated node check: the node runs."""
    return _ok()


@routes.get("/api/health/checks/virtual-hosts")
async def virtual_hosts(request: web.Request) -> web.Response:
    return _ok()


@routes.get("/api/health/checks/node-is-quorum-critical")
async def quorum_critical(request: web.Request) -> web.Response:
    return _ok({"reason": "single node cluster"})


@routes.get("/api/aliveness-test/{vhost}")
async def aliveness(request: web.Request) -> web.Response:
    """Declare a queue, publish a message to it and get it back."""
    vhost = vhost_param(request)
    ctx = context(request)
    actions = UserActions(ctx.broker, caller(request).name)
    actions.declare_queue(vhost, ALIVENESS_QUEUE, durable=False)
    actions.publish(vhost, "", ALIVENESS_QUEUE, b"test_message")
    fetched = actions.get(vhost, ALIVENESS_QUEUE, 1, "ack_requeue_false")
    if fetched and fetched[0].body == b"test_message":
        return _ok()
    return _failed("aliveness test failed")
