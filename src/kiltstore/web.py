"""Helpers for the store's aiohttp pages: templates, live updates, starting a site.

Live updates use Server-Sent Events: a page opens ``EventSource(url)`` and the
service calls :meth:`EventHub.publish` whenever something the page shows changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import jinja2
import markupsafe
from aiohttp import web

from kiltstore.domain import SHIPPING_COUNTRIES, SIZES, STYLES, TARTANS, format_pence
from kiltstore.limits import MAX_LENGTH

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("kiltstore", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


def readable_time(value: object) -> str:
    """An ISO 8601 time as people write it: ``6 Dec 2026, 09:50:12 UTC`` (the text
    unchanged if it isn't one)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        try:  # XML-RPC's dateTime.iso8601
            moment = datetime.strptime(str(value), "%Y%m%dT%H:%M:%S")
        except ValueError:
            return str(value)
    zone = " UTC" if moment.utcoffset() is not None and not moment.utcoffset() else ""
    return f"{moment.day} {moment:%b %Y, %H:%M:%S}{zone}"


_LINK = re.compile(r"https?://[^\s<>\"']+")


def linkify(text: object) -> markupsafe.Markup:
    """Plain text (an e-mail's body) as HTML, its web addresses made links."""
    escaped = str(markupsafe.escape(str(text)))
    return markupsafe.Markup(_LINK.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>',
                                       escaped))


#: The store's pages by label (filled by the demo, which runs them all): every page links
#: to the others in a bar at its top. Empty when a service runs on its own.
SITE_LINKS: dict[str, str] = {}


def link_sites(links: dict[str, str]) -> None:
    """Show ``links`` (label -> URL) at the top of every page (empty: none)."""
    SITE_LINKS.clear()
    SITE_LINKS.update(links)


_env.filters["pence"] = format_pence
_env.filters["when"] = readable_time
_env.filters["linkify"] = linkify
_env.globals.update(
    TARTANS=TARTANS, STYLES=STYLES, SIZES=SIZES, COUNTRIES=SHIPPING_COUNTRIES,
    LIMITS=MAX_LENGTH, SITE_LINKS=SITE_LINKS,
)

SSE_PING = 15.0


def render(template: str, *, http_status: int = 200, **context: Any) -> web.Response:
    html = _env.get_template(template).render(**context)
    return web.Response(text=html, status=http_status, content_type="text/html")


def render_string(template: str, **context: Any) -> str:
    return _env.get_template(template).render(**context)


class EventHub:
    """Fan-out of live events to every open Server-Sent Events stream."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[tuple[str, str]]] = set()

    def publish(self, event: str, data: Any) -> None:
        payload = json.dumps(data)
        for queue in self._queues:
            queue.put_nowait((event, payload))

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[tuple[str, str]]]:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """An aiohttp handler: the SSE stream of this hub. A client that goes away (a
        closed tab) ends its stream quietly."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        try:
            await response.prepare(request)
            await response.write(b"retry: 1000\n\n")
            async with self.subscribe() as queue:
                while True:
                    try:
                        event, payload = await asyncio.wait_for(queue.get(), SSE_PING)
                    except TimeoutError:
                        await response.write(b": ping\n\n")
                        continue
                    await response.write(f"event: {event}\ndata: {payload}\n\n".encode())
        except ConnectionError:  # aiohttp's ClientConnectionResetError is one
            pass  # the page was closed
        return response


def static_routes(app: web.Application) -> None:
    from importlib.resources import files

    app.router.add_static("/static", str(files("kiltstore") / "static"))


class Site:
    """A running aiohttp application on host:port (0 = any free port)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        static_routes(self.app)
        self._runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = bind_socket(self.host, self.port)
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.port = sock.getsockname()[1]
        return self.url

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def bind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock
