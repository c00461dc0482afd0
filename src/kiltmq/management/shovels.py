"""Dynamic shovels that move messages between queues of this broker: the ``shovel``
component of ``/api/parameters`` and ``/api/shovels[/{vhost}]``, as RabbitMQ's shovel
plugin shows them.

A shovel here moves a fixed number of messages (``src-delete-after``: ``queue-length``
or a count) from a queue to a queue, both reached with ``amqp://`` URIs without a host
(this broker), then its parameter goes away. Other forms (remote brokers, exchanges,
AMQP 1.0, shovels that never end) are refused with a 400."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp import web

from kiltmq.broker.queue.stream import StreamQueue
from kiltmq.broker.shovel import Shovel
from kiltmq.management.context import caller, context
from kiltmq.management.errors import bad_request, not_authorised
from kiltmq.management.listing import reply_list

__all__ = ["COMPONENT", "parameter_items", "routes", "start"]

routes = web.RouteTableDef()

COMPONENT = "shovel"
ACK_MODES = ("on-confirm", "on-publish", "no-ack")
#: Keys taken and ignored: they change nothing for a move within the broker.
IGNORED = ("src-prefetch-count", "reconnect-delay")
#: Keys taken only with their default (false): they would change the moved messages.
FALSE_ONLY = ("dest-add-forward-headers", "dest-add-timestamp-header")
KNOWN = (
    "src-protocol", "dest-protocol", "src-uri", "dest-uri", "src-queue", "dest-queue",
    "src-delete-after", "ack-mode", *IGNORED, *FALSE_ONLY,
)


def _invalid(reason: str) -> Exception:
    return bad_request(f"Validation failed\n\n{reason}\n")


def _local_vhost(value: Mapping[str, Any], key: str) -> str:
    """The vhost of a ``{src,dest}-uri``: this broker's only (``amqp:///vhost``)."""
    uri = value.get(key)
    if isinstance(uri, list) and len(uri) == 1:
        uri = uri[0]
    if not isinstance(uri, str):
        raise _invalid(f"{key} should be an amqp:// URI")
    parts = urlsplit(uri)
    if parts.scheme != "amqp" or parts.netloc or parts.query:
        raise _invalid(
            f"{key} {uri!r} is not supported: kiltmq shovels move messages within this"
            " broker (amqp:///vhost, without a host)"
        )
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return unquote(path) if path else "/"


def _count(value: Mapping[str, Any]) -> int | None:
    after = value.get("src-delete-after", "never")
    if after == "queue-length":
        return None
    if isinstance(after, int) and not isinstance(after, bool) and after > 0:
        return after
    raise _invalid(
        f"src-delete-after {after!r} is not supported: kiltmq shovels move"
        " \"queue-length\" or a number of messages, then stop"
    )


def _check(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _invalid("a shovel should be a JSON object")
    for key in value:
        if key not in KNOWN:
            raise _invalid(f"{key} is not supported by kiltmq shovels")
    for key in ("src-protocol", "dest-protocol"):
        if value.get(key, "amqp091") != "amqp091":
            raise _invalid(f"{key} {value[key]!r} is not supported: only amqp091")
    for key in FALSE_ONLY:
        if value.get(key, False) is not False:
            raise _invalid(f"{key} is not supported by kiltmq shovels")
    if value.get("ack-mode", "on-confirm") not in ACK_MODES:
        raise _invalid(f"ack-mode {value['ack-mode']!r} should be one of {', '.join(ACK_MODES)}")
    for end in ("src", "dest"):
        if not isinstance(value.get(f"{end}-queue"), str):
            raise _invalid(
                f"{end}-queue is required: kiltmq shovels move from a queue to a queue"
            )
    return value


def start(request: web.Request, vhost: str, name: str, value: Any) -> None:
    """Start the shovel ``name`` of ``vhost`` described by the parameter ``value``."""
    value = _check(value)
    count = _count(value)
    ctx = context(request)
    actions = ctx.actions(caller(request))
    for key in ("src-uri", "dest-uri"):
        target = _local_vhost(value, key)
        if target not in ctx.broker.vhosts:
            raise _invalid(f"{key}: no vhost {target!r}")
        if not caller(request).is_admin and target not in caller(request).login_vhosts(
            ctx.broker
        ):
            raise not_authorised("User not authorised to access object")
    source = actions.queue_to("read", _local_vhost(value, "src-uri"), value["src-queue"])
    destination = actions.queue_to(
        "write", _local_vhost(value, "dest-uri"), value["dest-queue"]
    )
    if source is destination:
        raise _invalid("src-queue and dest-queue are the same queue")
    if isinstance(source, StreamQueue):
        raise _invalid("kiltmq shovels do not move messages out of streams")
    ctx.shovels.start(vhost, name, source, destination, count, dict(value))


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
