"""AMQP 0-8 clients, answered as RabbitMQ 3.10 answers them (each behaviour below was
checked with raw frames against RabbitMQ 3.10.8; tests/compat compares the transcripts).

- ``AMQP 1 1 8 0`` and ``AMQP 1 1 9 1`` get connection.start version 8-0 and the 0-8
  tables; ``AMQP 1 1 0 9`` gets version 0-9 and the 0-9-1 tables.
- channel.open-ok has no payload; access.request (any realm) gets ticket 1.
- basic.recover (60, 100) requeues without a reply; RabbitMQ's basic.recover (60, 110)
  answers recover-ok (60, 111); queue.unbind works.
- connection.close is (10, 60) and close-ok (10, 61).
- A method of a class RabbitMQ does not implement (file, stream, dtx, tunnel, test) closes
  the connection with 503 COMMAND_INVALID (one that carries content, tunnel.request, once
  its content is read), and one 0-8 does not have (basic.nack) drops it.
- connection.start announces an empty capabilities table.
"""

from __future__ import annotations

import asyncio
import struct

import pytest

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.protocol import ContentReceived, MethodReceived, spec, spec08
from kiltmq.protocol.dialect import AMQP_0_8
from kiltmq.protocol.frames import encode_frame, method_frame


async def client_0_8(broker: Broker) -> RawClient:
    client = await RawClient.open(broker.port, dialect=AMQP_0_8)
    await client.handshake(mechanism="AMQPLAIN")
    return client


@pytest.mark.parametrize(
    ("header", "version"),
    [
        (b"AMQP\x01\x01\x08\x00", (8, 0)),
        (b"AMQP\x01\x01\x09\x01", (8, 0)),
        (b"AMQP\x01\x01\x00\x09", (0, 9)),
        (b"AMQP\x00\x00\x09\x01", (0, 9)),
    ],
)
async def test_the_header_picks_the_dialect(
    abroker: Broker, header: bytes, version: tuple[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", abroker.port)
    writer.write(header)
    head = await asyncio.wait_for(reader.readexactly(13), 5)
    assert head[7:11] == b"\x00\x0a\x00\x0a"  # connection.start
    assert (head[11], head[12]) == version
    writer.close()


async def test_open_access_declare_publish_get(abroker: Broker) -> None:
    client = await client_0_8(abroker)
    await client.open_channel(1)  # expects 0-8's channel.open-ok, which has no fields
    assert client.received.count(b"\x01\x00\x01\x00\x00\x00\x04\x00\x14\x00\x0b\xce") == 1
    ok = await client.request(
        1, spec08.AccessRequest("/data", active=True, read=True), spec08.AccessRequestOk
    )
    assert ok.ticket == 1
    await client.request(1, spec.QueueDeclare(queue="q08", reserved_1=1), spec.QueueDeclareOk)
    await client.request(
        1, spec.QueueBind(queue="q08", exchange="amq.direct", routing_key="k"), spec.QueueBindOk
    )
    await client.request(
        1, spec.QueueUnbind(queue="q08", exchange="amq.direct", routing_key="k"), spec.QueueUnbindOk
    )
    client.publish(1, "", "q08", b"hello")
    client.send(1, spec.BasicGet(queue="q08"))
    got = await client.event()
    assert isinstance(got, ContentReceived) and got.body == b"hello"
    await client.close()


async def test_a_0_8_producer_and_a_0_9_1_consumer_share_a_queue(abroker: Broker) -> None:
    old = await client_0_8(abroker)
    new = await RawClient.connect(abroker.port)
    await old.open_channel(1)
    await new.open_channel(1)
    await new.request(1, spec.QueueDeclare(queue="shared"), spec.QueueDeclareOk)
    old.publish(1, "", "shared", b"from 0-8")
    # a round trip on the same connection: its publish is routed before the other's
    await old.request(1, spec.BasicQos(prefetch_count=0), spec.BasicQosOk)
    new.publish(1, "", "shared", b"from 0-9-1")
    await new.request(1, spec.BasicConsume(queue="shared", no_ack=True), spec.BasicConsumeOk)
    first = await new.event()
    assert isinstance(first, ContentReceived) and first.body == b"from 0-8"
    assert isinstance(first.method, spec.BasicDeliver)
    # 0-8's basic.consume has no arguments table
    await old.request(1, spec08.BasicConsume(queue="shared", no_ack=True), spec.BasicConsumeOk)
    await new.request(1, spec.BasicCancel(first.method.consumer_tag), spec.BasicCancelOk)
    new.publish(1, "", "shared", b"to 0-8")
    delivered: list[bytes] = []
    while len(delivered) < 1:
        event = await old.event()
        if isinstance(event, ContentReceived):
            delivered.append(event.body)
    assert delivered[0] in (b"from 0-9-1", b"to 0-8")
    await old.close()
    await new.close()


async def test_recover(abroker: Broker) -> None:
    client = await client_0_8(abroker)
    await client.open_channel(1)
    await client.request(1, spec.QueueDeclare(queue="r08"), spec.QueueDeclareOk)
    client.publish(1, "", "r08", b"m")
    client.send(1, spec.BasicGet(queue="r08"))
    first = await client.event()
    assert isinstance(first, ContentReceived)
    client.send(1, spec.BasicRecoverAsync(requeue=True))  # 0-8's basic.recover: no reply
    client.send(1, spec.BasicGet(queue="r08"))
    again = await client.event()
    assert isinstance(again, ContentReceived)
    assert isinstance(again.method, spec.BasicGetOk) and again.method.redelivered
    await client.request(1, spec.BasicRecover(requeue=True), spec.BasicRecoverOk)
    await client.close()


async def test_unimplemented_class_is_503_in_0_8s_connection_close(abroker: Broker) -> None:
    client = await client_0_8(abroker)
    await client.open_channel(1)
    client.send_raw(method_frame(1, spec08.FileQos(prefetch_count=10)))
    close = await client.method(0)
    assert type(close) is spec08.ConnectionClose
    assert (close.reply_code, close.class_id, close.method_id) == (503, 70, 10)
    client.abort()


async def test_a_method_0_8_does_not_have_drops_the_connection(abroker: Broker) -> None:
    client = await client_0_8(abroker)
    await client.open_channel(1)
    client.send_raw(encode_frame(1, 1, spec.BasicNack(1).encode()))
    events = await client.eof()
    assert not any(isinstance(e, MethodReceived) for e in events)


async def test_connection_start_announces_no_capabilities_to_0_8(abroker: Broker) -> None:
    client = await RawClient.open(abroker.port, dialect=AMQP_0_8)
    start = await client.start()
    assert isinstance(start, spec.ConnectionStart)
    assert start.server_properties is not None
    assert start.server_properties["capabilities"] == {}
    client.abort()
    client = await RawClient.open(abroker.port)
    start = await client.start()
    assert isinstance(start, spec.ConnectionStart) and start.server_properties
    assert start.server_properties["capabilities"]["publisher_confirms"] is True
    client.abort()


async def test_tunnel_request_is_503_once_its_content_is_read(abroker: Broker) -> None:
    client = await client_0_8(abroker)
    await client.open_channel(1)
    client.send_raw(method_frame(1, spec08.TunnelRequest(meta_data={})))
    with pytest.raises(TimeoutError):
        await client.event(0.3)
    client.send_raw(encode_frame(2, 1, struct.pack(">HHQH", 110, 0, 3, 0)))
    with pytest.raises(TimeoutError):
        await client.event(0.3)
    client.send_raw(encode_frame(3, 1, b"abc"))
    close = await client.method(0)
    assert type(close) is spec08.ConnectionClose
    assert (close.reply_code, close.class_id, close.method_id) == (503, 110, 10)
    client.abort()
