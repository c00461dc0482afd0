"""Limits on what a client may send: the largest message body (``max_message_size``,
refused when the content header arrives, as RabbitMQ's 406) and how long a half-sent
message may stall (``content_timeout``)."""

from __future__ import annotations

import asyncio

import pytest

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.protocol import spec
from kiltmq.protocol.connection import ContentReceived
from kiltmq.protocol.frames import content_header_payload, encode_frame, method_frame

pytestmark = pytest.mark.timeout(60)


def _announce(client: RawClient, channel: int, size: int, queue: str = "q") -> None:
    """basic.publish and a content header announcing ``size`` bytes, no body."""
    client.send_raw(method_frame(channel, spec.BasicPublish(routing_key=queue)))
    client.send_raw(encode_frame(2, channel, content_header_payload(60, size, None)))


async def test_a_body_at_the_limit_passes_one_over_is_refused() -> None:
    async with Broker(port=0, max_message_size=1000) as broker:
        client = await RawClient.connect(broker.port)
        await client.open_channel(1)
        await client.open_channel(2)
        ok = await client.call(2, spec.QueueDeclare("q"))
        assert isinstance(ok, spec.QueueDeclareOk)
        client.publish(1, "", "q", b"x" * 1000)
        client.publish(1, "", "q", b"y" * 1001)
        close = await client.method(1)
        assert isinstance(close, spec.ChannelClose)
        assert close.reply_code == 406
        assert close.reply_text == (
            "PRECONDITION_FAILED - message size 1001 is larger than configured max size 1000"
        )
        assert (close.class_id, close.method_id) == (60, 40)
        client.send(1, spec.ChannelCloseOk())
        # the connection keeps working: the message at the limit was taken
        client.send(2, spec.BasicGet("q", no_ack=True))
        content = await client.event()
        assert isinstance(content, ContentReceived)
        assert isinstance(content.method, spec.BasicGetOk)
        assert content.body == b"x" * 1000
        empty = await client.call(2, spec.BasicGet("q", no_ack=True))
        assert isinstance(empty, spec.BasicGetEmpty)
        await client.open_channel(1)
        client.publish(1, "", "q", b"z")
        got = await client.call(2, spec.BasicGet("q", no_ack=True))
        assert isinstance(got, spec.BasicGetOk)
        await client.disconnect()


async def test_a_huge_announced_body_is_refused_before_any_body_is_sent(abroker: Broker) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    await client.open_channel(2)
    _announce(client, 1, 2**40)
    # the refusal comes with no body frame sent: nothing was buffered for it
    close = await client.method(1)
    assert isinstance(close, spec.ChannelClose)
    assert close.reply_code == 406
    assert close.reply_text == (
        f"PRECONDITION_FAILED - message size {2**40} is larger than configured max size "
        f"{128 * 1024 * 1024}"
    )
    # body frames that follow on the closing channel are discarded, not kept
    for _ in range(8):
        client.send_raw(encode_frame(3, 1, b"x" * 100_000))
    client.send(1, spec.ChannelCloseOk())
    ok = await client.call(2, spec.QueueDeclare("", exclusive=True))
    assert isinstance(ok, spec.QueueDeclareOk)
    await client.disconnect()


async def test_a_stalled_body_closes_the_connection() -> None:
    async with Broker(port=0, content_timeout=0.4) as broker:
        client = await RawClient.connect(broker.port)  # no heartbeats
        await client.open_channel(1)
        _announce(client, 1, 10)
        client.send_raw(encode_frame(3, 1, b"x"))
        close = await client.method(0, timeout=5)
        assert isinstance(close, spec.ConnectionClose)
        assert close.reply_code == 505
        assert close.reply_text == (
            "UNEXPECTED_FRAME - content body on channel 1 incomplete (1 of 10 bytes) "
            "with no body frame for 0.4s"
        )
        assert (close.class_id, close.method_id) == (60, 40)
        await client.disconnect()


async def test_a_body_that_keeps_coming_is_not_timed_out() -> None:
    async with Broker(port=0, content_timeout=0.4) as broker:
        client = await RawClient.connect(broker.port)
        await client.open_channel(1)
        ok = await client.call(1, spec.QueueDeclare("q"))
        assert isinstance(ok, spec.QueueDeclareOk)
        _announce(client, 1, 10)
        for _ in range(10):  # a byte every 0.1 s: 1 s in all, well over the timeout
            client.send_raw(encode_frame(3, 1, b"x"))
            await asyncio.sleep(0.1)
        got = await client.call(1, spec.BasicGet("q", no_ack=True))
        assert isinstance(got, spec.BasicGetOk)
        await client.disconnect()


def test_the_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        Broker(port=0, max_message_size=512 * 1024 * 1024 + 1)
    with pytest.raises(ValueError, match="content_timeout"):
        Broker(port=0, content_timeout=-1)
