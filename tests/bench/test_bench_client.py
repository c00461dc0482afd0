"""The load generator's client against a minimal server built on the protocol core.

The server does the handshake with :class:`kiltmq.protocol.Connection` in the server role,
then writes deliveries in tiny pieces so that the client's frame scanner sees frames split
at every possible place; it reads the client's acks back through the same Connection.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from kiltmq.bench.loadclient import ACK_DELAY, LoadClient, connect, encode_publish
from kiltmq.bench.url import parse_url
from kiltmq.protocol import spec
from kiltmq.protocol.connection import (
    Connection,
    ContentReceived,
    MethodReceived,
    ProtocolHeaderReceived,
    Role,
)
from kiltmq.protocol.frames import content_frames, content_header_payload, method_frame

COUNT = 300


class _Server:
    """Accepts one connection; after basic.consume sends COUNT deliveries in pieces."""

    def __init__(self, piece: int, count: int = COUNT, gap: float = 0.0) -> None:
        self.piece = piece
        self.count = count
        self.gap = gap  # seconds between a delivery's header and its body, if any
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
        if self.gap:
            for n in range(self.count):
                frames = content_frames(
                    channel,
                    spec.BasicDeliver(tag, n + 1, False, "", "q").encode(),
                    content_header_payload(60, 100, props),
                    bytes(100),
                    4096,
                )
                writer.write(frames[:-108])  # all but the body frame
                await writer.drain()
                await asyncio.sleep(self.gap)
                writer.write(frames[-108:])
                await writer.drain()
            return
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


async def test_a_delivery_whose_body_is_late_is_acked_once() -> None:
    # Acks left over are sent ACK_DELAY after the last delivery; a delivery whose body has
    # not come yet is not among them (acking it then and again later would be an error).
    server = _Server(4096, count=5, gap=ACK_DELAY * 5)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        client = await connect(f"amqp://guest:guest@127.0.0.1:{port}/", timeout=5)
        await client.open_channel(1)
        await client.consume(1, "q", no_ack=False, prefetch=1000, ack_every=100)
        async with asyncio.timeout(20):
            while client.delivered < 5 or server.acked < 5:
                await asyncio.sleep(0.01)
        await client.close()
    assert server.acks == sorted(set(server.acks))
    assert server.acks[-1] == 5
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


class _Transport:
    """What the frame scanner writes to (acks), recorded."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.written.append(b"aborted")


async def test_a_body_continuing_in_later_reads_is_counted_not_kept() -> None:
    client = LoadClient()
    client.transport = _Transport()  # type: ignore[assignment]
    client.ack_channel = 1
    client.ack_every = 1
    client.latencies = []
    sent = time.monotonic_ns()
    body = sent.to_bytes(8, "big") + bytes(65528)
    frames = b"".join(
        content_frames(
            1,
            spec.BasicDeliver("c", tag, False, "", "q").encode(),
            content_header_payload(60, len(body), None),
            body,
            131072,
        )
        for tag in (1, 2)
    )
    one = len(frames) // 2
    # reads ending about 40000 bytes into the first body and 1 byte before the second's end
    cuts = [0, one - 25000, len(frames) - 1, len(frames)]
    for a, b in itertools.pairwise(cuts):
        client._scan(frames[a:b])
        assert len(client._rest) < 16  # the body's bytes so far are not kept
        assert client.delivered == (0 if b < one else 1 if b < len(frames) else 2)
    assert client.error is None
    assert client.transport.written == [_ack(1), _ack(2)]  # type: ignore[union-attr]
    assert len(client.latencies) == 2 and min(client.latencies) >= 0


def _ack(tag: int) -> bytes:
    return method_frame(1, spec.BasicAck(tag, multiple=True))


async def test_a_bad_frame_end_after_a_body_split_over_reads_is_a_frame_error() -> None:
    client = LoadClient()
    client.transport = _Transport()  # type: ignore[assignment]
    body = bytes(65536)
    frames = content_frames(
        1,
        spec.BasicDeliver("c", 1, False, "", "q").encode(),
        content_header_payload(60, len(body), None),
        body,
        131072,
    )
    client._scan(frames[:30000])
    client._scan(frames[30000:-1] + b"\x00")
    assert client.error is not None and "frame end" in str(client.error)
    assert client.transport.written == [b"aborted"]  # type: ignore[union-attr]
    assert client.delivered == 0
