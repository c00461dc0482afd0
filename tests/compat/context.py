"""What a compatibility scenario gets: a transcript, unique names, connection factories."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable
from typing import Any

from kiltmq.bench.url import parse_url
from kiltmq.protocol import Method, MethodReceived, ProtocolError, spec
from kiltmq.protocol.dialect import AMQP_0_9_1, Dialect

from .recording import REPLY_TIMEOUT, RecordingChannel, RecordingConnection, ScenarioAborted
from .transcript import Closed, Transcript


class Context:
    """What a scenario gets: a transcript, unique names, and connection factories."""

    def __init__(self, url: str, text_rules: Iterable[tuple[str, str]] = ()) -> None:
        self.url = url
        parts = parse_url(url)
        self.host, self.port = parts.host, parts.port
        self.username, self.password, self.vhost = parts.username, parts.password, parts.vhost
        self.prefix = f"compat-{uuid.uuid4().hex[:10]}."
        self.t = Transcript(self.prefix, text_rules)
        self.connections: list[RecordingConnection] = []
        self.queues: set[str] = set()
        self.exchanges: set[str] = set()
        self._labels = 0

    def q(self, name: str) -> str:
        """A unique queue name, deleted after the scenario."""
        full = self.prefix + name
        self.queues.add(full)
        return full

    def x(self, name: str) -> str:
        """A unique exchange name, deleted after the scenario."""
        full = self.prefix + name
        self.exchanges.add(full)
        return full

    async def socket(
        self, label: str | None = None, dialect: Dialect = AMQP_0_9_1
    ) -> RecordingConnection:
        """A TCP connection and nothing else: no header sent yet. Its core speaks
        ``dialect`` (AMQP 0-9-1 unless told otherwise)."""
        if label is None:
            self._labels += 1
            label = f"c{self._labels}"
        conn = await RecordingConnection.open(
            self.port,
            self.host,
            timeout=REPLY_TIMEOUT,
            transcript=self.t,
            label=label,
            dialect=dialect,
        )
        self.connections.append(conn)
        return conn

    async def connect(
        self,
        label: str | None = None,
        *,
        record: bool = False,
        vhost: str | None = None,
        username: str | None = None,
        password: str | None = None,
        heartbeat: int | None = 0,
        dialect: Dialect = AMQP_0_9_1,
        header: bytes | None = None,
        mechanism: str = "PLAIN",
        client_properties: dict[str, Any] | None = None,
    ) -> RecordingConnection:
        """A connection through connection.open-ok, in ``dialect`` (sending ``header``
        instead of the dialect's own protocol header if given, and ``client_properties``
        besides the product and capabilities)."""
        conn = await self.socket(label, dialect)
        ok = await conn.try_handshake(
            username=self.username if username is None else username,
            password=self.password if password is None else password,
            vhost=self.vhost if vhost is None else vhost,
            heartbeat=heartbeat,
            record=record,
            header=header,
            mechanism=mechanism,
            client_properties=client_properties,
        )
        if not ok and not record:
            raise ScenarioAborted(f"connection {conn.label} did not open")
        return conn

    async def channel(self, label: str | None = None) -> RecordingChannel:
        """A new connection with one channel open."""
        conn = await self.connect(label)
        return await conn.channel()

    async def wait_counts(
        self, queue: str, *, messages: int, consumers: int, timeout: float = REPLY_TIMEOUT
    ) -> bool:
        """Poll queue.declare (passive) off the record until ``queue`` holds ``messages``
        ready messages and ``consumers`` consumers. A quorum queue on RabbitMQ applies a
        closed channel's returns a moment after channel.close-ok; this waits for that
        without the transcript depending on when it happens."""
        conn = await RecordingConnection.open(
            self.port, self.host, timeout=REPLY_TIMEOUT, transcript=Transcript(self.prefix),
            label="poll",
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            if not await conn.try_handshake(
                username=self.username, password=self.password, vhost=self.vhost
            ):
                return False
            ch = await conn.channel()
            while True:
                item = await ch.call(spec.QueueDeclare(queue=queue, passive=True))
                if not (isinstance(item, MethodReceived)
                        and isinstance(item.method, spec.QueueDeclareOk)):
                    return False
                ok = item.method
                if ok.message_count == messages and ok.consumer_count == consumers:
                    return True
                if loop.time() > deadline:
                    return False
                await asyncio.sleep(0.02)
        finally:
            conn.abort()

    def check(self, condition: bool, what: str) -> None:
        """Record a fact the scenario computed itself (so both brokers must agree)."""
        self.t.add("check", what, {"ok": condition})

    async def cleanup(self) -> None:
        for conn in self.connections:
            conn.abort()
        if not (self.queues or self.exchanges):
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._delete_all(), 10)

    async def _delete_all(self) -> None:
        quiet = Transcript(self.prefix)
        conn = await RecordingConnection.open(
            self.port, self.host, timeout=REPLY_TIMEOUT, transcript=quiet, label="cleanup"
        )
        try:
            if not await conn.try_handshake(
                username=self.username, password=self.password, vhost=self.vhost
            ):
                return
            ch = await conn.channel()
            todo: list[Method] = [spec.QueueDelete(queue=q) for q in sorted(self.queues)]
            todo += [spec.ExchangeDelete(exchange=x) for x in sorted(self.exchanges)]
            for method in todo:
                item = await ch.call(method)
                if isinstance(item, MethodReceived) and isinstance(item.method, spec.ChannelClose):
                    ch = await conn.channel()
                elif isinstance(item, Closed | ProtocolError):
                    return
            await conn.close()
        finally:
            conn.abort()
