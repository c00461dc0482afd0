"""Direct reply-to (amq.rabbitmq.reply-to), as RabbitMQ implements it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, UnroutableError
from pika.spec import Basic, BasicProperties

from .conftest import Connect

pytestmark = pytest.mark.timeout(60)

REPLY_TO = "amq.rabbitmq.reply-to"


def test_request_and_reply(connect: Connect) -> None:
    client_conn = connect()
    client = client_conn.channel()
    replies: list[tuple[Basic.Deliver, BasicProperties, bytes]] = []
    client.basic_consume(REPLY_TO, lambda _c, m, p, b: replies.append((m, p, b)), auto_ack=True)
    server = connect().channel()
    server.queue_declare("rpc")
    # a confirm orders the publish before the other connection's basic.get
    client.confirm_delivery()
    client.basic_publish(
        "", "rpc", b"2+2", BasicProperties(reply_to=REPLY_TO, correlation_id="c1")
    )
    method, props, body = server.basic_get("rpc", auto_ack=True)
    assert method is not None and body == b"2+2"
    assert props.reply_to.startswith(REPLY_TO + ".")
    assert props.correlation_id == "c1"
    ok = server.queue_declare(props.reply_to, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (props.reply_to, 0, 1)
    server.basic_publish("", props.reply_to, b"4", BasicProperties(correlation_id="c1"))
    while not replies:
        client_conn.process_data_events(time_limit=0.1)
    deliver, reply_props, reply = replies[0]
    assert reply == b"4" and reply_props.correlation_id == "c1"
    assert (deliver.exchange, deliver.routing_key) == ("", props.reply_to)
    assert not deliver.redelivered
    # once the requester's channel is gone, replies have nowhere to go
    client.close()
    server.confirm_delivery()
    with pytest.raises(UnroutableError):
        server.basic_publish("", props.reply_to, b"too late", mandatory=True)


def _refused(channel: BlockingChannel, *calls: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(ChannelClosedByBroker) as info:
        for call in calls:
            call()
    return int(info.value.reply_code), str(info.value.reply_text)


def test_rules(connect: Connect) -> None:
    conn = connect()
    ch = conn.channel()
    assert _refused(ch, lambda: ch.basic_consume(REPLY_TO, lambda *_: None)) == (
        406, "PRECONDITION_FAILED - reply consumer cannot acknowledge"
    )
    ch = conn.channel()
    consume = lambda: ch.basic_consume(REPLY_TO, lambda *_: None, auto_ack=True)  # noqa: E731
    assert _refused(ch, consume, consume) == (
        406, "PRECONDITION_FAILED - reply consumer already set"
    )
    ch = conn.channel()
    publish = lambda: ch.basic_publish("", "x", b"", BasicProperties(reply_to=REPLY_TO))  # noqa: E731
    assert _refused(ch, publish, lambda: ch.queue_declare("", exclusive=True)) == (
        406, "PRECONDITION_FAILED - fast reply consumer does not exist"
    )
    ch = conn.channel()
    assert ch.queue_declare(REPLY_TO, passive=True).method.queue == REPLY_TO
    assert _refused(ch, lambda: ch.queue_declare(REPLY_TO + ".nonsense", passive=True)) == (
        404, "NOT_FOUND - no queue 'amq.rabbitmq.reply-to.nonsense' in vhost '/'"
    )


def test_cancelled_reply_consumer_gets_nothing(connect: Connect) -> None:
    conn = connect()
    ch = conn.channel()
    tag = ch.basic_consume(REPLY_TO, lambda *_: None, auto_ack=True)
    ch.queue_declare("rpc2")
    ch.basic_publish("", "rpc2", b"q", BasicProperties(reply_to=REPLY_TO))
    reply_to = ch.basic_get("rpc2", auto_ack=True)[1].reply_to
    ch.basic_cancel(tag)
    ch.confirm_delivery()
    with pytest.raises(UnroutableError):
        ch.basic_publish("", reply_to, b"r", mandatory=True)
