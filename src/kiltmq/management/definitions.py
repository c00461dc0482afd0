"""Definitions export and import: ``/api/definitions`` and ``/api/definitions/{vhost}``
(GET: RabbitMQ's JSON export, ``?download=FILE`` as an attachment; POST: import, the
JSON as the body or, as the web UI sends it, the ``file`` field of a form);
administrators only. The work is :class:`~kiltmq.broker.definitions.DefinitionsAdmin`'s."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from kiltmq.broker.admin import NotFound
from kiltmq.broker.policy_admin import PolicyInvalid
from kiltmq.management.context import caller, context
from kiltmq.management.errors import bad_request, vhost_not_found
from kiltmq.management.listing import json_reply
from kiltmq.management.policies import invalid

__all__ = ["routes"]

routes = web.RouteTableDef()


def _export(request: web.Request, vhost: str | None) -> web.Response:
    caller(request).require_admin()
    ctx = context(request)
    if vhost is not None and vhost not in ctx.broker.vhosts:
        raise bad_request("vhost_not_found")
    reply = json_reply(ctx.admin.export_definitions(vhost))
    download = request.query.get("download")
    if download:
        reply.headers["Content-Disposition"] = f"attachment; filename={download}"
    return reply


async def _payload(request: web.Request) -> Any:
    """The definitions sent: the body, or the ``file`` field of a multipart form."""
    if request.content_type == "multipart/form-data":
        form = await request.post()
        field = form.get("file")
        raw = field.file.read() if isinstance(field, web.FileField) else field
    else:
        raw = await request.read()
    try:
        data = json.loads(raw or b"")
    except (ValueError, TypeError):
        raise bad_request("failed_to_parse_json") from None
    if not isinstance(data, dict):
        raise bad_request("failed_to_parse_json")
    return data


async def _import(request: web.Request, vhost: str | None) -> web.Response:
    caller(request).require_admin()
    ctx = context(request)
    if vhost is not None and vhost not in ctx.broker.vhosts:
        raise vhost_not_found()
    data = await _payload(request)
    try:
        ctx.admin.import_definitions(data, vhost)
    except PolicyInvalid as error:
        failure = invalid(error)
        if vhost is not None:  # RabbitMQ prints the reason as an Erlang binary here
            text = str(failure.reason).replace("\\", "\\\\").replace('"', '\\"')
            failure.reason = '<<"' + text.replace("\n", "\\n") + '">>'
        raise failure from None
    except NotFound as error:
        raise bad_request(str(error)) from None
    await ctx.admin.committed()
    return web.Response(status=204)


@routes.get("/api/all-configuration")  # RabbitMQ's older name
@routes.get("/api/definitions")
async def export_all(request: web.Request) -> web.Response:
    return _export(request, None)


@routes.get("/api/definitions/{vhost}")
async def export_vhost(request: web.Request) -> web.Response:
    return _export(request, request.match_info["vhost"])


@routes.post("/api/all-configuration")
@routes.post("/api/definitions")
async def import_all(request: web.Request) -> web.Response:
    return await _import(request, None)


@routes.post("/api/definitions/{vhost}")
async def import_vhost(request: web.Request) -> web.Response:
    return await _import(request, request.match_info["vhost"])
