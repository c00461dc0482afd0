"""The web UI's pages: login and logout, then one page shell per view, rendered with
the user's name, tags and CSRF token; each page's script fills it from the HTTP API.
Pages a user's tags do not allow answer 403, as their API calls would."""

from __future__ import annotations

import functools
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from kiltmq.management.access import Caller, check_login, session_caller
from kiltmq.management.context import context
from kiltmq.management.errors import ApiError
from kiltmq.management.sessions import COOKIE, Session
from kiltmq.version import __version__

__all__ = ["routes"]

routes = web.RouteTableDef()

#: The double-submit cookie guarding the login form.
LOGIN_COOKIE = "kiltmq_login"

if TYPE_CHECKING:
    import jinja2


@functools.cache
def _templates() -> jinja2.Environment:
    """The page templates; jinja2 is imported only when a page is asked for, so the API
    runs without it."""
    try:
        import jinja2
    except ImportError:
        raise web.HTTPServiceUnavailable(
            text="the web UI needs jinja2: pip install 'kiltmq[management]'"
        ) from None
    return jinja2.Environment(
        loader=jinja2.PackageLoader("kiltmq.management.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )

#: (path, title, who sees it) of the navigation.
NAV = (
    ("/", "Overview", "all"),
    ("/connections", "Connections", "all"),
    ("/channels", "Channels", "all"),
    ("/exchanges", "Exchanges", "all"),
    ("/queues", "Queues", "all"),
    ("/admin", "Admin", "policymaker"),
)
ADMIN_NAV = (
    ("/admin/users", "Users", "admin"),
    ("/admin/vhosts", "Virtual hosts", "admin"),
    ("/admin/policies", "Policies", "policymaker"),
    ("/admin/limits", "Limits", "admin"),
    ("/admin/definitions", "Definitions", "admin"),
)


def _may(who: Caller, need: str) -> bool:
    return need == "all" or (need == "admin" and who.is_admin) or (
        need == "policymaker" and who.is_policymaker
    )


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
            "style-src 'self'; frame-ancestors 'none'; form-action 'self'",
        },
    )


def _render(template: str, **values: Any) -> str:
    return _templates().get_template(template).render(version=__version__, **values)


def _session(request: web.Request) -> tuple[Caller, Session] | None:
    ctx = context(request)
    try:
        return session_caller(request, ctx.broker, ctx.sessions)
    except ApiError:  # tags taken away since the login
        return None


def _page(
    request: web.Request, template: str, title: str, need: str = "all", **values: Any
) -> web.Response:
    found = _session(request)
    if found is None:
        raise web.HTTPFound("/login?next=" + quote(request.path_qs, safe=""))
    who, session = found
    shown = dict(
        user=who.name, tags=sorted(who.tags), csrf=session.csrf, title=title,
        nav=[(p, t) for p, t, n in NAV if _may(who, n)],
        admin_nav=[(p, t) for p, t, n in ADMIN_NAV if _may(who, n)],
        current=request.path, cluster=context(request).cluster_name,
        readonly=not who.tags & {"management", "policymaker", "administrator"},
        policymaker=who.is_policymaker,
    )
    if not _may(who, need):
        return _html(_render("forbidden.html", **shown), 403)
    return _html(_render(template, **shown, **values))


def _next(request: web.Request) -> str:
    target = request.query.get("next", "/")
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_form(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(24)
    reply = _html(
        _render("login.html", csrf=token, error=error, next=_next(request)), status
    )
    reply.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", path="/login")
    return reply


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    if _session(request) is not None:
        raise web.HTTPFound(_next(request))
    return _login_form(request)


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    form = await request.post()
    given, expected = form.get("csrf"), request.cookies.get(LOGIN_COOKIE)
    if not isinstance(given, str) or not expected or not secrets.compare_digest(
        given, expected
    ):
        return _login_form(request, "The form has expired: please log in again.", 403)
    name, password = form.get("username"), form.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        return _login_form(request, "Login failed", 401)
    ctx = context(request)
    try:
        check_login(ctx.broker, name, password, request.remote)
    except ApiError as error:
        return _login_form(request, str(error.reason), 401)
    session = ctx.sessions.open(name, ctx.broker.auth.users[name].password_hash)
    reply = web.HTTPFound(_next(request))
    reply.set_cookie(COOKIE, session.token, httponly=True, samesite="Strict", path="/")
    reply.del_cookie(LOGIN_COOKIE, path="/login")
    raise reply


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    found = _session(request)
    form = await request.post()
    token = form.get("csrf")
    if found is None or not isinstance(token, str) or not found[1].csrf_matches(token):
        return _html(_render("login.html", csrf="", error="Logout refused", next="/"), 403)
    context(request).sessions.close(found[1].token)
    reply = web.HTTPFound("/login")
    reply.del_cookie(COOKIE, path="/")
    raise reply


@routes.get("/")
async def overview(request: web.Request) -> web.Response:
    return _page(request, "overview.html", "Overview")


@routes.get("/connections")
async def connections(request: web.Request) -> web.Response:
    return _page(request, "connections.html", "Connections")


@routes.get("/connections/{name}")
async def connection(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return _page(request, "connection.html", f"Connection {name}", name=name)


@routes.get("/channels")
async def channels(request: web.Request) -> web.Response:
    return _page(request, "channels.html", "Channels")


@routes.get("/exchanges")
async def exchanges(request: web.Request) -> web.Response:
    return _page(request, "exchanges.html", "Exchanges")


@routes.get("/exchanges/{vhost}/{name}")
async def exchange(request: web.Request) -> web.Response:
    vhost, name = request.match_info["vhost"], request.match_info["name"]
    title = f"Exchange {name or '(AMQP default)'}"
    return _page(request, "exchange.html", title, vhost=vhost, name=name)


@routes.get("/exchanges/{vhost}/")
async def default_exchange(request: web.Request) -> web.Response:
    vhost = request.match_info["vhost"]
    return _page(request, "exchange.html", "Exchange (AMQP default)", vhost=vhost, name="")


@routes.get("/queues")
async def queues(request: web.Request) -> web.Response:
    return _page(request, "queues.html", "Queues")


@routes.get("/queues/{vhost}/{name}")
async def queue(request: web.Request) -> web.Response:
    vhost, name = request.match_info["vhost"], request.match_info["name"]
    return _page(request, "queue.html", f"Queue {name}", vhost=vhost, name=name)


@routes.get("/admin")
async def admin(request: web.Request) -> web.Response:
    found = _session(request)
    target = "/admin/users" if found is not None and found[0].is_admin else "/admin/policies"
    raise web.HTTPFound(target)


@routes.get("/admin/{section:users|vhosts|policies|limits|definitions}")
async def admin_section(request: web.Request) -> web.Response:
    section = request.match_info["section"]
    need = "policymaker" if section == "policies" else "admin"
    title = dict((p.rsplit("/", 1)[1], t) for p, t, _n in ADMIN_NAV)[section]
    return _page(request, f"admin_{section}.html", title, need, section=section)
