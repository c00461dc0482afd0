"""A raw AMQP client for broker tests: the sans-IO core over asyncio streams.

Legal frames go through :class:`kiltmq.protocol.Connection` (client role); illegal ones are
written as raw bytes. Every read is bounded by a timeout so a test never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import deque
from typing import Any

from kiltmq.protocol import (
    BasicProperties,
    Connection,
    ContentReceived,
    Event,
    HeartbeatReceived,
    MethodReceived,
    Role,
    encode_table,
    spec,
)

TIMEOUT = 10.0


class EOF(Exception):
    """The broker closed the connection."""


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.core = Connection(Role.CLIENT)
        self.events: deque[Event] = deque()
        self.heartbeats = 0

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> RawClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
        return cls(reader, writer)

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        username: str = "guest",
        password: str = "guest",
        vhost: str = "/",
        heartbeat: int = 0,
        mechanism: str = "PLAIN",
        capabilities: dict[str, Any] | None = None,
    ) -> RawClient:
        """Connect and run the handshake up to connection.open-ok."""
        client = await cls.open(port)
        start = await client.start(capabilities)
        assert isinstance(start, spec.ConnectionStart)
        tune = await client.login(username, password, mechanism)
        assert isinstance(tune, spec.ConnectionTune), tune
        client.send(0, spec.ConnectionTuneOk(tune.channel_max, tune.frame_max, heartbeat))
        reply = await client.call(0, spec.ConnectionOpen(vhost))
        assert isinstance(reply, spec.ConnectionOpenOk), reply
        return client

    async def start(self, capabilities: dict[str, Any] | None = None) -> spec.Method:
        self.capabilities = (
            {"consumer_cancel_notify": True, "authentication_failure_close": True}
            if capabilities is None
            else capabilities
        )
        self.core.send_protocol_header()
        self.flush()
        return await self.method(0)

    async def login(self, username: str, password: str, mechanism: str = "PLAIN") -> spec.Method:
        if mechanism == "AMQPLAIN":
            table = encode_table({"LOGIN": username, "PASSWORD": password})
            response = table[4:]  # AMQPLAIN: a field table without its length prefix
        else:
            response = b"\x00" + username.encode() + b"\x00" + password.encode()
        self.send(
            0,
            spec.ConnectionStartOk(
                {"product": "raw test client", "capabilities": self.capabilities},
                mechanism,
                response,
                "en_US",
            ),
        )
        return await self.method(0)

    # -- sending --------------------------------------------------------------------------

    def flush(self) -> None:
        data = self.core.data_to_send()
        if data:
            self.writer.write(data)

    def send(self, channel: int, method: spec.Method) -> None:
        self.core.send_method(channel, method)
        self.flush()

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def send_raw_method(self, channel: int, method: spec.Method) -> None:
        """A method frame written around the core's state tracking (for illegal ones)."""
        payload = method.encode()
        self.writer.write(struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce")

    def publish(
        self,
        channel: int,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: BasicProperties | None = None,
        *,
        mandatory: bool = False,
    ) -> None:
        self.core.send_content(
            channel,
            spec.BasicPublish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
            properties,
            body,
        )
        self.flush()

    async def open_channel(self, number: int = 1) -> None:
        reply = await self.call(number, spec.ChannelOpen())
        assert isinstance(reply, spec.ChannelOpenOk), reply

    # -- receiving ------------------------------------------------------------------------

    async def event(self, timeout: float = TIMEOUT, *, heartbeats: bool = False) -> Event:
        """The next event (heartbeats are counted and skipped unless asked for)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while self.events:
                event = self.events.popleft()
                if isinstance(event, HeartbeatReceived) and not heartbeats:
                    self.heartbeats += 1
                    continue
                return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("no event from the broker")
            data = await asyncio.wait_for(self.reader.read(65536), remaining)
            if not data:
                raise EOF()
            self.events.extend(self.core.receive_data(data))
            self.flush()

    async def method(self, channel: int | None = None, timeout: float = TIMEOUT) -> spec.Method:
        """The next method (optionally on ``channel``), skipping nothing else."""
        event = await self.event(timeout)
        assert isinstance(event, MethodReceived | ContentReceived), event
        if channel is not None:
            assert event.channel == channel, (event.channel, event.method)
        return event.method

    async def content(self, timeout: float = TIMEOUT) -> ContentReceived:
        event = await self.event(timeout)
        assert isinstance(event, ContentReceived), event
        return event

    async def call(self, channel: int, method: spec.Method) -> spec.Method:
        self.send(channel, method)
        return await self.method()

    async def eof(self, timeout: float = TIMEOUT) -> list[Event]:
        """Read until the broker closes the socket; return the events seen meanwhile."""
        seen: list[Event] = []
        try:
            while True:
                seen.append(await self.event(timeout, heartbeats=True))
        except EOF:
            return seen
        except ConnectionResetError:
            return seen

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)
