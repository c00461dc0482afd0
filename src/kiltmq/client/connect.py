"""``connect(url, **options)``: open a :class:`~kiltmq.client.connection.Connection`,
awaited or used as an async context manager::

    conn = await kiltmq.connect("amqp://guest:guest@localhost/")
    async with kiltmq.connect(url) as conn:
        ch = await conn.channel()

For a cluster, give every node: a list of URLs, or one URL listing the hosts::

    conn = await kiltmq.connect(["amqp://node1:5672", "amqp://node2:5672"])
    conn = await kiltmq.connect("amqp://user:password@node1,node2,node3/vhost")
"""

from __future__ import annotations

import ssl
from collections.abc import Generator, Sequence
from typing import Any, TypedDict, Unpack

from kiltmq.client.addresses import open_first
from kiltmq.client.connection import Connection
from kiltmq.client.state import ConnectionState
from kiltmq.client.url import ConnectionParameters, parse_addresses
from kiltmq.protocol.codec import FieldTable

__all__ = ["ConnectionOptions", "connect"]


class ConnectionOptions(TypedDict, total=False):
    """The keyword arguments of :func:`connect` that :class:`Connection` takes as they
    are (its signature has their defaults)."""

    name: str | None
    rpc_timeout: float
    blocked_timeout: float | None
    recovery: bool
    recovery_initial_delay: float
    recovery_max_delay: float
    recovery_attempts: int | None
    client_properties: FieldTable | None
    shuffle_addresses: bool


class connect:  # used like a function
    """Open a connection: ``conn = await connect(url)`` or
    ``async with connect(url) as conn``.

    ``url`` defaults to ``$AMQP_URL``, else ``amqp://guest:guest@localhost:5672/``; see
    :mod:`kiltmq.client.url` for its query parameters. Several brokers (a cluster's
    nodes) are a list of URLs or one URL with a comma-separated host list
    (``amqp://user:password@host1:5672,host2:5672/vhost``): the connection opens to the
    first that accepts it and recovery moves to the others (see
    :mod:`kiltmq.client.addresses`). Keyword arguments:

    * ``name``: shown by the broker as the connection's name (client property
      ``connection_name``);
    * ``rpc_timeout`` (30 s): default timeout of synchronous methods and confirms;
    * ``blocked_timeout`` (60 s): a publish waiting on connection.blocked raises
      :class:`BlockedTimeout` after this (None: wait as long as it takes);
    * ``recovery`` (True), ``recovery_initial_delay`` (0.1 s), ``recovery_max_delay``
      (10 s), ``recovery_attempts`` (None: keep trying): automatic recovery;
    * ``shuffle_addresses`` (False): try several brokers in a random order rather than
      in the order given;
    * ``heartbeat``, ``connection_timeout`` (seconds), ``frame_max``, ``channel_max``:
      override the URL's values;
    * ``client_properties``: extra client properties for connection.start-ok;
    * ``ssl_context``: an :class:`ssl.SSLContext` to connect with (TLS even for an
      ``amqp://`` URL; its port stays the URL's), instead of the URL's TLS parameters.

    Errors: :class:`ConnectError` (refused, unreachable, TLS), :class:`ConnectTimeout`,
    :class:`AuthenticationError` (bad credentials), the broker's connection error (e.g.
    ``NotAllowed`` for a missing virtual host), :class:`InvalidURL`. With several
    brokers, the last one's error, with a note for each of the others.
    """

    def __init__(
        self,
        url: str | ConnectionParameters | Sequence[str | ConnectionParameters] | None = None,
        *,
        heartbeat: int | None = None,
        connection_timeout: float | None = None,
        frame_max: int | None = None,
        channel_max: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        **options: Unpack[ConnectionOptions],
    ) -> None:
        for option in options:
            if option not in ConnectionOptions.__optional_keys__:
                raise TypeError(f"connect.__init__() got an unexpected keyword argument {option!r}")
        addresses = parse_addresses(url)
        given = {
            "heartbeat": heartbeat,
            "connection_timeout": connection_timeout,
            "frame_max": frame_max,
            "channel_max": channel_max,
        }
        overrides: dict[str, object] = {
            key: value for key, value in given.items() if value is not None
        }
        if ssl_context is not None:
            overrides.update(ssl=True, context=ssl_context)
        if overrides:
            addresses = tuple(address.replace(**overrides) for address in addresses)
        #: The brokers to connect to, in the order given.
        self.addresses = addresses
        #: The first of them.
        self.parameters = addresses[0]
        self._options = options
        self._connection: Connection | None = None

    async def _open(self) -> Connection:
        connection = Connection(self.addresses, **self._options)
        try:
            await open_first(connection, connection.addresses.first())
        except BaseException:
            connection.state = ConnectionState.CLOSED
            if not connection._closed.done():
                connection._closed.set_result(None)
            raise
        connection.state = ConnectionState.OPEN
        self._connection = connection
        return connection

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._open().__await__()

    async def __aenter__(self) -> Connection:
        return await self._open()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._connection is not None:
            await self._connection.close()

