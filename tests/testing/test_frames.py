"""Frame capture: every frame of a connection, both ways, decoded, from pika, aio-pika,
kombu and kiltmq clients; and the report of a failed test listing the conversation."""

from __future__ import annotations

import aio_pika
import pika
import pytest
from kombu.connection import Connection as KombuConnection

import kiltmq
from kiltmq.protocol import spec
from kiltmq.testing import BrokerFixture

pytest_plugins = ["pytester"]

TIMEOUT = 5.0


@pytest.mark.kiltmq_frames
def test_a_pika_conversation_decoded_both_ways(amqp_broker: BrokerFixture) -> None:
    params = pika.URLParameters(amqp_broker.url)
    params.client_properties = {"connection_name": "shop"}
    params.socket_timeout = TIMEOUT
    conn = pika.BlockingConnection(params)
    channel = conn.channel()
    channel.queue_declare("orders")
    channel.basic_publish(
        "", "orders", b'{"kilts": 2}', pika.BasicProperties(content_type="application/json")
    )
    conn.close()

    frames = amqp_broker.frames("shop")
    names = [(f.sender, f.name) for f in frames if f.kind != "heartbeat"]
    assert names[:4] == [
        ("broker", "connection.start"), ("client", "connection.start-ok"),
        ("broker", "connection.tune"), ("client", "connection.tune-ok"),
    ]
    assert ("client", "queue.declare") in names
    assert ("broker", "queue.declare-ok") in names
    assert names[-2:] == [("client", "connection.close"), ("broker", "connection.close-ok")]
    publish = next(i for i, f in enumerate(frames) if f.name == "basic.publish")
    header, body = frames[publish + 1], frames[publish + 2]
    method = frames[publish].method
    assert isinstance(method, spec.BasicPublish)
    assert method.routing_key == "orders"
    assert header.kind == "header" and header.size == 12
    assert header.properties is not None
    assert header.properties.content_type == "application/json"
    assert (body.kind, body.body) == ("body", b'{"kilts": 2}')
    assert "C->B ch1 basic.publish(" in str(frames[publish])
    peer = amqp_broker.frames()[0]  # all connections of the vhost: the same one
    assert peer == frames[0]


async def test_capture_started_by_the_test_sees_a_kiltmq_consumer(
    amqp_broker: BrokerFixture,
) -> None:
    amqp_broker.capture_frames()
    async with kiltmq.connect(amqp_broker.url, name="billing") as conn:
        channel = await conn.channel()
        await channel.queue_declare("bills")
        async with channel.consume("bills") as consumer:
            await amqp_broker.wait_consumers_async("bills")
            amqp_broker.publish("", "bills", b"bill 1")
            message = await consumer.__anext__()
            await message.ack()
        await amqp_broker.wait_acked_async("bills")
    names = [f.name for f in amqp_broker.frames("billing")]
    delivered = names.index("basic.deliver")
    assert names[delivered + 1: delivered + 3] == ["header", "body"]
    assert "basic.ack" in names[delivered:]
    amqp_broker.stop_capture()
    with pytest.raises(RuntimeError, match="capture_frames"):
        amqp_broker.frames()


async def test_frames_by_peer_address_aio_pika(amqp_broker: BrokerFixture) -> None:
    amqp_broker.capture_frames()
    connection = await aio_pika.connect(amqp_broker.url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue("q")
        (info,) = await amqp_broker.wait_connections_async(1)
        names = [f.name for f in amqp_broker.frames(info.peer)]
        assert "queue.declare" in names
    assert amqp_broker.frames("no such connection") == []


def test_capture_costs_nothing_once_stopped_kombu(amqp_broker: BrokerFixture) -> None:
    amqp_broker.capture_frames()
    with KombuConnection(amqp_broker.url) as conn:  # type: ignore[no-untyped-call]
        conn.connect()
        assert any(f.name == "connection.open" for f in amqp_broker.frames())
        amqp_broker.stop_capture()
        untouched = amqp_broker.call_in_loop(lambda: all(
            "data_received" not in c.__dict__ and "data_to_send" not in c.core.__dict__
            for c in amqp_broker.broker.connections
        ))
        assert untouched


def test_a_failed_test_reports_its_frames(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import pika
        import pytest

        @pytest.mark.kiltmq_frames
        def test_fails(amqp_broker, amqp_url):
            params = pika.URLParameters(amqp_url)
            params.client_properties = {"connection_name": "reporter"}
            conn = pika.BlockingConnection(params)
            conn.channel().queue_declare("jobs")
            conn.close()
            assert amqp_broker.queue("jobs").message_count == 1

        def test_passes_without_frames(amqp_broker):
            assert not amqp_broker.capturing
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*kiltmq frames*",
        "connection reporter from 127.0.0.1:*",
        "  B->C ch0 connection.start(*",
        "  C->B ch1 queue.declare(*queue='jobs'*",
    ])


def test_a_failed_test_that_restarted_reports_frames_from_before_and_after(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import pika
        import pytest

        def declare(url, name, queue):
            params = pika.URLParameters(url)
            params.client_properties = {"connection_name": name}
            conn = pika.BlockingConnection(params)
            conn.channel().queue_declare(queue, durable=True)
            conn.close()

        @pytest.mark.kiltmq_frames
        @pytest.mark.kiltmq_broker(durable=True)
        def test_fails_after_a_restart(amqp_broker, amqp_url):
            declare(amqp_url, "before", "jobs")
            amqp_broker.restart()
            assert amqp_broker.capturing
            declare(amqp_url, "after", "later")
            assert [f.name for f in amqp_broker.frames("before")][-1] == "connection.close-ok"
            assert "queue.declare" in [f.name for f in amqp_broker.frames("after")]
            assert amqp_broker.queue("jobs").message_count == 1
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*assert 0 == 1*",
        "*kiltmq frames*",
        "connection before from 127.0.0.1:*",
        "  C->B ch1 queue.declare(*queue='jobs'*",
        "connection after from 127.0.0.1:*",
        "  C->B ch1 queue.declare(*queue='later'*",
    ])
