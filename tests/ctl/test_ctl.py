"""``kiltmq ctl`` against a ``kiltmq broker`` process, with pika for the traffic."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

import pika
import pytest
from tests.durability.conftest import BrokerProcess

from .conftest import Ctl, connect, wait_closed_by_broker

pytestmark = pytest.mark.timeout(60)


def test_the_socket_is_in_the_data_dir_and_only_for_the_brokers_user(
    broker: BrokerProcess, ctl: Ctl
) -> None:
    info = os.stat(ctl.socket)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()
    # no leftovers of the private directory it was bound in
    assert not [p for p in ctl.socket.parent.iterdir() if p.name.startswith(".kiltmq-ctl-")]


def test_status(broker: BrokerProcess, ctl: Ctl) -> None:
    with contextlib.closing(connect(broker.port, name="status-check")) as conn:
        conn.channel()
        status = ctl.json("status")
        text = ctl("status")
    assert status["listeners"] == [f"127.0.0.1:{broker.port}"]
    assert status["connections"] >= 1 and status["channels"] >= 1
    assert status["data_dir"] == str(broker.data_dir)
    assert status["ctl_socket"] == str(ctl.socket)
    assert broker.proc is not None and status["pid"] == broker.proc.pid
    assert status["uptime"] > 0 and status["process_memory"] > 0
    assert re.match(r"version: +kiltmq \S+ on Python ", text)
    assert f"listeners:    127.0.0.1:{broker.port}\n" in text
    assert f"data dir:     {broker.data_dir}\n" in text


def test_list_queues_counts_ready_and_unacknowledged(broker: BrokerProcess, ctl: Ctl) -> None:
    with contextlib.closing(connect(broker.port)) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.queue_declare("lq.work", durable=True)
        for i in range(3):
            channel.basic_publish("", "lq.work", b"job %d" % i)
        method, _props, _body = channel.basic_get("lq.work")  # unacknowledged
        assert method is not None
        rows = {q["name"]: q for q in ctl.json("list_queues")}
        assert rows["lq.work"] == {
            "name": "lq.work",
            "type": "classic",
            "messages": 3,
            "messages_ready": 2,
            "messages_unacknowledged": 1,
            "consumers": 0,
            "durable": True,
            "auto_delete": False,
            "exclusive": False,
            "arguments": {},
        }
        table = ctl("list_queues").splitlines()
        assert table[0].split() == [
            "name", "type", "messages", "messages_ready", "messages_unacknowledged", "consumers",
            "durable", "auto_delete", "exclusive",
        ]
        (row,) = [line for line in table if line.startswith("lq.work ")]
        assert row.split() == [
            "lq.work", "classic", "3", "2", "1", "0", "true", "false", "false",
        ]
        # the columns line up under their headers
        assert table[0].index("messages_ready") == row.index("2")
        assert "name" not in ctl("-q", "list_queues")
        channel.basic_ack(method.delivery_tag)
        channel.queue_delete("lq.work")


def test_list_queues_shows_the_queue_type_and_chosen_columns(
    broker: BrokerProcess, ctl: Ctl
) -> None:
    with contextlib.closing(connect(broker.port)) as conn:
        channel = conn.channel()
        channel.queue_declare("lt.quorum", durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_declare("lt.classic", durable=True)
        rows = [line.split() for line in ctl("list_queues", "name", "type").splitlines()]
        assert rows[0] == ["name", "type"]
        assert ["lt.quorum", "quorum"] in rows and ["lt.classic", "classic"] in rows
        assert ctl.error("list_queues", "name", "kind", status=2) == (
            "kiltmq ctl: unknown column 'kind' (columns: name, type, messages, "
            "messages_ready, messages_unacknowledged, consumers, durable, auto_delete, "
            "exclusive)"
        )
        channel.queue_delete("lt.quorum")
        channel.queue_delete("lt.classic")


def test_exchanges_bindings_and_consumers(broker: BrokerProcess, ctl: Ctl) -> None:
    with contextlib.closing(connect(broker.port, name="lister")) as conn:
        channel = conn.channel()
        channel.exchange_declare("xb.events", "topic", durable=True)
        channel.queue_declare("xb.q", exclusive=True)
        channel.queue_bind("xb.q", "xb.events", "order.*")
        channel.basic_qos(prefetch_count=7)
        channel.basic_consume("xb.q", lambda *a: None, consumer_tag="xb-consumer")
        exchanges = {x["name"]: x for x in ctl.json("list_exchanges")}
        assert exchanges["xb.events"]["type"] == "topic"
        assert exchanges["xb.events"]["durable"] is True
        assert exchanges[""]["type"] == "direct" and "amq.topic" in exchanges
        bindings = ctl.json("list_bindings")
        assert {
            "source_name": "xb.events", "source_kind": "exchange",
            "destination_name": "xb.q", "destination_kind": "queue",
            "routing_key": "order.*", "arguments": {},
        } in bindings
        assert any(b["source_name"] == "" and b["routing_key"] == "xb.q" for b in bindings)
        (consumer,) = [c for c in ctl.json("list_consumers") if c["queue_name"] == "xb.q"]
        assert consumer["consumer_tag"] == "xb-consumer"
        assert consumer["ack_required"] is True and consumer["prefetch_count"] == 7
        (listed,) = [c for c in ctl.json("list_connections") if c["name"] == "lister"]
        assert consumer["connection"] == listed["peer"]
        assert listed["user"] == "guest" and listed["vhost"] == "/" and listed["channels"] == 1
        assert listed["product"] == "Pika Python Client Library"
        assert "xb.q" in ctl("list_queues")
        channel.exchange_delete("xb.events")


def test_add_user_and_set_permissions_let_pika_in(broker: BrokerProcess, ctl: Ctl) -> None:
    assert ctl("add_user", "alice", "wonderland") == "user 'alice' added\n"
    assert ["alice", ""] in [[*line.split(), ""] for line in ctl("list_users").splitlines()]
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
        connect(broker.port, "alice", "wonderland")  # no permissions yet
    assert "(530) \"NOT_ALLOWED - access to vhost '/' refused for user 'alice'\"" in str(
        refused.value
    )
    ctl("set_permissions", "alice", "^alice\\.", ".*", ".*")
    assert {"user": "alice", "configure": "^alice\\.", "write": ".*", "read": ".*"} in ctl.json(
        "list_permissions"
    )
    with contextlib.closing(connect(broker.port, "alice", "wonderland")) as conn:
        channel = conn.channel()
        channel.queue_declare("alice.inbox", auto_delete=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as denied:
            channel.queue_declare("bob.inbox")
        assert denied.value.reply_code == 403
    ctl("change_password", "alice", stdin="looking-glass\n")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(broker.port, "alice", "wonderland")
    connect(broker.port, "alice", "looking-glass").close()
    ctl("delete_user", "alice")


def test_permissions_change_under_an_open_connection(broker: BrokerProcess, ctl: Ctl) -> None:
    ctl("add_user", "carol", "pw")
    ctl("set_permissions", "carol", ".*", ".*", ".*")
    with contextlib.closing(connect(broker.port, "carol", "pw")) as conn:
        channel = conn.channel()
        channel.queue_declare("carol.q1", auto_delete=True)
        channel.basic_publish("amq.direct", "k", b"allowed")
        ctl("clear_permissions", "carol")
        assert "carol" not in ctl("list_permissions")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as denied:
            channel.queue_declare("carol.q2")
        assert denied.value.reply_code == 403
        channel = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as denied:
            channel.basic_publish("amq.direct", "k", b"refused now")
            channel.queue_declare("carol.q3")  # a round trip to see the close
        assert denied.value.reply_code == 403
        assert "amq.direct" in denied.value.reply_text
    ctl("delete_user", "carol")


def test_delete_user_closes_their_connections_and_refuses_them(
    broker: BrokerProcess, ctl: Ctl
) -> None:
    ctl("add_user", "dave", "pw")
    ctl("set_permissions", "dave", ".*", ".*", ".*")
    conn = connect(broker.port, "dave", "pw")
    assert ctl("delete_user", "dave") == "user 'dave' deleted, 1 connection(s) closed\n"
    closed = wait_closed_by_broker(conn)
    assert closed.reply_code == 320
    assert closed.reply_text == "CONNECTION_FORCED - user 'dave' is deleted"
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(broker.port, "dave", "pw")
    assert "dave" not in ctl("list_users")


def test_close_connection_by_name_and_by_peer(broker: BrokerProcess, ctl: Ctl) -> None:
    named = connect(broker.port, name="victim")
    other = connect(broker.port, name="bystander")
    try:
        assert ctl("close_connection", "victim", "maintenance window").startswith(
            "closed connection 127.0.0.1:"
        )
        closed = wait_closed_by_broker(named)
        assert closed.reply_code == 320
        assert closed.reply_text == "CONNECTION_FORCED - maintenance window"
        (row,) = [c for c in ctl.json("list_connections") if c["name"] == "bystander"]
        ctl("close_connection", row["peer"], "by address")
        assert wait_closed_by_broker(other).reply_text == "CONNECTION_FORCED - by address"
        assert not [c for c in ctl.json("list_connections") if c["name"] == "bystander"]
    finally:
        for conn in (named, other):
            with contextlib.suppress(Exception):
                conn.close()


def test_purge_and_delete_queue(broker: BrokerProcess, ctl: Ctl) -> None:
    with contextlib.closing(connect(broker.port)) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.queue_declare("pd.q")
        for _ in range(4):
            channel.basic_publish("", "pd.q", b"x")
        assert ctl("purge_queue", "pd.q") == "purged 4 message(s) from queue 'pd.q' in vhost '/'\n"
        assert channel.queue_declare("pd.q", passive=True).method.message_count == 0
        channel.basic_publish("", "pd.q", b"y")
        channel.basic_consume("pd.q", lambda *a: None)
        assert ctl.error("delete_queue", "pd.q", "--if-unused") == (
            "kiltmq ctl: queue 'pd.q' in vhost '/' in use"
        )
        ctl.json("delete_queue", "pd.q")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as gone:
            conn.channel().queue_declare("pd.q", passive=True)
        assert gone.value.reply_code == 404
    assert "pd.q" not in ctl("list_queues")


def test_vhosts(broker: BrokerProcess, ctl: Ctl) -> None:
    assert ctl("add_vhost", "shop") == "vhost 'shop' added\n"
    assert ctl("add_vhost", "shop") == "vhost 'shop' exists\n"
    assert {"name": "shop"} in ctl.json("list_vhosts")
    assert ctl.json("list_permissions", "-p", "shop") == []  # nobody may use it yet
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        connect(broker.port, vhost="shop")
    ctl("set_permissions", "-p", "shop", "guest", ".*", ".*", ".*")
    conn = connect(broker.port, vhost="shop")
    conn.channel().queue_declare("shop.orders")
    assert [q["name"] for q in ctl.json("list_queues", "-p", "shop")] == ["shop.orders"]
    assert ctl.json("list_connections", "-p", "shop")[0]["vhost"] == "shop"
    ctl("delete_vhost", "shop")
    assert wait_closed_by_broker(conn).reply_code == 320
    assert "shop" not in ctl("list_vhosts").split()
    assert ctl.error("list_queues", "-p", "shop") == "kiltmq ctl: no such vhost 'shop'"


def test_errors_are_one_line_and_a_non_zero_status(broker: BrokerProcess, ctl: Ctl) -> None:
    assert ctl.error("purge_queue", "nope") == "kiltmq ctl: no such queue 'nope' in vhost '/'"
    assert ctl.error("delete_queue", "-p", "nowhere", "q") == "kiltmq ctl: no such vhost 'nowhere'"
    assert ctl.error("delete_user", "nobody") == "kiltmq ctl: no such user 'nobody'"
    assert ctl.error("add_user", "guest", "x") == "kiltmq ctl: user 'guest' already exists"
    assert ctl.error("delete_vhost", "nowhere") == "kiltmq ctl: no such vhost 'nowhere'"
    assert ctl.error("close_connection", "nobody", "bye") == (
        "kiltmq ctl: no such connection 'nobody'"
    )
    assert ctl.error("set_permissions", "guest", "(", ".*", ".*").startswith(
        "kiltmq ctl: invalid regular expression '('"
    )


def test_no_broker_at_the_socket(tmp_path: Path) -> None:
    ctl = Ctl(BrokerProcess(tmp_path / "none"))
    line = ctl.error("status", status=69)
    assert line == (
        f"kiltmq ctl: no broker is listening at {ctl.socket} (is it running? "
        "--socket/--data-dir)"
    )
