"""Consuming: basic.consume, basic.get, prefetch, acknowledgements, recover, cancel and
consumer priorities; driven with pika (RabbitMQ's semantics)."""

from __future__ import annotations

import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.protocol import spec

from .conftest import Connect
from .pika_helpers import _count, _deliveries, _no_more

pytestmark = pytest.mark.timeout(60)


# -- consuming, prefetch, acknowledgements -------------------------------------------------


def test_prefetch_limits_unacked_deliveries(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("pf")
    for i in range(10):
        ch.basic_publish("", "pf", str(i).encode())
    ch.basic_qos(prefetch_count=3)
    got = _deliveries(ch, "pf", 3)
    assert [body for _m, body in got] == [b"0", b"1", b"2"]
    _no_more(ch, "pf")
    ch.basic_ack(got[1][0].delivery_tag)
    more = _deliveries(ch, "pf", 1)
    assert more[0][1] == b"3"
    _no_more(ch, "pf")
    ch.basic_ack(more[0][0].delivery_tag, multiple=True)
    assert [body for _m, body in _deliveries(ch, "pf", 3)] == [b"4", b"5", b"6"]


def test_global_prefetch_is_shared_by_the_channel(connect: Connect) -> None:
    ch = connect().channel()
    for name in ("g1", "g2"):
        ch.queue_declare(name)
        for i in range(5):
            ch.basic_publish("", name, f"{name}-{i}".encode())
    ch.basic_qos(prefetch_count=3, global_qos=True)
    bodies: list[bytes] = []
    ch.basic_consume("g1", lambda _c, _m, _p, body: bodies.append(body))
    ch.basic_consume("g2", lambda _c, _m, _p, body: bodies.append(body))
    for _ in range(200):
        if len(bodies) >= 3:
            break
        ch.connection.process_data_events(time_limit=0.05)
    ch.connection.process_data_events(time_limit=0.3)  # and no more come
    assert len(bodies) == 3


def test_global_prefetch_credit_freed_on_one_queue_serves_another(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("gq-a")
    ch.queue_declare("gq-b")
    ch.basic_publish("", "gq-a", b"a")
    for i in range(2):
        ch.basic_publish("", "gq-b", f"b{i}".encode())
    ch.basic_qos(prefetch_count=1, global_qos=True)
    got: list[tuple[int, bytes]] = []

    def wait_for(count: int) -> None:
        for _ in range(200):
            if len(got) >= count:
                return
            ch.connection.process_data_events(time_limit=0.05)
        raise AssertionError(f"{len(got)} deliveries, {count} expected")

    ch.basic_consume("gq-a", lambda _c, m, _p, body: got.append((m.delivery_tag, body)))
    wait_for(1)  # the channel's one credit goes to queue a
    ch.basic_consume("gq-b", lambda _c, m, _p, body: got.append((m.delivery_tag, body)))
    ch.connection.process_data_events(time_limit=0.3)
    assert [body for _t, body in got] == [b"a"]
    # acking a's message (a is empty now) frees the shared credit for queue b
    ch.basic_ack(got[0][0])
    wait_for(2)
    assert [body for _t, body in got] == [b"a", b"b0"]


def _taken(ch: BlockingChannel, queue: str, published: int, taken: int) -> list[int]:
    """Declare ``queue``, publish bodies "0", "1", ... into it and take the first
    ``taken`` with basic.get, unacked; their delivery tags."""
    ch.queue_declare(queue)
    for i in range(published):
        ch.basic_publish("", queue, str(i).encode())
    tags = []
    for _ in range(taken):
        method, _props, _body = ch.basic_get(queue)
        assert method is not None
        tags.append(method.delivery_tag)
    return tags


def test_requeued_messages_keep_their_position_and_are_redelivered(connect: Connect) -> None:
    ch = connect().channel()
    tags = _taken(ch, "order", 5, 3)
    ch.basic_nack(tags[1], requeue=True)
    ch.basic_reject(tags[0], requeue=True)
    ch.basic_nack(tags[2], multiple=True, requeue=True)
    got = []
    for _ in range(5):
        method, _props, body = ch.basic_get("order", auto_ack=True)
        assert method is not None
        got.append((body, method.redelivered))
    assert got == [
        (b"0", True), (b"1", True), (b"2", True), (b"3", False), (b"4", False)
    ]


def test_reject_without_requeue_drops(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("drop")
    ch.basic_publish("", "drop", b"x")
    method, _p, _b = ch.basic_get("drop")
    assert method is not None
    ch.basic_reject(method.delivery_tag, requeue=False)
    assert _count(ch, "drop") == 0


@pytest.mark.parametrize("how", ["ack", "nack", "reject", "ack-multiple"])
def test_unknown_delivery_tag_is_406(connect: Connect, how: str) -> None:
    ch = connect().channel()
    if how == "ack":
        ch.basic_ack(7)
    elif how == "nack":
        ch.basic_nack(7)
    elif how == "reject":
        ch.basic_reject(7)
    else:
        ch.basic_ack(7, multiple=True)
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.queue_declare("", exclusive=True)
    assert info.value.args == (406, "PRECONDITION_FAILED - unknown delivery tag 7")


def test_double_ack_is_406(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("twice")
    ch.basic_publish("", "twice", b"x")
    method, _p, _b = ch.basic_get("twice")
    assert method is not None
    ch.basic_ack(method.delivery_tag)
    ch.basic_ack(method.delivery_tag)
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.queue_declare("twice", passive=True)
    assert info.value.reply_code == 406


def test_ack_multiple_zero_acks_everything(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("all")
    for i in range(4):
        ch.basic_publish("", "all", str(i).encode())
    for _ in range(4):
        assert ch.basic_get("all")[0] is not None
    ch.basic_ack(0, multiple=True)
    ch.close()
    assert _count(connect().channel(), "all") == 0


def test_ack_multiple_acks_up_to_its_tag_only(connect: Connect) -> None:
    """A multiple ack of the oldest unacked delivery settles that one alone (the broker's
    short path); one of a later tag settles everything up to it; an unknown tag is 406."""
    ch = connect().channel()
    tags = _taken(ch, "upto", 5, 5)
    ch.basic_ack(tags[0], multiple=True)  # the oldest: it alone
    ch.basic_ack(tags[2], multiple=True)  # 2 and 3
    ch.close()  # 4 and 5 go back
    other = connect().channel()
    back = [other.basic_get("upto", auto_ack=True) for _ in range(3)]
    assert [body for _m, _p, body in back] == [b"3", b"4", None]
    ch = connect().channel()
    ch.basic_publish("", "upto", b"x")
    method, _props, _body = ch.basic_get("upto")
    assert method is not None
    ch.basic_ack(method.delivery_tag, multiple=True)
    ch.basic_ack(method.delivery_tag, multiple=True)  # no longer unacked
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.queue_declare("upto", passive=True)
    assert info.value.reply_code == 406


def test_unacked_messages_return_when_the_channel_closes(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("back")
    ch.basic_publish("", "back", b"x")
    assert ch.basic_get("back")[0] is not None
    assert _count(connect().channel(), "back") == 0
    ch.close()
    other = connect().channel()
    method, _props, body = other.basic_get("back", auto_ack=True)
    assert method is not None and method.redelivered and body == b"x"


def test_recover_requeues_unacked(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("rec")
    ch.basic_publish("", "rec", b"x")
    first = _deliveries(ch, "rec", 1)
    assert not first[0][0].redelivered
    ch.basic_recover(requeue=True)
    again = _deliveries(ch, "rec", 1)
    assert again[0][0].redelivered and again[0][1] == b"x"


def test_recover_without_requeue_is_not_implemented(connect: Connect) -> None:
    ch = connect().channel()
    with pytest.raises(ConnectionClosedByBroker) as info:
        ch.basic_recover(requeue=False)
    assert info.value.args == (540, "NOT_IMPLEMENTED - requeue=false")


def test_prefetch_size_is_not_implemented(connect: Connect) -> None:
    ch = connect().channel()
    with pytest.raises(ConnectionClosedByBroker) as info:
        ch.basic_qos(prefetch_size=10)
    assert info.value.args == (540, "NOT_IMPLEMENTED - prefetch_size!=0 (10)")


def test_channel_flow(connect: Connect) -> None:
    ch = connect().channel()
    assert ch.flow(True) is True
    with pytest.raises(ConnectionClosedByBroker) as info:
        ch.flow(False)
    assert info.value.args == (540, "NOT_IMPLEMENTED - active=false")


def test_basic_get_counts_and_get_empty(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("get")
    assert ch.basic_get("get") == (None, None, None)
    for i in range(3):
        ch.basic_publish("", "get", str(i).encode())
    method, _props, body = ch.basic_get("get", auto_ack=True)
    assert method is not None
    assert (body, method.message_count) == (b"0", 2)


async def test_server_generated_consumer_tags(abroker: Broker) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    await client.call(1, spec.QueueDeclare("tags"))
    ok = await client.call(1, spec.BasicConsume("tags", ""))
    assert isinstance(ok, spec.BasicConsumeOk)
    assert ok.consumer_tag.startswith("amq.ctag-") and len(ok.consumer_tag) == 31
    await client.disconnect()


def test_exclusive_consumer(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("excl-c")
    ch.basic_consume("excl-c", lambda *_: None, exclusive=True)
    other = connect().channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        other.basic_consume("excl-c", lambda *_: None)
    assert info.value.args == (403, "ACCESS_REFUSED - queue 'excl-c' in vhost '/' in exclusive use")
    ch2 = connect().channel()
    ch.queue_declare("shared-c")
    ch2.basic_consume("shared-c", lambda *_: None)
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.basic_consume("shared-c", lambda *_: None, exclusive=True)
    assert info.value.reply_code == 403


def test_no_ack_consumer_ignores_prefetch(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("noack")
    for i in range(20):
        ch.basic_publish("", "noack", str(i).encode())
    ch.basic_qos(prefetch_count=1)
    bodies: list[bytes] = []
    ch.basic_consume("noack", lambda _c, _m, _p, body: bodies.append(body), auto_ack=True)
    while len(bodies) < 20:
        ch.connection.process_data_events(time_limit=0.2)
    assert bodies == [str(i).encode() for i in range(20)]
    assert _count(ch, "noack") == 0


def test_cancel_stops_deliveries_and_unknown_tag_is_fine(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("cancel")
    bodies: list[bytes] = []
    tag = ch.basic_consume("cancel", lambda _c, _m, _p, body: bodies.append(body), auto_ack=True)
    ch.basic_publish("", "cancel", b"1")
    while not bodies:
        ch.connection.process_data_events(time_limit=0.1)
    ch.basic_cancel(tag)
    ch.basic_publish("", "cancel", b"2")
    ch.connection.process_data_events(time_limit=0.2)
    assert bodies == [b"1"]
    assert _count(ch, "cancel") == 1
    ch._impl.basic_cancel("never-existed")  # no error: RabbitMQ answers cancel-ok
    ch.connection.process_data_events(time_limit=0.2)
    assert ch.is_open


def test_consumer_is_told_when_its_queue_is_deleted(connect: Connect) -> None:
    conn = connect()
    ch = conn.channel()
    ch.queue_declare("doomed")
    cancelled: list[str] = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume("doomed", lambda *_: None)
    connect().channel().queue_delete("doomed")
    while not cancelled:
        conn.process_data_events(time_limit=0.1)
    assert cancelled == [tag]


def test_consumer_priorities(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("cprio")
    got: list[tuple[str, bytes]] = []
    ch.basic_qos(prefetch_count=2)
    for name, args in (("low", {"x-priority": 1}), ("high", {"x-priority": 10}), ("zero", None)):
        ch.basic_consume(
            "cprio",
            lambda _c, _m, _p, body, name=name: got.append((name, body)),
            arguments=args,
        )
    for i in range(6):
        ch.basic_publish("", "cprio", str(i).encode())
    while len(got) < 6:
        ch.connection.process_data_events(time_limit=0.1)
    # the higher priority consumer is served while it has room, then the next one down
    assert got == [
        ("high", b"0"), ("high", b"1"), ("low", b"2"), ("low", b"3"), ("zero", b"4"),
        ("zero", b"5"),
    ]
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.basic_consume("cprio", lambda *_: None, arguments={"x-priority": "high"})
    assert info.value.args == (
        406,
        "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'cprio' in vhost '/': "
        '"expected integer, got longstr"',
    )
