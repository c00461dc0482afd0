"""basic.publish and confirm.*: properties, mandatory returns, publisher confirms; driven
with pika (RabbitMQ's semantics)."""

from __future__ import annotations

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, UnroutableError
from pika.spec import Basic, BasicProperties

from .conftest import Connect
from .pika_helpers import _count

pytestmark = pytest.mark.timeout(60)


# -- publishing ---------------------------------------------------------------------------


def test_publish_to_missing_exchange_closes_the_channel(connect: Connect) -> None:
    conn = connect()
    ch = conn.channel()
    ch.basic_publish("no-such-exchange", "rk", b"x")
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.queue_declare("", exclusive=True)
    assert info.value.reply_code == 404
    assert info.value.reply_text == "NOT_FOUND - no exchange 'no-such-exchange' in vhost '/'"
    assert conn.channel().queue_declare("", exclusive=True)  # the connection lives on


def test_properties_and_body_pass_through_unchanged(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("props")
    props = BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers={"a": 1, "b": "two", "c": [1, 2], "d": {"e": True}},
        delivery_mode=2,
        priority=3,
        correlation_id="c-1",
        reply_to="r",
        expiration="60000",
        message_id="m-1",
        timestamp=1700000000,
        type="t",
        user_id="guest",
        app_id="app",
    )
    body = bytes(range(256)) * 2000  # several frames
    ch.basic_publish("", "props", body, props)
    method, got_props, got_body = ch.basic_get("props", auto_ack=True)
    assert method is not None and got_body == body
    for field in ("content_type", "headers", "delivery_mode", "priority", "correlation_id",
                  "reply_to", "expiration", "message_id", "timestamp", "type", "user_id",
                  "app_id"):
        assert getattr(got_props, field) == getattr(props, field), field
    assert (method.exchange, method.routing_key, method.redelivered) == ("", "props", False)


def test_empty_body(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("empty")
    ch.basic_publish("", "empty", b"")
    method, _props, body = ch.basic_get("empty", auto_ack=True)
    assert method is not None and body == b""


def test_user_id_must_match_the_login(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("uid")
    ch.basic_publish("", "uid", b"x", BasicProperties(user_id="mallory"))
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.queue_declare("uid", passive=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was "
        "'guest'"
    )


def test_mandatory_unroutable_is_returned(connect: Connect) -> None:
    conn = connect()
    ch = conn.channel()
    returned: list[tuple[Basic.Return, bytes]] = []
    ch.add_on_return_callback(lambda _ch, method, _props, body: returned.append((method, body)))
    ch.basic_publish("amq.direct", "nobody", b"lost", BasicProperties(app_id="x"), mandatory=True)
    ch.basic_publish("amq.direct", "nobody", b"dropped quietly")
    ch.basic_qos(prefetch_count=0)  # a round trip: returns for both publishes came before it
    conn.process_data_events(time_limit=0)
    assert len(returned) == 1
    method, body = returned[0]
    assert (method.reply_code, method.reply_text) == (312, "NO_ROUTE")
    assert (method.exchange, method.routing_key, body) == ("amq.direct", "nobody", b"lost")


# -- publisher confirms -------------------------------------------------------------------


def test_confirms_ack_every_publish(connect: Connect) -> None:
    ch = connect().channel()
    ch.confirm_delivery()
    ch.queue_declare("confirmed")
    for i in range(20):
        ch.basic_publish("", "confirmed", str(i).encode())  # raises if nacked
    assert _count(ch, "confirmed") == 20


def test_confirm_mode_mandatory_unroutable_raises(connect: Connect) -> None:
    ch = connect().channel()
    ch.confirm_delivery()
    with pytest.raises(UnroutableError):
        ch.basic_publish("amq.topic", "no.binding", b"x", mandatory=True)
    ch.basic_publish("amq.topic", "no.binding", b"x")  # not mandatory: simply acked


def test_confirms_are_coalesced_with_multiple(url: str) -> None:
    """Many publishes in one batch are confirmed with one ``multiple`` ack."""
    acks: list[tuple[int, bool]] = []
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.queue_declare("bulk")
        impl = ch._impl
        impl.confirm_delivery(lambda frame: acks.append(
            (frame.method.delivery_tag, frame.method.multiple)))
        conn.process_data_events(time_limit=0.2)
        for i in range(50):
            impl.basic_publish("", "bulk", str(i).encode())
        while not acks or acks[-1][0] < 50:
            conn.process_data_events(time_limit=0.1)
        assert acks[-1][0] == 50
        assert len(acks) < 50
        assert any(multiple for _tag, multiple in acks)
    finally:
        conn.close()


def test_confirm_on_tx_channel_is_refused(connect: Connect) -> None:
    ch = connect().channel()
    ch.tx_select()
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.confirm_delivery()
    assert info.value.args == (
        406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode"
    )
    ch = connect().channel()
    ch.confirm_delivery()
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.tx_select()
    assert info.value.args == (
        406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode"
    )
