"""The client side of the AMQP handshake: connection.start / start-ok (client
properties, authentication), tune / tune-ok and open / open-ok."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from kiltmq.client.errors import AuthenticationError, ConnectError
from kiltmq.client.url import ConnectionParameters
from kiltmq.protocol import spec
from kiltmq.protocol.codec import FieldTable, encode_table
from kiltmq.protocol.connection import negotiate
from kiltmq.protocol.errors import error_for
from kiltmq.protocol.spec import Method

__all__ = ["CAPABILITIES", "Handshake"]

CAPABILITIES: dict[str, bool] = {
    "publisher_confirms": True,
    "consumer_cancel_notify": True,
    "basic.nack": True,
    "connection.blocked": True,
    "exchange_exchange_bindings": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
}


def client_properties(version: str, name: str | None, extra: FieldTable | None) -> FieldTable:
    """The client properties sent in connection.start-ok."""
    properties: dict[str, Any] = {
        "product": "kiltmq",
        "version": version,
        "platform": f"Python {sys.version.split()[0]}",
        "information": "asyncio AMQP 0-9-1 client",
        "capabilities": dict(CAPABILITIES),
    }
    if name:
        properties["connection_name"] = name
    if extra:
        properties.update(extra)
    return properties


def auth_response(params: ConnectionParameters, offered: list[str]) -> tuple[str, bytes]:
    """The first of ``params.auth_mechanisms`` the broker offers, and its response."""
    for mechanism in params.auth_mechanisms:
        if mechanism in offered:
            break
    else:
        raise ConnectError(
            f"the broker offers {' '.join(offered) or 'no'} authentication mechanisms, "
            f"none of {', '.join(params.auth_mechanisms)}"
        )
    if mechanism == "PLAIN":
        response = f"\0{params.username}\0{params.password}".encode()
    elif mechanism == "AMQPLAIN":
        response = encode_table({"LOGIN": params.username, "PASSWORD": params.password})[4:]
    else:  # EXTERNAL: the identity comes from the TLS client certificate
        response = b""
    return mechanism, response


class Handshake:
    """One handshake: the channel-0 methods received so far, and the exchange itself.

    The connection feeds it what arrives on channel 0 (:meth:`feed`) or why the
    connection failed (:meth:`fail`); :meth:`run` sends and awaits the methods with
    ``send(method)``. The negotiated values are set as they are known.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[Method], None]) -> None:
        self.loop = loop
        self._send = send
        self._methods: list[Method] = []
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self.server_properties: FieldTable | None = None
        #: (channel_max, frame_max, heartbeat) once tuned
        self.tuned: tuple[int, int, int] | None = None

    def feed(self, method: Method) -> None:
        self._methods.append(method)
        self._wake()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _next(self) -> Method:
        # a protocol error wins over methods received before it: the connection is
        # already closing
        while self._error is not None or not self._methods:
            if self._error is not None:
                raise self._error
            waiter = self._waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        method = self._methods.pop(0)
        if isinstance(method, spec.ConnectionClose):
            self._send(spec.ConnectionCloseOk())
            if method.reply_code == spec.ReplyCode.ACCESS_REFUSED:
                raise AuthenticationError(
                    method.reply_text, method.class_id, method.method_id
                )
            raise error_for(
                method.reply_code, method.reply_text, method.class_id, method.method_id,
                scope="connection",
            )
        return method

    async def run(self, params: ConnectionParameters, properties: FieldTable) -> None:
        """From connection.start (the protocol header is sent) to connection.open-ok."""
        start = await self._next()
        if not isinstance(start, spec.ConnectionStart):
            raise ConnectError(f"expected connection.start, got {start.NAME}")
        self.server_properties = dict(start.server_properties or {})
        mechanism, response = auth_response(params, start.mechanisms.decode().split())
        self._send(spec.ConnectionStartOk(properties, mechanism, response, "en_US"))
        tune = await self._next()
        if isinstance(tune, spec.ConnectionSecure):
            raise ConnectError(f"the {mechanism} mechanism does not use a challenge")
        if not isinstance(tune, spec.ConnectionTune):
            raise ConnectError(f"expected connection.tune, got {tune.NAME}")
        channel_max = negotiate(params.channel_max, tune.channel_max)
        frame_max = negotiate(params.frame_max, tune.frame_max)
        heartbeat = negotiate(params.heartbeat, tune.heartbeat) if params.heartbeat else 0
        self._send(spec.ConnectionTuneOk(channel_max, frame_max, heartbeat))
        self.tuned = (channel_max, frame_max, heartbeat)
        self._send(spec.ConnectionOpen(params.virtual_host))
        ok = await self._next()
        if not isinstance(ok, spec.ConnectionOpenOk):
            raise ConnectError(f"expected connection.open-ok, got {ok.NAME}")
