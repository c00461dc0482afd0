"""Runtime parameters: ``/api/parameters[/{component}[/{vhost}[/{name}]]]`` and
``/api/global-parameters[/{name}]``.

The broker's components are ``vhost-limits`` (the one parameter ``limits``),
``operator_policy`` and ``shovel`` (moves between queues, see
:mod:`~kiltmq.management.shovels`); ``policy`` is listed when asked for by name, as
RabbitMQ does, and set through here too. Other components have no parameters: their
lists are empty and setting one is RabbitMQ's 400 ``component ... not found``. As
RabbitMQ, parameters are for ``policymaker`` users (operator policies for
administrators). The only global parameter is the broker's cluster name, read only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from kiltmq.broker.admin import NotFound
from kiltmq.broker.policy import Policy
from kiltmq.broker.policy_admin import PolicyInvalid
from kiltmq.management.context import caller, context
from kiltmq.management.errors import (
    bad_request,
    not_authorised,
    object_not_found,
    vhost_not_found,
)
from kiltmq.management.listing import reply_item, reply_list
from kiltmq.management.policies import invalid
from kiltmq.management.request import body, require
from kiltmq.management.shovels import COMPONENT as SHOVEL
from kiltmq.management.shovels import parameter_items as shovel_items
from kiltmq.management.shovels import start as start_shovel
from kiltmq.management.shovels import stop as stop_shovel

__all__ = ["routes"]

routes = web.RouteTableDef()

POLICY_COMPONENTS = {"policy": False, "operator_policy": True}
#: The components /api/parameters lists when no component is named.
LISTED = ("vhost-limits", "operator_policy", SHOVEL)
LIMITS = "limits"


def _policy_item(policy: Policy, component: str) -> dict[str, Any]:
    value = {
        "pattern": policy.pattern,
        "definition": dict(policy.definition),
        "priority": policy.priority,
        "apply-to": policy.apply_to,
    }
    return {"value": value, "vhost": policy.vhost, "component": component, "name": policy.name}


def _items(request: web.Request, component: str, vhost: str | None) -> list[dict[str, Any]]:
    ctx = context(request)
    visible = caller(request).visible_vhosts(ctx.broker)
    items: list[dict[str, Any]] = []
    if component == "vhost-limits":
        items = [
            {"value": limits, "vhost": name, "component": component, "name": LIMITS}
            for name, limits in ctx.admin.vhost_limits(vhost) if limits
        ]
    elif component in POLICY_COMPONENTS:
        operator = POLICY_COMPONENTS[component]
        items = [_policy_item(p, component) for p in ctx.admin.policies(vhost, operator=operator)]
    elif component == SHOVEL:
        items = shovel_items(request, vhost)
    return [i for i in items if i["vhost"] in visible]


def _require_policymaker(request: web.Request) -> None:
    if not caller(request).is_policymaker:
        raise not_authorised("User not authorised to access object")


def _vhost(request: web.Request) -> str:
    _require_policymaker(request)
    ctx = context(request)
    vhost = request.match_info["vhost"]
    caller(request).require_vhost(ctx.broker, vhost)
    if vhost not in ctx.broker.vhosts:
        raise object_not_found()
    return vhost


@routes.get("/api/parameters")
async def list_parameters(request: web.Request) -> web.Response:
    _require_policymaker(request)
    items = [i for c in LISTED for i in _items(request, c, None)]
    return reply_list(request, items, ("vhost", "component", "name"))


@routes.get("/api/parameters/{component}")
async def component_parameters(request: web.Request) -> web.Response:
    _require_policymaker(request)
    items = _items(request, request.match_info["component"], None)
    return reply_list(request, items, ("vhost", "name"))


@routes.get("/api/parameters/{component}/{vhost}")
async def vhost_parameters(request: web.Request) -> web.Response:
    vhost = _vhost(request)
    return reply_list(request, _items(request, request.match_info["component"], vhost), ("name",))


@routes.get("/api/parameters/{component}/{vhost}/{name}")
async def get_parameter(request: web.Request) -> web.Response:
    vhost = _vhost(request)
    name = request.match_info["name"]
    for item in _items(request, request.match_info["component"], vhost):
        if item["name"] == name:
            return reply_item(request, item)
    raise object_not_found()


def _may_change(request: web.Request) -> None:
    who = caller(request)
    if POLICY_COMPONENTS.get(request.match_info["component"]):
        who.require_admin()
        return
    _require_policymaker(request)
    broker = context(request).broker
    vhost = request.match_info["vhost"]
    if not who.is_admin and vhost in broker.vhosts and vhost not in who.login_vhosts(broker):
        raise not_authorised("User not authorised to access object")


def _component_not_found(component: str) -> Exception:
    return bad_request(f"Validation failed\n\ncomponent {component} not found\n")


@routes.put("/api/parameters/{component}/{vhost}/{name}")
async def put_parameter(request: web.Request) -> web.Response:
    _may_change(request)
    ctx = context(request)
    component, vhost, name = (request.match_info[k] for k in ("component", "vhost", "name"))
    values = await body(request)
    if vhost not in ctx.broker.vhosts:
        raise vhost_not_found()
    require(values, ("value",))
    value = values["value"]
    existed = any(i["name"] == name for i in _items(request, component, vhost))
    if component == "vhost-limits":
        if not isinstance(value, Mapping):
            raise bad_request("Validation failed\n\nlimits should be a JSON object\n")
        ctx.admin.set_vhost_limits(vhost, value)
    elif component in POLICY_COMPONENTS:
        if not isinstance(value, Mapping):
            raise bad_request("Validation failed\n\na policy should be a JSON object\n")
        operator = POLICY_COMPONENTS[component]
        try:
            ctx.admin.set_policy(
                vhost, name, value.get("pattern"), value.get("definition"),
                priority=value.get("priority", 0), apply_to=value.get("apply-to", "all"),
                operator=operator,
            )
        except PolicyInvalid as error:
            raise invalid(error, operator=operator) from None
    elif component == SHOVEL:
        start_shovel(request, vhost, name, value)
    else:
        raise _component_not_found(component)
    await ctx.admin.committed()
    return web.Response(status=204 if existed else 201)


@routes.delete("/api/parameters/{component}/{vhost}/{name}")
async def delete_parameter(request: web.Request) -> web.Response:
    _may_change(request)
    ctx = context(request)
    component, vhost, name = (request.match_info[k] for k in ("component", "vhost", "name"))
    if vhost not in ctx.broker.vhosts:
        raise object_not_found()
    if not any(i["name"] == name for i in _items(request, component, vhost)):
        raise object_not_found()
    if component == "vhost-limits":
        ctx.admin.set_vhost_limits(vhost, {})
    elif component == SHOVEL:
        stop_shovel(request, vhost, name)
        return web.Response(status=204)
    else:
        try:
            ctx.admin.clear_policy(vhost, name, operator=POLICY_COMPONENTS[component])
        except NotFound:
            raise object_not_found() from None
    await ctx.admin.committed()
    return web.Response(status=204)


def _global_parameters(request: web.Request) -> list[dict[str, Any]]:
    name = getattr(context(request).broker, "cluster_name", None)
    return [{"name": "cluster_name", "value": name}] if name else []


@routes.get("/api/global-parameters")
async def list_global_parameters(request: web.Request) -> web.Response:
    _require_policymaker(request)
    return reply_list(request, _global_parameters(request), ("name",))


@routes.get("/api/global-parameters/{name}")
async def get_global_parameter(request: web.Request) -> web.Response:
    _require_policymaker(request)
    for item in _global_parameters(request):
        if item["name"] == request.match_info["name"]:
            return reply_item(request, item)
    raise object_not_found()


@routes.put("/api/global-parameters/{name}")
@routes.delete("/api/global-parameters/{name}")
async def change_global_parameter(request: web.Request) -> web.Response:
    caller(request).require_admin()
    raise bad_request("kiltmq keeps no global parameters: the cluster name is set at start")
