"""One address the broker listens on: plain AMQP or amqps (its TLS context), and the
connections it admits.

The connection limit is RabbitMQ's ``connection_max``, which RabbitMQ 3.10 hands to each
of its listeners (ranch's ``max_connections``): once a listener has that many
connections it stops accepting, and new clients wait, connected but unanswered (not
even the TLS handshake), until one of its connections closes. Here a connection over
the limit is accepted but not read from, and no handshake timer runs for it, until a
place frees; then it is served as if it had just arrived.
"""

from __future__ import annotations

import logging
import ssl
from collections import deque
from typing import Protocol

__all__ = ["Endpoint", "WaitingConnection"]

log = logging.getLogger("kiltmq.broker")


class WaitingConnection(Protocol):
    """What an endpoint needs of a connection waiting for a place."""

    @property
    def closed(self) -> bool: ...

    def admit(self) -> None: ...


class Endpoint:
    """A listening address with its TLS settings (None: plain AMQP), EXTERNAL login
    (``login_from`` None: not offered) and connection limit (None: none)."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        *,
        login_from: str | None = None,
        max_connections: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.login_from = login_from
        self.max_connections = max_connections
        #: Connections admitted and not yet closed.
        self.active = 0
        self.waiting: deque[WaitingConnection] = deque()

    def accept(self, conn: WaitingConnection) -> bool:
        """Whether ``conn`` may be served now; if not it waits for :meth:`release`."""
        limit = self.max_connections
        if limit is None or self.active < limit:
            self.active += 1
            return True
        if not self.waiting:
            log.warning(
                "connection limit (%d) reached on port %d: new connections wait", limit, self.port
            )
        self.waiting.append(conn)
        return False

    def release(self, conn: WaitingConnection, admitted: bool) -> None:
        """``conn`` closed: its place goes to the longest waiting connection."""
        if not admitted:
            if conn in self.waiting:
                self.waiting.remove(conn)
            return
        self.active -= 1
        limit = self.max_connections
        while self.waiting and (limit is None or self.active < limit):
            waiting = self.waiting.popleft()
            if waiting.closed:
                continue
            self.active += 1
            waiting.admit()
