"""``kiltmq ctl set_topic_permissions``, ``clear_topic_permissions``,
``list_topic_permissions`` and ``list_user_topic_permissions`` with ``rabbitmqctl``'s
arguments; the permissions apply to connections already open, and go with their user or
vhost."""

from __future__ import annotations

import contextlib

import pika
import pytest
from tests.durability.conftest import BrokerProcess

from .conftest import Ctl, connect

pytestmark = pytest.mark.timeout(60)


def test_set_list_and_clear_topic_permissions(broker: BrokerProcess, ctl: Ctl) -> None:
    ctl("add_user", "dora", "pw")
    ctl("add_vhost", "tp")
    assert ctl("list_topic_permissions") == "user  exchange  write  read\n"
    assert ctl("set_topic_permissions", "dora", "amq.topic", "^a\\.", "^r\\.") == (
        "topic permissions of user 'dora' for exchange 'amq.topic' in vhost '/' set\n"
    )
    ctl("set_topic_permissions", "dora", "events", "", ".*")
    ctl("set_topic_permissions", "-p", "tp", "dora", "amq.topic", "{username}", "")
    assert ctl("list_topic_permissions").splitlines() == [
        "user  exchange   write  read",
        "dora  amq.topic  ^a\\.   ^r\\.",
        "dora  events            .*",
    ]
    assert ctl.json("list_topic_permissions", "-p", "tp") == [
        {"user": "dora", "exchange": "amq.topic", "write": "{username}", "read": ""},
    ]
    assert ctl.json("list_user_topic_permissions", "dora") == [
        {"vhost": "/", "exchange": "amq.topic", "write": "^a\\.", "read": "^r\\."},
        {"vhost": "/", "exchange": "events", "write": "", "read": ".*"},
        {"vhost": "tp", "exchange": "amq.topic", "write": "{username}", "read": ""},
    ]
    assert ctl("clear_topic_permissions", "dora", "events") == (
        "topic permissions of user 'dora' for exchange 'events' in vhost '/' cleared\n"
    )
    assert [t["exchange"] for t in ctl.json("list_topic_permissions")] == ["amq.topic"]
    assert ctl("clear_topic_permissions", "dora") == (
        "topic permissions of user 'dora' in vhost '/' cleared\n"
    )
    assert ctl.json("list_topic_permissions") == []
    ctl("delete_vhost", "tp")
    assert ctl.json("list_user_topic_permissions", "dora") == []
    ctl("set_topic_permissions", "dora", "amq.topic", "x", "y")
    ctl("delete_user", "dora")
    ctl("add_user", "dora", "pw")
    assert ctl.json("list_user_topic_permissions", "dora") == []
    ctl("delete_user", "dora")


def test_bad_topic_permissions_are_refused(broker: BrokerProcess, ctl: Ctl) -> None:
    assert ctl.error("set_topic_permissions", "nobody", "amq.topic", "a", "b") == (
        "kiltmq ctl: no such user 'nobody'"
    )
    assert ctl.error("set_topic_permissions", "-p", "nowhere", "guest", "amq.topic", "a",
                     "b") == "kiltmq ctl: no such vhost 'nowhere'"
    assert ctl.error("set_topic_permissions", "guest", "amq.topic", "(", "b") == (
        "kiltmq ctl: regular expression '(' is invalid: missing ) at 1"
    )
    assert ctl.error("list_user_topic_permissions", "nobody") == (
        "kiltmq ctl: no such user 'nobody'"
    )
    assert ctl.error("list_topic_permissions", "-p", "nowhere") == (
        "kiltmq ctl: no such vhost 'nowhere'"
    )
    assert ctl.json("list_topic_permissions") == []


def test_topic_permissions_apply_to_an_open_connection(
    broker: BrokerProcess, ctl: Ctl
) -> None:
    ctl("add_user", "erin", "pw")
    ctl("set_permissions", "erin", ".*", ".*", ".*")
    with contextlib.closing(connect(broker.port, "erin", "pw")) as conn:
        channel = conn.channel()
        channel.basic_publish("amq.topic", "b.a", b"allowed: no topic permission yet")
        ctl("set_topic_permissions", "erin", "amq.topic", "^a\\.", "^erin\\.")
        channel.basic_publish("amq.topic", "a.b", b"allowed")
        channel.basic_publish("amq.direct", "b.a", b"not a topic exchange")
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, "amq.topic", "erin.#")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as denied:
            channel.queue_bind(queue, "amq.topic", "#")
        assert (denied.value.reply_code, denied.value.reply_text) == (
            403, "ACCESS_REFUSED - access to topic '#' in exchange 'amq.topic' in vhost '/' "
            "refused for user 'erin'",
        )
        channel = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as denied:
            channel.basic_publish("amq.topic", "b.a", b"refused")
            channel.queue_declare("", exclusive=True)  # a round trip to see the close
        assert denied.value.reply_code == 403
        ctl("clear_topic_permissions", "erin")
        channel = conn.channel()
        channel.basic_publish("amq.topic", "b.a", b"allowed again")
        channel.queue_declare("", exclusive=True)
    ctl("delete_user", "erin")
