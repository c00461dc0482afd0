"""basic.*, confirm.* and tx.* behaviour, driven with pika (RabbitMQ's semantics)."""

from __future__ import annotations

from pathlib import Path

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, UnroutableError
from pika.spec import Basic, BasicProperties

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.protocol import spec

from .conftest import Connect

pytestmark = pytest.mark.timeout(60)


def _deliveries(
    channel: BlockingChannel, queue: str, count: int, *, ack: bool = False
) -> list[tuple[Basic.Deliver, bytes]]:
    """Consume ``count`` messages from ``queue`` (acking them if ``ack``)."""
    got: list[tuple[Basic.Deliver, bytes]] = []
    for method, _props, body in channel.consume(queue, inactivity_timeout=10):
        assert method is not None, f"timed out after {len(got)} messages"
        got.append((method, body))
        if ack:
            channel.basic_ack(method.delivery_tag)
        if len(got) == count:
            break
    return got


def _no_more(channel: BlockingChannel, queue: str, seconds: float = 0.3) -> None:
    """Nothing else arrives from ``queue`` within a short while."""
    for method, _props, _body in channel.consume(queue, inactivity_timeout=seconds):
        assert method is None, "an unexpected delivery"
        break


def _count(channel: BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


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


# -- transactions -------------------------------------------------------------------------


def test_tx_publishes_wait_for_commit(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("txq")
    ch.tx_select()
    ch.basic_publish("", "txq", b"1")
    ch.basic_publish("", "txq", b"2")
    observer = connect().channel()
    assert _count(observer, "txq") == 0
    ch.tx_commit()
    assert _count(observer, "txq") == 2
    ch.basic_publish("", "txq", b"3")
    ch.tx_rollback()
    assert _count(observer, "txq") == 2
    ch.tx_commit()
    assert _count(observer, "txq") == 2


def test_tx_acks_wait_for_commit_and_rollback_restores_them(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("txacks")
    for i in range(3):
        ch.basic_publish("", "txacks", str(i).encode())
    ch.tx_select()
    deliveries = _deliveries(ch, "txacks", 3)
    ch.basic_ack(deliveries[0][0].delivery_tag)
    ch.tx_rollback()
    # rolled back: the tag is unacked again and can be acked (no 406)
    ch.basic_ack(deliveries[2][0].delivery_tag, multiple=True)
    ch.tx_commit()
    ch.cancel()
    observer = connect().channel()
    assert _count(observer, "txacks") == 0


@pytest.mark.parametrize("close", ["channel", "connection"])
def test_uncommitted_tx_settlements_are_rolled_back_on_close(
    connect: Connect, close: str
) -> None:
    observer = connect().channel()
    observer.queue_declare("txclose")
    for body in (b"acked", b"rejected"):
        observer.basic_publish("", "txclose", body)
    conn = connect()
    ch = conn.channel()
    ch.tx_select()
    acked, _props, _body = ch.basic_get("txclose")
    rejected, _props, _body = ch.basic_get("txclose")
    assert acked is not None and rejected is not None
    ch.basic_ack(acked.delivery_tag)
    ch.basic_nack(rejected.delivery_tag, requeue=False)
    if close == "channel":
        ch.close()
    else:
        conn.close()
    # never committed: both are unacknowledged deliveries, back in the queue
    got = []
    for _ in range(2):
        method, _props, body = observer.basic_get("txclose", auto_ack=True)
        assert method is not None
        got.append((body, method.redelivered))
    assert got == [(b"acked", True), (b"rejected", True)]


def test_tx_commit_without_select_fails(connect: Connect) -> None:
    ch = connect().channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.tx_commit()
    assert info.value.args == (406, "PRECONDITION_FAILED - channel is not transactional")


async def test_replies_after_a_durable_tx_commit_stay_in_order(tmp_path: Path) -> None:
    """With a store, tx.commit-ok waits for the disk; methods pipelined behind tx.commit
    on the channel wait with it, so replies keep the order of the requests."""
    async with Broker(port=0, data_dir=tmp_path) as broker:
        client = await RawClient.connect(broker.port)
        try:
            await client.open_channel(1)
            declared = await client.call(1, spec.QueueDeclare(queue="txd", durable=True))
            assert isinstance(declared, spec.QueueDeclareOk)
            assert isinstance(await client.call(1, spec.TxSelect()), spec.TxSelectOk)
            client.publish(1, "", "txd", b"kept", spec.BasicProperties(delivery_mode=2))
            client.core.send_method(1, spec.TxCommit())
            client.core.send_method(1, spec.QueueDeclare(queue="txd", passive=True))
            client.core.send_method(1, spec.BasicGet(queue="txd", no_ack=True))
            client.core.send_method(1, spec.TxCommit())
            client.flush()
            replies = [await client.method(1) for _ in range(4)]
            assert [type(r) for r in replies] == [
                spec.TxCommitOk,
                spec.QueueDeclareOk,
                spec.BasicGetOk,
                spec.TxCommitOk,
            ]
            assert isinstance(replies[1], spec.QueueDeclareOk)
            assert replies[1].message_count == 1
        finally:
            await client.disconnect()


async def test_many_methods_pipelined_behind_a_durable_tx_commit(tmp_path: Path) -> None:
    """More held methods than the broker buffers: reading pauses, then resumes after
    commit-ok, and nothing is lost or reordered."""
    async with Broker(port=0, data_dir=tmp_path) as broker:
        client = await RawClient.connect(broker.port)
        try:
            await client.open_channel(1)
            await client.call(1, spec.QueueDeclare(queue="txm", durable=True))
            await client.call(1, spec.TxSelect())
            persistent = spec.BasicProperties(delivery_mode=2)
            client.publish(1, "", "txm", b"first", persistent)
            client.core.send_method(1, spec.TxCommit())
            for i in range(1500):
                client.core.send_content(
                    1, spec.BasicPublish(routing_key="txm"), persistent, b"%d" % i
                )
            client.core.send_method(1, spec.TxCommit())
            client.core.send_method(1, spec.QueueDeclare(queue="txm", passive=True))
            client.flush()
            replies = [await client.method(1) for _ in range(3)]
            assert [type(r) for r in replies] == [
                spec.TxCommitOk,
                spec.TxCommitOk,
                spec.QueueDeclareOk,
            ]
            assert isinstance(replies[2], spec.QueueDeclareOk)
            assert replies[2].message_count == 1501
        finally:
            await client.disconnect()


async def test_replies_after_a_durable_declaration_stay_in_order(tmp_path: Path) -> None:
    """With a store, the declare-ok of a durable queue waits for its definition to be on
    disk; methods pipelined behind it wait with it, so replies keep the request order."""
    async with Broker(port=0, data_dir=tmp_path) as broker:
        client = await RawClient.connect(broker.port)
        try:
            await client.open_channel(1)
            persistent = spec.BasicProperties(delivery_mode=2)
            client.core.send_method(1, spec.QueueDeclare(queue="dq", durable=True))
            client.core.send_content(1, spec.BasicPublish(routing_key="dq"), persistent, b"m")
            client.core.send_method(1, spec.QueueDeclare(queue="dq", passive=True))
            client.core.send_method(1, spec.ExchangeDeclare("dx", "fanout", durable=True))
            client.core.send_method(1, spec.QueueBind(queue="dq", exchange="dx"))
            client.core.send_method(1, spec.BasicGet(queue="dq", no_ack=True))
            client.core.send_method(1, spec.QueueDelete(queue="dq"))
            client.flush()
            replies = [await client.method(1) for _ in range(6)]
            assert [type(r) for r in replies] == [
                spec.QueueDeclareOk,
                spec.QueueDeclareOk,
                spec.ExchangeDeclareOk,
                spec.QueueBindOk,
                spec.BasicGetOk,
                spec.QueueDeleteOk,
            ]
            assert isinstance(replies[1], spec.QueueDeclareOk)
            assert replies[1].message_count == 1
        finally:
            await client.disconnect()


def test_tx_mandatory_return_happens_at_commit(connect: Connect) -> None:
    conn = connect()
    ch = conn.channel()
    returned: list[bytes] = []
    ch.add_on_return_callback(lambda _c, _m, _p, body: returned.append(body))
    ch.tx_select()
    ch.basic_publish("amq.direct", "nowhere", b"r", mandatory=True)
    conn.process_data_events(time_limit=0.2)
    assert returned == []
    ch.tx_commit()
    conn.process_data_events(time_limit=0.2)
    assert returned == [b"r"]


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


def test_requeued_messages_keep_their_position_and_are_redelivered(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("order")
    for i in range(5):
        ch.basic_publish("", "order", str(i).encode())
    tags = []
    for _ in range(3):
        method, _props, _body = ch.basic_get("order")
        assert method is not None
        tags.append(method.delivery_tag)
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
