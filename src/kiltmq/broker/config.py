"""Broker configuration files (JSON or TOML) turned into :class:`~kiltmq.broker.Broker`
keyword arguments.

The format (TOML shown; JSON has the same keys)::

    heartbeat = 60            # seconds proposed in connection.tune (0: off)
    frame_max = 131072
    channel_max = 2047
    memory_limit = "1GiB"     # memory messages may take before publishers are blocked:
                              # bytes, a size ("200MB"), or a fraction of the machine's (0.4)
    disk_free_limit = "50MB"  # free space the data directory's filesystem must keep
    consumer_timeout = 1800   # seconds a delivery may stay unacked (0: never)
    max_message_size = 134217728  # largest message body accepted (at most 512 MiB)
    content_timeout = 60      # seconds a half-sent message may stall (0: never)
    vhosts = ["/", "shop"]    # or [{name = "/"}, ...] as in a RabbitMQ definitions export
    loopback_users = ["guest"]
    max_connections = 1000    # per listener, as RabbitMQ's connection_max (default: none)
    management_host = "127.0.0.1"  # address of the management API and the metrics
    management_port = 15672   # the management HTTP API (0: none)
    prometheus_port = 15692   # Prometheus metrics on the management host (0: none)

    [tls]                     # an amqps listener (on the first listener's host)
    port = 5671
    cert = "server.pem"
    key = "server.key"        # unless the key is in the certificate file
    ca = "ca.pem"             # client certificates must chain to it
    verify = "optional"       # none | optional | required (default: optional with a CA)
    login_from = "distinguished_name"  # or "common_name": EXTERNAL's user name
    load_definitions = "definitions.json"  # RabbitMQ's JSON export, loaded at each start

    [[listeners]]             # default: one listener on 127.0.0.1:5672
    host = "0.0.0.0"          # all IPv4 addresses ("::" for all IPv6 addresses)
    port = 5672

    [[users]]
    name = "shop"
    password = "secret"       # or password_hash = "..." (RabbitMQ's salted SHA-256)
    tags = ["administrator"]

    [[permissions]]           # without any, every user may do everything everywhere
    user = "shop"
    vhost = "shop"
    configure = ".*"
    write = ".*"
    read = ".*"

Errors raise :class:`ConfigError` with a message fit for the command line.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from kiltmq.broker.auth import User, hash_password
from kiltmq.broker.disk import parse_disk_free_limit
from kiltmq.broker.memory import parse_memory_limit

__all__ = ["ConfigError", "load_config", "parse_config"]


class ConfigError(ValueError):
    """The configuration file cannot be used."""


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a JSON (``.json``) or TOML (anything else) file; return Broker kwargs plus
    ``listeners`` as a list of (host, port)."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        is_json = path.suffix.lower() == ".json"
        data = json.loads(text) if is_json else tomllib.loads(text.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table/object")
    kwargs = parse_config(data)
    for key in ("tls_cert", "tls_key", "tls_ca"):  # relative to the file's directory
        if key in kwargs:
            kwargs[key] = str(path.parent / Path(kwargs[key]).expanduser())
    return kwargs


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"'{key}' must be a non-negative integer")
    return value


def _seconds(data: dict[str, Any], key: str) -> float | None:
    """``data[key]`` as a non-negative number of seconds (None when absent)."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"'{key}' must be a non-negative number of seconds")
    return float(value)


def _tls(table: Any) -> dict[str, Any]:
    """The ``[tls]`` table as Broker keyword arguments."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise ConfigError("'tls' must be a table")
    known = ("port", "cert", "key", "ca", "verify", "login_from")
    unknown = sorted(str(k) for k in table if k not in known)
    if unknown:
        raise ConfigError(f"unknown tls setting {unknown[0]!r} (known: {', '.join(known)})")
    kwargs: dict[str, Any] = {}
    port = table.get("port")
    if port is not None:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
            raise ConfigError(f"invalid tls port {port!r}")
        kwargs["tls_port"] = port
    for key in known[1:]:
        value = table.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise ConfigError(f"tls {key} must be a string")
            kwargs[f"tls_{key}"] = value
    if "tls_cert" not in kwargs:
        raise ConfigError("the tls table needs a cert")
    return kwargs


def parse_config(data: dict[str, Any]) -> dict[str, Any]:
    """Validate a loaded configuration; return Broker keyword arguments."""
    kwargs: dict[str, Any] = {}
    for key in ("heartbeat", "frame_max", "channel_max", "max_message_size"):
        value = _int(data, key)
        if value is not None:
            kwargs[key] = value
    max_connections = _int(data, "max_connections")
    if max_connections is not None:
        if max_connections < 1:
            raise ConfigError("'max_connections' must be at least 1")
        kwargs["max_connections"] = max_connections
    kwargs.update(_tls(data.get("tls")))
    for key in ("management_port", "prometheus_port"):
        port = _int(data, key)
        if port is not None:
            if port >= 65536:
                raise ConfigError(f"invalid {key} {port}")
            kwargs[key] = port
    host = data.get("management_host")
    if host is not None:
        if not isinstance(host, str):
            raise ConfigError("'management_host' must be a string")
        kwargs["management_host"] = host
    for key, parse in (
        ("memory_limit", parse_memory_limit),
        ("disk_free_limit", parse_disk_free_limit),
    ):
        value = data.get(key)
        if value is not None:
            try:
                kwargs[key] = parse(value)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"'{key}': {exc}") from None
    timeout = _seconds(data, "consumer_timeout")
    if timeout is not None:
        kwargs["consumer_timeout"] = timeout or None
    timeout = _seconds(data, "content_timeout")
    if timeout is not None:
        kwargs["content_timeout"] = timeout
    listeners: list[tuple[str, int]] = []
    for item in data.get("listeners", []):
        if not isinstance(item, dict):
            raise ConfigError("each listener must be a table with host and port")
        host = item.get("host", "127.0.0.1")
        port = item.get("port", 5672)
        if not isinstance(host, str) or not isinstance(port, int) or not 0 <= port < 65536:
            raise ConfigError(f"invalid listener {item!r}")
        listeners.append((host, port))
    kwargs["listeners"] = listeners
    vhosts: list[str] = []
    for item in data.get("vhosts", []):
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str):
            raise ConfigError(f"invalid vhost {item!r}")
        vhosts.append(name)
    if vhosts:
        kwargs["vhosts"] = vhosts
    users: list[User] = []
    for item in data.get("users", []):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError(f"invalid user {item!r}: a table with a name is needed")
        name = item["name"]
        tags = item.get("tags", [])
        if isinstance(tags, str):  # RabbitMQ exports tags as one comma-separated string
            tags = [t for t in tags.split(",") if t]
        if "password" in item:
            if not isinstance(item["password"], str):
                raise ConfigError(f"user {name!r}: password must be a string")
            users.append(User(name, hash_password(item["password"]), frozenset(tags)))
        elif isinstance(item.get("password_hash"), str):
            algorithm = item.get("hashing_algorithm", "rabbit_password_hashing_sha256")
            if algorithm != "rabbit_password_hashing_sha256":
                raise ConfigError(f"user {name!r}: unsupported hashing algorithm {algorithm}")
            users.append(User(name, item["password_hash"], frozenset(tags)))
        else:
            raise ConfigError(f"user {name!r} needs a password or a password_hash")
    if users:
        kwargs["users"] = users
    permissions: dict[str, dict[str, tuple[str, str, str]]] = {}
    for item in data.get("permissions", []):
        if not isinstance(item, dict) or not isinstance(item.get("user"), str):
            raise ConfigError(f"invalid permission {item!r}")
        configure, write, read = (item.get(k, ".*") for k in ("configure", "write", "read"))
        if not all(isinstance(r, str) for r in (configure, write, read)):
            raise ConfigError(f"invalid permission {item!r}: regexes must be strings")
        regexes = (str(configure), str(write), str(read))
        permissions.setdefault(item["user"], {})[item.get("vhost", "/")] = regexes
    if permissions:
        kwargs["permissions"] = permissions
    definitions = data.get("load_definitions")
    if definitions is not None:
        if not isinstance(definitions, str):
            raise ConfigError("'load_definitions' must be the path of a JSON file")
        kwargs["load_definitions"] = definitions
    loopback = data.get("loopback_users")
    if loopback is not None:
        if not isinstance(loopback, list) or not all(isinstance(u, str) for u in loopback):
            raise ConfigError("'loopback_users' must be a list of user names")
        kwargs["loopback_users"] = loopback
    return kwargs
