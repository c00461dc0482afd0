"""A small HTTP client for the management API tests (standard library only, so the same
calls go to RabbitMQ and to kiltmq)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote


def q(name: str) -> str:
    """A path segment (vhost, queue, exchange names), percent-encoded."""
    return quote(name, safe="")


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""


@dataclass
class Api:
    """The management API at ``base`` (``http://host:port``) as ``user``."""

    base: str
    user: str = "guest"
    password: str = "guest"

    def as_user(self, user: str, password: str) -> Api:
        return Api(self.base, user, password)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if auth:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, payload, got = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, payload, got = error.code, error.read(), error.headers
        text = payload.decode(errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return Reply(status, parsed, {k.lower(): v for k, v in got.items()}, text)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.call("GET", path, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.call("PUT", path, body if body is not None else {}, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.call("POST", path, body if body is not None else {}, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.call("DELETE", path, **kw)
