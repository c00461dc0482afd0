"""Errors: channel errors raise the reply code's exception and close only that channel;
connection errors reach every pending call; closed channels say so; connecting fails
quickly and clearly."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import pytest

import kiltmq
from kiltmq import (
    AMQPError,
    AuthenticationError,
    ChannelClosed,
    ConnectError,
    ConnectionClosed,
    ConnectionLost,
    ConnectTimeout,
    NotAllowed,
    NotFound,
    PreconditionFailed,
    ResourceLocked,
)
from kiltmq.client import Channel, Connection
from kiltmq.protocol import Connection as ProtocolConnection
from kiltmq.protocol import Event, MethodReceived, ProtocolHeaderReceived, Role, spec


async def test_not_found_closes_only_the_channel(
    conn: Connection, ch: Channel, unique: Callable[[str], str]
) -> None:
    other = await conn.channel()
    with pytest.raises(NotFound) as info:
        await ch.queue_declare(unique("missing"), passive=True)
    assert info.value.reply_code == 404
    assert info.value.method_name == "queue.declare"
    assert not info.value.hard
    assert ch.is_closed
    assert isinstance(ch.close_reason, NotFound)
    # the connection and other channels go on
    assert conn.is_open
    ok = await other.queue_declare("", exclusive=True)
    assert ok.queue
    fresh = await conn.channel()
    assert fresh.is_open


async def test_closed_channel_use_is_a_clear_error(
    conn: Connection, unique: Callable[[str], str]
) -> None:
    ch = await conn.channel()
    queue = (await ch.queue_declare("", exclusive=True)).queue
    await ch.basic_publish(b"x", routing_key=queue)
    message = await ch.basic_get(queue)
    assert message is not None
    with pytest.raises(NotFound):
        await ch.exchange_declare(unique("nope"), passive=True)
    for attempt in (
        ch.queue_declare(queue),
        ch.basic_publish(b"x", routing_key=queue),
        ch.basic_qos(1),
        ch.basic_get(queue),
        ch.confirm_select(),
    ):
        with pytest.raises(ChannelClosed) as info:
            await attempt
        assert "channel" in str(info.value) and "closed" in str(info.value)
        assert isinstance(info.value.reason, NotFound)
    with pytest.raises(ChannelClosed):
        ch.consume(queue)
    with pytest.raises(ChannelClosed):
        ch.publish_nowait(b"x")
    with pytest.raises(ChannelClosed):
        await message.ack()
    # closed by the application: same error, no reason
    mine = await conn.channel()
    await mine.close()
    with pytest.raises(ChannelClosed) as closed:
        await mine.queue_declare("")
    assert closed.value.reason is None


async def test_precondition_failed_on_redeclare(
    ch: Channel, conn: Connection, unique: Callable[[str], str]
) -> None:
    queue = unique("q")
    await ch.queue_declare(queue, exclusive=True)
    with pytest.raises(PreconditionFailed):
        await ch.queue_declare(queue, exclusive=True, arguments={"x-max-length": 3})
    assert ch.is_closed and conn.is_open


async def test_unknown_delivery_tag(ch: Channel, conn: Connection) -> None:
    await ch.basic_ack(999)
    with pytest.raises(PreconditionFailed):
        await ch.queue_declare("", exclusive=True)
    assert conn.is_open


async def test_publish_to_missing_exchange(
    conn: Connection, unique: Callable[[str], str]
) -> None:
    confirming = await conn.channel()
    await confirming.confirm_select()
    with pytest.raises(NotFound):
        await confirming.basic_publish(b"x", unique("nowhere"), "rk")
    plain = await conn.channel()
    await plain.basic_publish(b"x", unique("nowhere"), "rk")  # no reply to publish ...
    with pytest.raises(NotFound):
        await plain.queue_declare("", exclusive=True)  # ... the next call gets the error


async def test_exclusive_queue_is_locked(
    amqp_url: str, ch: Channel, unique: Callable[[str], str]
) -> None:
    queue = unique("mine")
    await ch.queue_declare(queue, exclusive=True)
    async with kiltmq.connect(amqp_url, recovery=False) as other:
        other_ch = await other.channel()
        with pytest.raises(ResourceLocked):
            await other_ch.queue_declare(queue, exclusive=True)


async def test_settling_mistakes(ch: Channel) -> None:
    queue = (await ch.queue_declare("", exclusive=True)).queue
    for _ in range(2):
        await ch.basic_publish(b"x", routing_key=queue)
    message = await ch.basic_get(queue)
    assert message is not None
    await message.ack()
    await message.ack()  # twice: a no-op, not a channel error
    auto = await ch.basic_get(queue, no_ack=True)
    assert auto is not None
    with pytest.raises(ValueError):
        await auto.ack()
    assert ch.is_open
    assert (await ch.queue_declare(queue, passive=True)).message_count == 0


async def test_connection_error_reaches_pending_calls(
    amqp_url: str, broker_kind: str
) -> None:
    async with kiltmq.connect(amqp_url, recovery=False) as conn:
        ch = await conn.channel()
        other = await conn.channel()
        consumer = await other.consume((await other.queue_declare("", exclusive=True)).queue)
        # RabbitMQ and kiltmq refuse prefetch_size with 540 NOT_IMPLEMENTED, a
        # connection error.
        with pytest.raises(AMQPError) as info:
            await ch.basic_qos(prefetch_count=1, prefetch_size=1000)
        assert info.value.hard
        assert isinstance(info.value, ConnectionLost)
        async with asyncio.timeout(10):
            await conn.wait_closed()
        assert conn.is_closed and ch.is_closed and other.is_closed
        with pytest.raises(ChannelClosed):
            await other.queue_declare("")
        with pytest.raises(ConnectionClosed):
            await conn.channel()
        with pytest.raises(ConnectionLost):
            async with asyncio.timeout(10):
                await anext(consumer)


async def test_connection_closed_by_application(conn: Connection) -> None:
    ch = await conn.channel()
    queue = (await ch.queue_declare("", exclusive=True)).queue
    consumer = await ch.consume(queue)
    await conn.close()
    with pytest.raises(ChannelClosed) as info:
        await ch.queue_declare("")
    assert isinstance(info.value.reason, ConnectionClosed)
    with pytest.raises(StopAsyncIteration):  # ends cleanly
        async with asyncio.timeout(10):
            await anext(consumer)
    with pytest.raises(ConnectionClosed):
        await conn.channel()
    await conn.close()  # idempotent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused() -> None:
    port = _free_port()
    with pytest.raises(ConnectError) as info:
        async with asyncio.timeout(10):
            await kiltmq.connect(f"amqp://guest:guest@127.0.0.1:{port}/?connection_timeout=2000")
    assert str(port) in str(info.value)


async def test_connection_timeout_on_silent_server() -> None:
    # A listening socket that never answers the protocol header.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        with pytest.raises(ConnectTimeout):
            async with asyncio.timeout(10):
                await kiltmq.connect(f"amqp://127.0.0.1:{port}/?connection_timeout=300")


def _with_credentials(url: str, user: str, password: str, vhost: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port or 5672}"
    path = parts.path if vhost is None else "/" + vhost
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


async def test_bad_credentials(amqp_url: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        async with asyncio.timeout(15):
            await kiltmq.connect(_with_credentials(amqp_url, "guest", "wrong-password"))
    assert info.value.reply_code == 403


async def test_missing_virtual_host(amqp_url: str) -> None:
    with pytest.raises(NotAllowed):
        async with asyncio.timeout(15):
            await kiltmq.connect(_with_credentials(amqp_url, "guest", "guest", "no-such-vhost"))


class BrokenServer:
    """A server made of the protocol core that sends a frame with a bad frame-end octet
    in reply to the protocol header (``stage`` "start", after connection.start) or to
    channel.open ("open", with the connection open), and records what the client
    answers after that."""

    BAD_FRAME = b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x0a\x00"  # end octet 0x00

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.replies: list[Event] = []
        self.done = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        core = ProtocolConnection(Role.SERVER)
        broken = False
        try:
            while not self.done.is_set():
                data = await reader.read(65536)
                if not data:
                    break
                for event in core.receive_data(data):
                    if broken:
                        self.replies.append(event)
                    elif isinstance(event, ProtocolHeaderReceived):
                        core.send_method(
                            0, spec.ConnectionStart(0, 9, {}, b"PLAIN", b"en_US")
                        )
                        broken = self.stage == "start"
                    elif isinstance(event, MethodReceived):
                        method = event.method
                        if isinstance(method, spec.ConnectionStartOk):
                            core.send_method(0, spec.ConnectionTune(2047, 131072, 0))
                        elif isinstance(method, spec.ConnectionOpen):
                            core.send_method(0, spec.ConnectionOpenOk())
                        elif isinstance(method, spec.ChannelOpen):
                            broken = True
                    if broken and not self.replies:
                        core.send_raw(self.BAD_FRAME)
                writer.write(core.data_to_send())
        finally:
            self.done.set()
            writer.close()


@pytest.mark.parametrize("stage", ["start", "open"])
async def test_broken_frames_from_the_server(stage: str) -> None:
    broken = BrokenServer(stage)
    server = await asyncio.start_server(broken.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"amqp://guest:guest@127.0.0.1:{port}/?connection_timeout=5000"
    try:
        async with asyncio.timeout(10):
            if stage == "start":
                with pytest.raises(ConnectError, match="protocol error during the handshake"):
                    await kiltmq.connect(url)
                return
            conn = await kiltmq.connect(url, recovery=False)
            with pytest.raises(ConnectionLost):
                await conn.channel()
            assert isinstance(await conn.wait_closed(), ConnectionLost)
            await broken.done.wait()
        # the client said why it gave up: connection.close 501 FRAME_ERROR
        closes = [
            e.method.reply_code
            for e in broken.replies
            if isinstance(e, MethodReceived) and isinstance(e.method, spec.ConnectionClose)
        ]
        assert closes == [501], broken.replies
    finally:
        server.close()
        await server.wait_closed()
