"""The TLS handshake of a connection to an amqps listener, once its endpoint admitted it.

It runs with ``loop.start_tls`` under the handshake timeout; a failed one logs one line
and closes the socket. What the client sent before it (uvloop reads once even while
paused) is handed to the TLS protocol; the certificate of a verified client is what
SASL EXTERNAL logs in with.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING

from kiltmq.broker.endpoint import Endpoint
from kiltmq.broker.session import Session
from kiltmq.broker.tls import external_login, feed_protocol

__all__ = ["TlsStart"]

log = logging.getLogger("kiltmq.broker")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


class TlsStart(asyncio.Protocol):
    """The TLS part of :class:`~kiltmq.broker.server.ServerConnection` (a mixin: the
    attributes below are the connection's)."""

    endpoint: Endpoint
    loop: asyncio.AbstractEventLoop
    session: Session
    transport: asyncio.Transport | None
    _closed: bool
    _early: list[bytes] | None
    _tls_task: asyncio.Task[None] | None

    if TYPE_CHECKING:

        def _use_transport(self, transport: asyncio.Transport) -> None: ...

    def _hand_over_early_bytes(self) -> None:
        """Runs just after ``start_tls`` put its TLS protocol on the transport: give it
        what the client sent before (uvloop reads once even if paused in
        connection_made); what arrives from now on before ``start_tls`` returns is
        decrypted AMQP."""
        raw, self._early = self._early, []
        transport = self.transport
        if raw and transport is not None and not self._closed:
            tls_protocol = transport.get_protocol()
            if tls_protocol is not self:
                for data in raw:
                    feed_protocol(tls_protocol, data)

    async def _start_tls(self, context: ssl.SSLContext) -> None:
        raw = self.transport
        assert raw is not None
        try:
            transport = await self.loop.start_tls(raw, self, context, server_side=True)
        except (OSError, RuntimeError) as exc:  # ssl.SSLError and TimeoutError too
            if not self._closed:
                log.warning("%s: TLS handshake failed: %s", self.session.peer_name, _reason(exc))
            self._closed = True
            raw.abort()
            self.connection_lost(None)
            return
        finally:
            self._tls_task = None
        if transport is None or self._closed:
            return
        self._use_transport(transport)
        if self.endpoint.login_from is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            self.session.external = external_login(ssl_object, self.endpoint.login_from)
        early, self._early = self._early, None
        for data in early or ():
            self.data_received(data)
