"""AMQP URLs as the raw client takes them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from kiltmq.protocol import spec

__all__ = ["URL", "parse_url"]


@dataclass(frozen=True)
class URL:
    """The parts of an ``amqp://user:password@host:port/vhost`` URL."""

    host: str
    port: int
    username: str
    password: str
    vhost: str

    def __str__(self) -> str:
        return f"amqp://{self.host}:{self.port}/{self.vhost.replace('/', '%2F')}"


def parse_url(url: str) -> URL:
    """Parse an AMQP URL; defaults are guest/guest on 127.0.0.1:5672, vhost ``/``."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", ""):
        raise ValueError(f"only amqp:// URLs are supported by the raw client: {url!r}")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return URL(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or spec.PORT,
        username=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        vhost=unquote(path) if path else "/",
    )
