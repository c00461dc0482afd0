"""Health checks: ``/api/health/checks/alarms``, ``local-alarms``,
``port-listener/{port}``, ``protocol-listener/{protocol}``,
``certificate-expiration/{within}/{unit}``, ``virtual-hosts``,
``node-is-quorum-critical``, ``node-is-mirror-sync-critical``,
``/api/healthchecks/node[/{node}]`` and ``/api/aliveness-test/{vhost}``: 200
``{"status": "ok"}`` or 503 ``{"status": "failed", ...}`` as RabbitMQ answers them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from kiltmq.broker.alarm import shown
from kiltmq.broker.certificates import certificate_ends
from kiltmq.broker.user_actions import UserActions
from kiltmq.management.context import caller, context, vhost_param
from kiltmq.management.errors import bad_request, object_not_found
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


@routes.get("/api/healthchecks/node/{node}")
async def named_node_health(request: web.Request) -> web.Response:
    if request.match_info["node"] != context(request).node:
        raise object_not_found()
    return _ok()


#: RabbitMQ's other names of the protocols it lists listeners by (those kiltmq serves).
PROTOCOL_NAMES = {
    **dict.fromkeys(
        ("amqp091", "amqp0.9.1", "amqp0-9-1", "amqp0_9_1", "amqp10", "amqp1.0", "amqp1-0",
         "amqp1_0"), "amqp"),
    "amqps": "amqp/ssl",
    **dict.fromkeys(
        ("http1", "http1.1", "http_api", "management", "management_ui", "ui"), "http"),
}


def _protocols(request: web.Request) -> list[str]:
    """The protocols of the broker's listeners, as RabbitMQ names them."""
    broker = context(request).broker
    found = ["http"]  # this API
    if getattr(broker, "prometheus_url", None) is not None:
        found.append("http/prometheus")
    if broker.ports:
        found.append("amqp")
    endpoints = getattr(broker, "endpoints", [])
    if any(e.tls is not None for e in endpoints):
        found.append("amqp/ssl")
    return found


@routes.get("/api/health/checks/protocol-listener/{protocol}")
async def protocol_listener(request: web.Request) -> web.Response:
    given = request.match_info["protocol"].lower()
    protocol = PROTOCOL_NAMES.get(given, given)
    protocols = _protocols(request)
    if protocol in protocols:
        return _ok({"protocol": protocol})
    return _failed("No active listener", {"missing": protocol, "protocols": protocols})


#: Seconds in each unit the certificate check takes (RabbitMQ's).
_UNITS = {"days": 86400, "weeks": 7 * 86400, "months": 30 * 86400, "years": 365 * 86400}


@routes.get("/api/health/checks/certificate-expiration/{within}/{unit}")
async def certificate_expiration(request: web.Request) -> web.Response:
    """Whether a TLS listener's certificate (or its CA file's) expires within the given
    time."""
    try:
        within = int(request.match_info["within"])
    except ValueError:
        raise bad_request("Invalid expiration value.") from None
    seconds = _UNITS.get(request.match_info["unit"].lower())
    if seconds is None:
        raise bad_request(
            "Time unit not recognised. Supported units: days, weeks, months, years."
        )
    ctx = context(request)
    tls = getattr(ctx.broker, "tls", None)
    endpoints = [e for e in getattr(ctx.broker, "endpoints", []) if e.tls is not None]
    if tls is None or not endpoints:
        return _ok()
    deadline = time.time() + within * seconds
    expiring = []
    for endpoint in endpoints:
        cert = _expiring(tls.certfile, deadline)
        ca = _expiring(tls.cafile, deadline)
        if cert or ca:
            expiring.append({
                "node": ctx.node, "protocol": "amqp/ssl", "interface": endpoint.host or "0.0.0.0",
                "port": endpoint.port, "certfile": tls.certfile, "cacertfile": tls.cafile,
                "certfile_expires_on": cert, "cacertfile_expires_on": ca,
            })
    if expiring:
        return json_reply(
            {"status": "failed", "reason": "Certificates expiring", "expired": expiring}, 503
        )
    return _ok()


def _expiring(path: str | None, deadline: float) -> list[str]:
    """When the certificates of a PEM file that expire before ``deadline`` expire
    (RabbitMQ's "2026-12-31 9:59:59" form, UTC)."""
    if path is None:
        return []
    try:
        with open(path, encoding="ascii", errors="replace") as pem:
            ends = certificate_ends(pem.read())
    except OSError:
        return []
    moments = [datetime.fromtimestamp(end, UTC) for end in ends if end < deadline]
    return [f"{d:%Y-%m-%d} {d.hour}:{d:%M:%S}" for d in moments]


@routes.get("/api/health/checks/node-is-mirror-sync-critical")
async def mirror_sync_critical(request: web.Request) -> web.Response:
    """No classic mirrored queues: nothing is left without a synchronised mirror."""
    return _ok({"reason": "single node cluster"})


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
