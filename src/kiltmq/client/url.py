"""AMQP URLs: ``amqp://user:password@host:port/vhost?query`` and ``amqps://``.

The syntax and query parameters follow RabbitMQ's URI specification and its query
parameter guide:

* user, password and vhost are percent-decoded; the vhost is the whole path after the
  first ``/`` (``/`` itself is written ``%2F``); an empty or missing path means ``/``.
* ``heartbeat`` (seconds; ``0`` disables heartbeats), ``frame_max`` (bytes),
  ``channel_max``, ``connection_timeout`` (milliseconds, as in RabbitMQ's spec),
  ``auth_mechanism`` (``PLAIN``, ``AMQPLAIN`` or ``EXTERNAL``; may be repeated: the first
  one the server offers is used).
* TLS (``amqps`` only): ``cacertfile``, ``certfile``, ``keyfile``, ``verify``
  (``verify_peer``, the default, or ``verify_none``), ``server_name_indication``
  (a host name, or ``disable``).

:func:`parse_url` returns :class:`ConnectionParameters`; unknown query parameters are an
error, so a typo does not go unnoticed.

Several brokers (the nodes of a cluster) are given as a list of URLs, or as one URL with
a comma-separated host list: ``amqp://user:password@host1:5672,host2,host3:5673/vhost``,
where every host shares the URL's user, password, vhost and query (each host's port
defaults to the scheme's). :func:`parse_addresses` takes either and returns one
:class:`ConnectionParameters` per broker, in the order given.
"""

from __future__ import annotations

import os
import ssl as _ssl
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

__all__ = [
    "DEFAULT_URL",
    "ConnectionParameters",
    "InvalidURL",
    "default_url",
    "parse_addresses",
    "parse_url",
]

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"
"""Used when neither an URL nor the ``AMQP_URL`` environment variable is given."""

_MECHANISMS = ("PLAIN", "AMQPLAIN", "EXTERNAL")


class InvalidURL(ValueError):
    """The URL is not a valid AMQP URL."""


def default_url() -> str:
    """``$AMQP_URL`` if set, else :data:`DEFAULT_URL`."""
    return os.environ.get("AMQP_URL") or DEFAULT_URL


@dataclass(frozen=True)
class ConnectionParameters:
    """Everything needed to open a connection, as parsed from an URL."""

    host: str = "localhost"
    port: int = 5672
    username: str = "guest"
    password: str = field(default="guest", repr=False)
    virtual_host: str = "/"
    ssl: bool = False
    #: Heartbeat timeout to ask for, in seconds (the smaller of ours and the server's
    #: wins); 0 disables heartbeats.
    heartbeat: int = 60
    frame_max: int = 131072
    channel_max: int = 2047
    #: Seconds to wait for the TCP connection, TLS and the AMQP handshake together.
    connection_timeout: float = 10.0
    auth_mechanisms: tuple[str, ...] = ("PLAIN",)
    cacertfile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    verify: bool = True
    #: Host name sent in TLS SNI and checked against the certificate; None: ``host``;
    #: "" disables SNI (``server_name_indication=disable``).
    server_name_indication: str | None = None
    #: A ready TLS context (``connect(ssl_context=...)``), used instead of the files.
    context: _ssl.SSLContext | None = field(default=None, compare=False, repr=False)

    def replace(self, **changes: object) -> ConnectionParameters:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def ssl_context(self) -> _ssl.SSLContext | None:
        """The TLS context for ``amqps`` (None for plain ``amqp``)."""
        if not self.ssl:
            return None
        if self.context is not None:
            return self.context
        context = _ssl.create_default_context(cafile=self.cacertfile)
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = _ssl.CERT_NONE
        elif self.server_name_indication == "":
            # No SNI means no host name to check either; the chain is still verified.
            context.check_hostname = False
        return context

    def tls_server_hostname(self) -> str | None:
        """The ``server_hostname`` to pass to ``create_connection`` (TLS only)."""
        if not self.ssl:
            return None
        if self.server_name_indication is None:
            return self.host
        return self.server_name_indication

    @property
    def display(self) -> str:
        """The URL without the password, for messages."""
        scheme = "amqps" if self.ssl else "amqp"
        vhost = self.virtual_host.replace("%", "%25").replace("/", "%2F")
        return f"{scheme}://{self.username}@{self.host}:{self.port}/{vhost}"


def _int(name: str, value: str, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidURL(f"query parameter {name}={value!r} is not an integer") from None
    if number < minimum or (maximum is not None and number > maximum):
        raise InvalidURL(f"query parameter {name}={value} is out of range")
    return number


def parse_url(url: str | None = None) -> ConnectionParameters:
    """Parse an ``amqp://`` or ``amqps://`` URL (default: :func:`default_url`)."""
    if url is None:
        url = default_url()
    try:
        parts = urlsplit(url)
        if "," in parts.netloc:
            raise InvalidURL(
                f"invalid AMQP URL {url!r}: it lists several hosts (use parse_addresses)"
            )
        port = parts.port
    except InvalidURL:
        raise
    except ValueError as exc:
        raise InvalidURL(f"invalid AMQP URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps"):
        raise InvalidURL(f"invalid AMQP URL {url!r}: the scheme must be amqp or amqps")
    tls = scheme == "amqps"
    path = parts.path
    if path in ("", "/"):
        vhost = "/"
    else:
        raw = path[1:]
        if "/" in raw:
            raise InvalidURL(
                f"invalid AMQP URL {url!r}: a '/' in the virtual host must be written %2F"
            )
        vhost = unquote(raw)
    kwargs: dict[str, object] = {
        "host": parts.hostname or "localhost",
        "port": port if port is not None else (5671 if tls else 5672),
        "username": unquote(parts.username) if parts.username is not None else "guest",
        "password": unquote(parts.password) if parts.password is not None else "guest",
        "virtual_host": vhost,
        "ssl": tls,
    }
    mechanisms: list[str] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "heartbeat":
            kwargs["heartbeat"] = _int(name, value, 0, 65535)
        elif name == "frame_max":
            frame_max = _int(name, value, 0, 0xFFFFFFFF)
            if frame_max and frame_max < 4096:
                raise InvalidURL("query parameter frame_max must be 0 or at least 4096")
            kwargs["frame_max"] = frame_max
        elif name == "channel_max":
            kwargs["channel_max"] = _int(name, value, 0, 65535)
        elif name == "connection_timeout":
            kwargs["connection_timeout"] = _int(name, value, 1) / 1000.0
        elif name == "auth_mechanism":
            mechanism = value.upper()
            if mechanism not in _MECHANISMS:
                raise InvalidURL(
                    f"unsupported auth_mechanism {value!r} (use one of {', '.join(_MECHANISMS)})"
                )
            mechanisms.append(mechanism)
        elif name in ("cacertfile", "certfile", "keyfile"):
            kwargs[name] = value
        elif name == "verify":
            if value not in ("verify_peer", "verify_none"):
                raise InvalidURL("query parameter verify must be verify_peer or verify_none")
            kwargs["verify"] = value == "verify_peer"
        elif name == "server_name_indication":
            kwargs["server_name_indication"] = "" if value == "disable" else value
        else:
            raise InvalidURL(f"unknown query parameter {name!r} in AMQP URL")
    if mechanisms:
        kwargs["auth_mechanisms"] = tuple(mechanisms)
    return ConnectionParameters(**kwargs)  # type: ignore[arg-type]


def _split_hosts(url: str) -> list[str]:
    """One URL per host of ``url``'s comma-separated host list."""
    if url.count("://") > 1:
        raise InvalidURL(
            f"invalid AMQP URL {url!r}: several URLs in one string; pass a list of URLs, "
            "or list the hosts in one URL (amqp://user:password@host1:5672,host2:5672/vhost)"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidURL(f"invalid AMQP URL {url!r}: {exc}") from None
    if "," not in parts.netloc:
        return [url]
    userinfo, at, hosts = parts.netloc.rpartition("@")
    urls = []
    for host in hosts.split(","):
        if not host.strip():
            raise InvalidURL(f"invalid AMQP URL {url!r}: an empty host in its host list")
        netloc = f"{userinfo}{at}{host.strip()}"
        urls.append(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))
    return urls


def parse_addresses(
    urls: str | ConnectionParameters | Sequence[str | ConnectionParameters] | None = None,
) -> tuple[ConnectionParameters, ...]:
    """The brokers to connect to, in order: from one URL (its host list may name several),
    a list of URLs, or :class:`ConnectionParameters` (default: :func:`default_url`)."""
    if urls is None or isinstance(urls, (str, ConnectionParameters)):
        urls = [default_url() if urls is None else urls]
    addresses: list[ConnectionParameters] = []
    for url in urls:
        if isinstance(url, ConnectionParameters):
            addresses.append(url)
        elif isinstance(url, str):
            addresses.extend(parse_url(one) for one in _split_hosts(url))
        else:
            raise InvalidURL(f"not an AMQP URL: {url!r}")
    if not addresses:
        raise InvalidURL("no AMQP URL given (an empty list)")
    return tuple(addresses)
