"""Garbage never crashes the broker or disturbs other connections.

Random bytes, and valid frames with random payloads, go to fresh connections after a
real handshake; afterwards a bystander connection opened before them still works and a
new one can be opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct

import pytest

from kiltmq.bench.rawclient import Disconnected, RawClient
from kiltmq.broker import Broker
from kiltmq.protocol import spec
from kiltmq.protocol.frames import FRAME_END_OCTET, FRAME_HEAD, encode_frame

pytestmark = pytest.mark.timeout(90)


def _garbage(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:  # raw noise
        return rng.randbytes(rng.randrange(1, 300))
    if kind == 1:  # a well-framed method with a random payload
        index = rng.choice(list(spec.METHODS))
        payload = struct.pack(">I", index) + rng.randbytes(rng.randrange(0, 60))
        return encode_frame(1, rng.choice([0, 1, 2]), payload)
    if kind == 2:  # a valid publish with a random content header
        publish = encode_frame(1, 1, spec.BasicPublish("", "fuzz").encode())
        header = encode_frame(2, 1, struct.pack(">HHQ", 60, 0, 3) + rng.randbytes(20))
        return publish + header + encode_frame(3, 1, b"abc")
    # a random frame type / channel / size, well terminated
    body = rng.randbytes(rng.randrange(0, 40))
    head = FRAME_HEAD.pack(rng.randrange(256), rng.randrange(65536), len(body))
    return head + body + FRAME_END_OCTET


async def _attack(port: int, data: bytes) -> None:
    client = await RawClient.connect(port)
    await client.open_channel(1)
    client.send_raw(data)
    with contextlib.suppress(Disconnected, TimeoutError, ConnectionError, AssertionError):
        for _ in range(20):
            event = await client.event(timeout=0.3)
            method = getattr(event, "method", None)
            if isinstance(method, spec.ConnectionClose):
                client.send(0, spec.ConnectionCloseOk())
            elif isinstance(method, spec.ChannelClose):
                client.send(1, spec.ChannelCloseOk())
    await client.disconnect()


async def test_random_input_after_the_handshake() -> None:
    rng = random.Random(0x6B696C74)
    async with Broker(port=0, handshake_timeout=5) as broker:
        bystander = await RawClient.connect(broker.port)
        await bystander.open_channel(1)
        await bystander.call(1, spec.QueueDeclare("fuzz"))
        await asyncio.gather(*(_attack(broker.port, _garbage(rng)) for _ in range(60)))
        reply = await bystander.call(1, spec.QueueDeclare("fuzz", passive=True))
        assert isinstance(reply, spec.QueueDeclareOk)
        late = await RawClient.connect(broker.port)
        await late.open_channel(1)
        assert isinstance(await late.call(1, spec.QueueDeclare("fuzz")), spec.QueueDeclareOk)
        await late.disconnect()
        await bystander.disconnect()


async def test_random_bytes_instead_of_a_handshake() -> None:
    rng = random.Random(42)
    async with Broker(port=0, handshake_timeout=1) as broker:
        for _ in range(30):
            client = await RawClient.open(broker.port)
            client.send_raw(rng.randbytes(rng.randrange(1, 100)))
            with contextlib.suppress(TimeoutError, ConnectionError):
                await client.read_bytes(3)
            await client.disconnect()
        client = await RawClient.connect(broker.port)
        await client.open_channel(1)
        await client.disconnect()
