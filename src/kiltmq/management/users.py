"""Users: ``/api/users`` and ``/api/users/{user}`` (GET, PUT with ``password`` or
``password_hash`` and ``tags``, DELETE) and ``/api/users/bulk-delete`` (POST);
administrators only. Limits: :mod:`~kiltmq.management.user_limits`."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from kiltmq.broker.auth import User, hash_password
from kiltmq.management.context import caller, context
from kiltmq.management.errors import ApiError, bad_request, object_not_found
from kiltmq.management.listing import reply_item, reply_list
from kiltmq.management.request import body, require

__all__ = ["HASHING_ALGORITHM", "routes"]

routes = web.RouteTableDef()

HASHING_ALGORITHM = "rabbit_password_hashing_sha256"


def user_item(user: User) -> dict[str, Any]:
    return {
        "name": user.name,
        "password_hash": user.password_hash or "",
        "hashing_algorithm": HASHING_ALGORITHM,
        "tags": sorted(user.tags),
        "limits": dict(sorted(user.limits.items())),
    }


def parse_tags(value: Any) -> list[str]:
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return [t.strip() for t in value if t.strip()]
    raise bad_request("tags must be a string or a list of strings")


def _password_hash(values: dict[str, Any]) -> str | None:
    password = values.get("password")
    if password is not None:
        if not isinstance(password, str):
            raise bad_request("password must be a string")
        return hash_password(password)
    given = values.get("password_hash")
    if given is None or given == "":
        return None
    algorithm = values.get("hashing_algorithm", HASHING_ALGORITHM)
    if algorithm != HASHING_ALGORITHM:
        raise bad_request(f"unsupported hashing algorithm '{algorithm}'")
    if not isinstance(given, str):
        raise bad_request("password_hash must be a string")
    try:
        raw = base64.b64decode(given, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_request", ["not_base64", given]) from None
    if len(raw) != 36:
        raise bad_request("password_hash must be a 4-byte salt and a SHA-256 digest")
    return given


@routes.get("/api/users")
async def list_users(request: web.Request) -> web.Response:
    caller(request).require_admin()
    users = context(request).broker.auth.users.values()
    return reply_list(request, [user_item(u) for u in users], ("name",))


@routes.get("/api/users/without-permissions")
async def users_without_permissions(request: web.Request) -> web.Response:
    caller(request).require_admin()
    broker = context(request).broker
    granted = {user for user, _vhost in broker.auth.permissions}
    users = [u for u in broker.auth.users.values() if u.name not in granted]
    return reply_list(request, [user_item(u) for u in users], ("name",))


@routes.get("/api/users/{user}")
async def get_user(request: web.Request) -> web.Response:
    caller(request).require_admin()
    user = context(request).broker.auth.users.get(request.match_info["user"])
    if user is None:
        raise object_not_found()
    return reply_item(request, user_item(user))


@routes.put("/api/users/{user}")
async def put_user(request: web.Request) -> web.Response:
    caller(request).require_admin()
    values = await body(request)
    if "tags" not in values:
        raise bad_request("tags_not_present")
    tags = parse_tags(values["tags"])
    password_hash = _password_hash(values)
    ctx = context(request)
    created = ctx.admin.put_user(request.match_info["user"], password_hash, tags)
    await ctx.admin.committed()
    return web.Response(status=201 if created else 204)


@routes.delete("/api/users/{user}")
async def delete_user(request: web.Request) -> web.Response:
    caller(request).require_admin()
    ctx = context(request)
    name = request.match_info["user"]
    if name not in ctx.broker.auth.users:
        raise object_not_found()
    ctx.admin.delete_user(name)
    await ctx.admin.committed()
    return web.Response(status=204)


@routes.post("/api/users/bulk-delete")
async def bulk_delete(request: web.Request) -> web.Response:
    """Delete the ``users`` listed, in order; 400 ``["no_such_user", name]`` at the first
    that does not exist (those before it are deleted, as in RabbitMQ)."""
    caller(request).require_admin()
    values = await body(request)
    require(values, ("users",))
    names = values["users"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad_request("users must be a list of user names")
    ctx = context(request)
    try:
        for name in names:
            if name not in ctx.broker.auth.users:
                raise ApiError(400, "bad_request", ["no_such_user", name])
            ctx.admin.delete_user(name)
    finally:
        await ctx.admin.committed()
    return web.Response(status=204)
