"""Policies and operator policies: ``/api/policies[/{vhost}[/{name}]]`` and
``/api/operator-policies[/{vhost}[/{name}]]`` (GET, PUT, DELETE).

As RabbitMQ: every management user lists the policies of the vhosts it has permissions
in; ``policymaker`` (and ``administrator``) users set and clear policies in those vhosts;
operator policies are set and cleared by administrators only. A policy RabbitMQ would
refuse is 400 with the broker's reason (:class:`~kiltmq.broker.policy_admin.PolicyInvalid`),
its ``<``, ``>`` and ``&`` escaped (for policies) as RabbitMQ's answer has them."""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web

from kiltmq.broker.admin import NotFound
from kiltmq.broker.policy_admin import PolicyInvalid
from kiltmq.management.context import caller, context
from kiltmq.management.errors import (
    ApiError,
    bad_request,
    not_authorised,
    object_not_found,
    vhost_not_found,
)
from kiltmq.management.listing import reply_item, reply_list
from kiltmq.management.request import body, require

__all__ = ["invalid", "routes"]

routes = web.RouteTableDef()

_KINDS = {"policies": False, "operator-policies": True}


def invalid(error: PolicyInvalid, *, operator: bool = False) -> ApiError:
    """RabbitMQ's 400 answer to a policy it refuses (it escapes the reasons of policies,
    not those of operator policies)."""
    return bad_request(error.reason if operator else html.escape(error.reason, quote=False))


def _operator(request: web.Request) -> bool:
    return _KINDS[request.path.split("/")[2]]


def _items(request: web.Request, vhost: str | None) -> list[dict[str, Any]]:
    ctx = context(request)
    visible = caller(request).visible_vhosts(ctx.broker)
    operator = _operator(request)
    return [
        p.as_json() for p in ctx.admin.policies(vhost, operator=operator) if p.vhost in visible
    ]


def _vhost(request: web.Request) -> str:
    """The path's vhost, which the caller must have permissions in; 404 if unknown."""
    ctx = context(request)
    vhost = request.match_info["vhost"]
    caller(request).require_vhost(ctx.broker, vhost)
    if vhost not in ctx.broker.vhosts:
        raise object_not_found()
    return vhost


def _may_change(request: web.Request) -> None:
    """Refuse callers that may not change the path's policy (before reading the body)."""
    who = caller(request)
    if _operator(request):
        who.require_admin()
        return
    vhost = request.match_info["vhost"]
    broker = context(request).broker
    if not who.is_policymaker or (
        not who.is_admin and vhost in broker.vhosts and vhost not in who.login_vhosts(broker)
    ):
        raise not_authorised("User not authorised to access object")


@routes.get("/api/policies")
@routes.get("/api/operator-policies")
async def list_policies(request: web.Request) -> web.Response:
    return reply_list(request, _items(request, None))


@routes.get("/api/policies/{vhost}")
@routes.get("/api/operator-policies/{vhost}")
async def vhost_policies(request: web.Request) -> web.Response:
    return reply_list(request, _items(request, _vhost(request)))


@routes.get("/api/policies/{vhost}/{name}")
@routes.get("/api/operator-policies/{vhost}/{name}")
async def get_policy(request: web.Request) -> web.Response:
    vhost = _vhost(request)
    try:
        policy = context(request).admin.policy(
            vhost, request.match_info["name"], operator=_operator(request)
        )
    except NotFound:
        raise object_not_found() from None
    return reply_item(request, policy.as_json())


@routes.put("/api/policies/{vhost}/{name}")
@routes.put("/api/operator-policies/{vhost}/{name}")
async def put_policy(request: web.Request) -> web.Response:
    _may_change(request)
    ctx = context(request)
    vhost, name = request.match_info["vhost"], request.match_info["name"]
    values = await body(request)
    if vhost not in ctx.broker.vhosts:
        raise vhost_not_found()
    require(values, ("pattern", "definition"))
    operator = _operator(request)
    existed = any(p.name == name for p in ctx.admin.policies(vhost, operator=operator))
    try:
        ctx.admin.set_policy(
            vhost, name, values["pattern"], values["definition"],
            priority=values.get("priority", 0), apply_to=values.get("apply-to", "all"),
            operator=operator,
        )
    except PolicyInvalid as error:
        raise invalid(error, operator=operator) from None
    await ctx.admin.committed()
    return web.Response(status=204 if existed else 201)


@routes.delete("/api/policies/{vhost}/{name}")
@routes.delete("/api/operator-policies/{vhost}/{name}")
async def delete_policy(request: web.Request) -> web.Response:
    _may_change(request)
    ctx = context(request)
    vhost = request.match_info["vhost"]
    if vhost not in ctx.broker.vhosts:
        raise object_not_found()
    try:
        ctx.admin.clear_policy(vhost, request.match_info["name"], operator=_operator(request))
    except NotFound:
        raise object_not_found() from None
    await ctx.admin.committed()
    return web.Response(status=204)
