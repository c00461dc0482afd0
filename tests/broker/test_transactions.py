"""tx.*: publishes and acknowledgements held until commit, rollback, and replies that keep
their order behind a durable commit; driven with pika (RabbitMQ's semantics)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pika.exceptions import ChannelClosedByBroker

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.protocol import spec

from .conftest import Connect
from .pika_helpers import _count, _deliveries

pytestmark = pytest.mark.timeout(60)


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
