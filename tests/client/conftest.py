"""Fixtures for the client tests: a connection and a channel to the broker chosen by the
parametrized ``amqp_url`` (tests/conftest.py), and unique names for test entities."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

import kiltmq
from kiltmq.client import Channel, Connection


def unavailable(reason: str) -> NoReturn:
    """A tool the test needs (openssl, rabbitmqctl) is missing or failed: skip the test,
    or fail it under CI, which is expected to provide everything."""
    if os.environ.get("CI"):
        pytest.fail(f"CI requires this test to run: {reason}", pytrace=False)
    pytest.skip(reason)


async def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl`` on the local RabbitMQ; its output."""
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    if process.returncode != 0:
        unavailable(f"rabbitmqctl {args[0]} failed: {err.decode().strip()}")
    return out.decode()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """``unique("q")`` -> a name no other test uses ("test.q.1a2b3c4d")."""
    run = uuid.uuid4().hex[:8]
    return lambda what: f"test.{what}.{run}"


@pytest.fixture
async def conn(amqp_url: str) -> AsyncIterator[Connection]:
    connection = await kiltmq.connect(amqp_url, rpc_timeout=10, connection_timeout=10)
    try:
        yield connection
    finally:
        await connection.close(timeout=5)


@pytest.fixture
async def ch(conn: Connection) -> Channel:
    return await conn.channel()


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of a broker, to cut or freeze the network under a
    client: ``drop_all()`` aborts every proxied connection (a network failure),
    ``freeze()`` stops forwarding bytes while keeping the sockets open (a silent peer).
    With ``ssl_context`` it terminates TLS (an amqps:// front for a plain broker)."""

    def __init__(self, target_url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(target_url)
        self.target_url = target_url
        self.ssl_context = ssl_context
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5672)
        self.frozen = False
        self.port = 0
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        parts = urlsplit(self.target_url)
        netloc = f"{parts.username}:{parts.password}@127.0.0.1:{self.port}"
        scheme = "amqps" if self.ssl_context is not None else parts.scheme
        return urlunsplit((scheme, netloc, parts.path, parts.query, ""))

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        link = (writer, up_writer)
        self._links.add(link)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pump(source, sink, link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        link: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while data := await source.read(65536):
                if not self.frozen:
                    sink.write(data)
                    await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # a frozen link passes on no close either (a silent peer stays silent): its
            # sockets go with drop_all
            if not self.frozen:
                for writer in link:
                    writer.transport.abort()
                self._links.discard(link)

    def freeze(self) -> None:
        self.frozen = True

    def thaw(self) -> None:
        self.frozen = False

    def drop_all(self) -> None:
        for link in list(self._links):
            for writer in link:
                writer.transport.abort()
        self._links.clear()

    async def close(self) -> None:
        self.drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    """A :class:`TcpProxy` in front of the broker under test."""
    tcp_proxy = await TcpProxy(amqp_url).start()
    try:
        yield tcp_proxy
    finally:
        await tcp_proxy.close()
