"""What the broker says and checks while a connection opens: its properties and SASL
mechanisms (connection.start), the credentials of connection.start-ok (PLAIN, AMQPLAIN,
or EXTERNAL with a TLS client certificate), the limits of connection.tune-ok, and where
loopback-only users may connect from."""

from __future__ import annotations

import ipaddress
import struct
import sys
from typing import Any

from kiltmq.broker.auth import AuthDB, User
from kiltmq.broker.tls import ExternalLogin
from kiltmq.protocol import spec
from kiltmq.protocol.codec import decode_table
from kiltmq.protocol.errors import CommandInvalid, NotAllowed
from kiltmq.version import __version__

__all__ = [
    "CAPABILITIES",
    "FRAME_MIN_SIZE",
    "MECHANISMS",
    "BadCredentials",
    "authenticate",
    "check_tune",
    "is_loopback",
    "read_credentials",
    "server_properties",
]

FRAME_MIN_SIZE = 4096
MECHANISMS = b"PLAIN AMQPLAIN"

CAPABILITIES: dict[str, Any] = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
    "consumer_priorities": True,
}


def server_properties(cluster_name: str = "kiltmq", *, capabilities: bool = True) -> dict[str, Any]:
    """What connection.start tells clients about this broker. Without ``capabilities``
    the capabilities table is empty, as RabbitMQ announces it to AMQP 0-8 clients."""
    return {
        "product": "kiltmq",
        "version": __version__,
        "platform": f"Python {sys.version.split()[0]}",
        "copyright": "Copyright (c) the kiltmq authors",
        "information": "kiltmq, an AMQP 0-9-1 broker in Python. Licensed under the MIT licence.",
        "capabilities": dict(CAPABILITIES) if capabilities else {},
        "cluster_name": cluster_name,
    }


class BadCredentials(Exception):
    """A start-ok response that holds no usable user name and password (the reason, for
    the log, is the message)."""


def read_credentials(mechanism: str, response: bytes) -> tuple[str, str]:
    """The user name and password in a PLAIN or AMQPLAIN ``response``. Raises
    :class:`BadCredentials` if they cannot be read, CommandInvalid for another
    mechanism."""
    if mechanism == "PLAIN":
        parts = response.split(b"\x00")
        if len(parts) != 3:
            raise BadCredentials("malformed PLAIN response")
        username, password = parts[1], parts[2]
    elif mechanism == "AMQPLAIN":
        try:
            table, _ = decode_table(struct.pack(">I", len(response)) + response, 0)
        except (ValueError, struct.error, IndexError):
            raise BadCredentials("malformed AMQPLAIN response") from None
        login, secret = table.get("LOGIN"), table.get("PASSWORD")
        if isinstance(login, str):
            login = login.encode()
        if isinstance(secret, str):
            secret = secret.encode()
        if not isinstance(login, bytes) or not isinstance(secret, bytes):
            raise BadCredentials("AMQPLAIN response without LOGIN/PASSWORD")
        username, password = login, secret
    else:
        raise CommandInvalid(f"COMMAND_INVALID - unknown authentication mechanism '{mechanism}'")
    try:
        return username.decode(), password.decode()
    except UnicodeDecodeError:
        raise BadCredentials("credentials are not UTF-8") from None


def authenticate(
    auth: AuthDB, mechanism: str, response: bytes, external: ExternalLogin | None
) -> tuple[str, User | None]:
    """The user name of a start-ok, and the user if the login is good (else None).
    ``external``: what a TLS connection offers EXTERNAL (None: not offered), whose
    certificate stands for the password. Raises as :func:`read_credentials`."""
    if mechanism == "EXTERNAL" and external is not None:
        if external.name is None:
            raise BadCredentials(external.reason)
        return external.name, auth.users.get(external.name)
    name, password = read_credentials(mechanism, response)
    return name, auth.authenticate(name, password)


def check_tune(m: spec.ConnectionTuneOk, frame_max: int, channel_max: int) -> None:
    """Refuse (530) a tune-ok beyond the broker's limits, as RabbitMQ: frame_max must lie
    within [4096, ours]; channel_max may not exceed ours (0, "no limit", gets ours)."""
    if frame_max and (m.frame_max == 0 or m.frame_max > frame_max):
        raise NotAllowed(f"NOT_ALLOWED - frame_max={m.frame_max} > {frame_max} max size", 10, 31)
    if m.frame_max and m.frame_max < FRAME_MIN_SIZE:
        raise NotAllowed(
            f"NOT_ALLOWED - frame_max={m.frame_max} < {FRAME_MIN_SIZE} min size", 10, 31
        )
    if channel_max and m.channel_max > channel_max:
        raise NotAllowed(
            f"NOT_ALLOWED - channel_max={m.channel_max} > {channel_max} max size", 10, 31
        )


def is_loopback(peer: Any) -> bool:
    """Whether ``peer`` (a socket's peer name) is a loopback address."""
    if isinstance(peer, tuple) and peer:
        try:
            address = ipaddress.ip_address(str(peer[0]).split("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return address.ipv4_mapped.is_loopback
        return address.is_loopback
    # Unix sockets and other local transports count as loopback.
    return True
