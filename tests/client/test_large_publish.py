"""A large body is published without being joined with its frames where the transport
writes vectors (uvloop): the body object itself reaches ``writelines``. Elsewhere, and for
smaller bodies or bodies split over several frames, one joined write as before."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from tests.broker.transport_spy import Calls, WriteSpy, pieces

import kiltmq
from kiltmq import event_loop
from kiltmq.broker import Broker
from kiltmq.protocol.connection import LARGE_PIECE
from kiltmq.protocol.frames import FRAME_END_OCTET

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    with Broker(port=0) as running:
        yield running


async def _publish(url: str, bodies: list[bytes]) -> tuple[Calls, list[bytes], str]:
    """Publish ``bodies`` in one burst and get them back; what the client's transport was
    given to write meanwhile, the bodies received, and the loop's kind."""
    conn = await kiltmq.connect(url, rpc_timeout=10, connection_timeout=10)
    try:
        ch = await conn.channel()
        queue = (await ch.queue_declare(exclusive=True)).queue
        calls: Calls = []
        writer = conn._writer
        writer.transport = WriteSpy(writer.transport, calls)  # type: ignore[assignment]
        for body in bodies:
            await ch.basic_publish(body, routing_key=queue)
        await ch.queue_declare(queue, passive=True)  # after the publishes, in order
        received: list[bytes] = []
        for _ in bodies:
            message = await ch.basic_get(queue, no_ack=True)
            assert message is not None
            received.append(message.body)
        return calls, received, event_loop.loop_name(asyncio.get_running_loop())
    finally:
        await conn.close(timeout=5)


def _run(
    broker: Broker, bodies: list[bytes], uvloop: bool, frame_max: int | None = None
) -> tuple[Calls, list[bytes], str]:
    url = broker.url if frame_max is None else f"{broker.url}?frame_max={frame_max}"
    return event_loop.run(_publish(url, bodies), uvloop=uvloop)


@pytest.mark.parametrize("size", [LARGE_PIECE, 65536, 131072 - 8])
def test_a_large_body_reaches_uvloop_as_it_is(broker: Broker, size: int) -> None:
    pytest.importorskip("uvloop")
    bodies = [bytes([i]) * size for i in range(3)]
    calls, received, loop = _run(broker, bodies, uvloop=True)
    assert loop == "uvloop"
    assert received == bodies
    # each body itself went in a vectored write, followed there by its frame end
    vectored = [written for kind, written in calls if kind == "writelines"]
    for body in bodies:
        batch = next(w for w in vectored if any(p is body for p in w))
        after = batch[next(i for i, p in enumerate(batch) if p is body) + 1]
        assert isinstance(after, bytes) and after.startswith(FRAME_END_OCTET)


def test_asyncio_gets_one_joined_write(broker: Broker) -> None:
    bodies = [bytes([7]) * 65536]
    calls, received, loop = _run(broker, bodies, uvloop=False)
    assert loop == "asyncio"
    assert received == bodies
    assert {kind for kind, _written in calls} == {"write"}
    assert not any(p is bodies[0] for p in pieces(calls))


@pytest.mark.parametrize("uvloop", [False, True])
def test_small_and_split_bodies_are_joined(broker: Broker, uvloop: bool) -> None:
    if uvloop:
        pytest.importorskip("uvloop")
    small = b"s" * (LARGE_PIECE - 1)
    split = bytes(range(256)) * 64  # 16 KiB over frames of at most 4,088 bytes
    calls, received, _loop = _run(broker, [small], uvloop=uvloop)
    assert received == [small]
    assert not any(p is small for p in pieces(calls))
    calls, received, _loop = _run(broker, [split], uvloop=uvloop, frame_max=4096)
    assert received == [split]
    assert {kind for kind, _written in calls} == {"write"}
