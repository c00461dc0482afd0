"""The management web UI at the root of the management port: server-rendered page
shells (jinja2) whose small scripts read and change the broker only through the HTTP
API, logged in with a session cookie (:mod:`kiltmq.management.sessions`)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from kiltmq.management.ui import pages

__all__ = ["add_ui"]

STATIC = Path(__file__).parent / "static"


def add_ui(app: web.Application) -> None:
    """Serve the pages, their scripts and styles."""
    app.add_routes(pages.routes)
    app.router.add_static("/static/", STATIC, append_version=False)
