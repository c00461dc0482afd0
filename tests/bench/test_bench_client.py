"""The load generator's client against a minimal server built on the protocol core.

The server does the handshake with :class:`kiltmq.protocol.Connection` in the server role,
then writes deliveries in tiny pieces so that the client's frame scanner sees frames split
at every possible place; it reads the client's acks back through the same Connection.
"""

from __future__ import annotations

import asyncio

from kiltmq.bench.loadclient import LoadClient, connect, encode_publish
from kiltmq.bench.url import parse_url
from kiltmq.protocol import spec
from kiltmq.protocol.connection import (
    Connection,
    ContentReceived,
    MethodReceived,
    ProtocolHeaderReceived,
    Role,
)
from kiltmq.protocol.frames import content_frames, content_header_payload

COUNT = 300


class _Server:
    """Accepts one connection; after basic.consume sends COUNT deliveries in pieces."""

    def __init__(self, piece: int) -> None:
        self.piece = piece
        self.acked = 0
        self.acks: list[int] = []
        self.published: list[bytes] = []
        self.done = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(Role.SERVER)
        try:
            while not self.done.is_set():
                data = await reader.read(65536)
                if not data:
                    break
                for event in conn.receive_data(data):
                    await self._event(conn, event, writer)
                writer.write(conn.data_to_send())
                await writer.drain()
        finally:
            writer.close()

    async def _event(self, conn: Connection, event: object, writer: asyncio.StreamWriter) -> None:
        if isinstance(event, ContentReceived):
            self.published.append(event.body)
            return
        if isinstance(event, ProtocolHeaderReceived):
            conn.send_method(0, spec.ConnectionStart(server_properties={"product": "t"}))
            return
        if not isinstance(event, MethodReceived):
            return
        method, channel = event.method, event.channel
        if isinstance(method, spec.ConnectionStartOk):
            conn.send_method(0, spec.ConnectionTune(channel_max=0, frame_max=4096, heartbeat=0))
        elif isinstance(method, spec.ConnectionOpen):
            conn.send_method(0, spec.ConnectionOpenOk())
        elif isinstance(method, spec.ConnectionClose):
            conn.send_method(0, spec.ConnectionCloseOk())
            self.done.set()
        elif isinstance(method, spec.ChannelOpen):
            conn.send_method(channel, spec.ChannelOpenOk())
        elif isinstance(method, spec.BasicQos):
            conn.send_method(channel, spec.BasicQosOk())
        elif isinstance(method, spec.BasicConsume):
            conn.send_method(channel, spec.BasicConsumeOk(consumer_tag=method.consumer_tag))
            writer.write(conn.data_to_send())
            await self._deliver(channel, method.consumer_tag, writer)
        elif isinstance(method, spec.BasicAck):
            assert method.multiple
            self.acked = method.delivery_tag
            self.acks.append(method.delivery_tag)

    async def _deliver(self, channel: int, tag: str, writer: asyncio.StreamWriter) -> None:
        props = spec.BasicProperties(delivery_mode=1)
        sizes = [9000 if n % 50 == 49 else n * 37 % 300 for n in range(COUNT)]
        data = b"".join(
            content_frames(
                channel,
                spec.BasicDeliver(tag, n + 1, False, "", "q").encode(),
                # Bodies of 0 to 9000 bytes: none, one and several body frames.
                content_header_payload(60, sizes[n], props),
                bytes(sizes[n]),
                4096,
            )
            for n in range(COUNT)
        )
        for start in range(0, len(data), self.piece):
            writer.write(data[start : start + self.piece])
            if start // self.piece % 64 == 0:
                await writer.drain()
        await writer.drain()


async def _run(piece: int) -> tuple[LoadClient, _Server]:
    server = _Server(piece)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        client = await connect(f"amqp://guest:guest@127.0.0.1:{port}/", timeout=5)
        assert client.frame_max == 4096
        await client.open_channel(1)
        await client.consume(1, "q", no_ack=False, prefetch=1000, ack_every=7)
        async with asyncio.timeout(20):
            while client.delivered < COUNT or server.acked < COUNT:
                await asyncio.sleep(0.01)
        client.send_raw(encode_publish("", "q", b"hello", frame_max=client.frame_max))
        async with asyncio.timeout(5):
            while not server.published:
                await asyncio.sleep(0.01)
        await client.close()
    return client, server


async def test_deliveries_split_anywhere_are_counted_and_acked() -> None:
    for piece in (1, 5, 13, 4096):
        client, server = await _run(piece)
        assert client.delivered == COUNT
        assert server.acked == COUNT
        assert server.published == [b"hello"]
        assert client.error is None


class _PausingServer(_Server):
    """Sends delivery 1 whole and delivery 2 up to half its body, and the rest of it only
    once the client has acknowledged something (after its ack delay with nothing coming)."""

    def __init__(self) -> None:
        super().__init__(0)
        self.rest = b""

    async def _event(self, conn: Connection, event: object, writer: asyncio.StreamWriter) -> None:
        await super()._event(conn, event, writer)
        if isinstance(event, MethodReceived) and isinstance(event.method, spec.BasicAck):
            writer.write(self.rest)
            self.rest = b""

    async def _deliver(self, channel: int, tag: str, writer: asyncio.StreamWriter) -> None:
        props = spec.BasicProperties(delivery_mode=2)
        data = b"".join(
            content_frames(
                channel,
                spec.BasicDeliver(tag, n, False, "", "q").encode(),
                content_header_payload(60, 1024, props),
                bytes(1024),
                4096,
            )
            for n in (1, 2)
        )
        cut = len(data) - 512
        writer.write(data[:cut])
        self.rest = data[cut:]


async def test_a_delivery_whose_body_is_still_coming_is_not_acked() -> None:
    # Acking it early made the client ack its tag twice: 406 unknown delivery tag.
    server = _PausingServer()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        client = await connect(f"amqp://guest:guest@127.0.0.1:{port}/", timeout=5)
        await client.open_channel(1)
        await client.consume(1, "q", no_ack=False, prefetch=1000, ack_every=100)
        async with asyncio.timeout(20):
            while len(server.acks) < 2:
                await asyncio.sleep(0.01)
        await client.close()
    assert client.delivered == 2
    assert server.acks == [1, 2]
    assert client.error is None


def test_parse_url() -> None:
    url = parse_url("amqp://u%40x:p%2Fw@example:5673/%2Fprod")
    assert (url.host, url.port, url.username, url.password, url.vhost) == (
        "example",
        5673,
        "u@x",
        "p/w",
        "/prod",
    )
    assert parse_url("amqp://localhost").vhost == "/"
