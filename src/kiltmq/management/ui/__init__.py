"""The management web UI at the root of the management port: server-rendered page
shells (jinja2) whose small scripts read and change the broker only through the HTTP
API, logged in with a session cookie (:mod:`kiltmq.management.sessions`)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from kiltmq.management.ui import admin_bridge, pages
from kiltmq.management.ui.admin_bridge import UI_API_PREFIX

__all__ = ["UI_API_PREFIX", "add_ui"]

STATIC = Path(__file__).parent / "static"


def add_ui(app: web.Application) -> None:
    """Serve the pages, their scripts and styles, and the admin endpoints the API does
    not have yet."""
    app.add_routes(pages.routes)
    app.add_routes(admin_bridge.routes)
    app.router.add_static("/static/", STATIC, append_version=False)
