"""``kiltmq ctl set_vhost_limits``, ``clear_vhost_limits`` and ``list_vhost_limits``, with
``rabbitmqctl``'s arguments and output; limits survive a restart."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pika
import pytest
from tests.durability.conftest import BrokerProcess

from .conftest import Ctl, connect

pytestmark = pytest.mark.timeout(60)


def test_set_list_and_clear_vhost_limits(broker: BrokerProcess, ctl: Ctl) -> None:
    ctl("add_vhost", "limited")
    ctl("set_permissions", "-p", "limited", "guest", ".*", ".*", ".*")
    assert ctl("list_vhost_limits", "-p", "limited") == ""
    assert ctl("set_vhost_limits", "-p", "limited", '{"max-connections": 1, "max-queues": 1}') == (
        "limits of vhost 'limited' set to {\"max-connections\": 1, \"max-queues\": 1}\n"
    )
    assert ctl("list_vhost_limits", "-p", "limited") == (
        '{"max-connections":1,"max-queues":1}\n'
    )
    assert ctl.json("list_vhost_limits", "-p", "limited") == [
        {"vhost": "limited", "limits": {"max-connections": 1, "max-queues": 1}}
    ]
    assert ctl("list_vhost_limits", "--global").splitlines() == [
        "vhost    limits",
        'limited  {"max-connections":1,"max-queues":1}',
    ]
    with contextlib.closing(connect(broker.port, vhost="limited")) as conn:
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
            connect(broker.port, vhost="limited")
        assert "connection limit (1) is reached" in str(refused.value)
        channel = conn.channel()
        channel.queue_declare("one", auto_delete=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as full:
            channel.queue_declare("two")
        assert full.value.reply_code == 406
    assert ctl("clear_vhost_limits", "-p", "limited") == "limits of vhost 'limited' cleared\n"
    assert ctl("list_vhost_limits", "-p", "limited") == ""
    assert ctl("-q", "list_vhost_limits", "--global") == ""
    with contextlib.closing(connect(broker.port, vhost="limited")), contextlib.closing(
        connect(broker.port, vhost="limited")
    ):
        pass
    ctl("delete_vhost", "limited")


def test_bad_vhost_limits_are_refused(ctl: Ctl) -> None:
    assert ctl.error("set_vhost_limits", '{"max-foo": 1}') == (
        "kiltmq ctl: unrecognised vhost limits: max-foo"
    )
    assert ctl.error("set_vhost_limits", '{"max-queues": "x"}') == (
        "kiltmq ctl: max-queues should be an integer, actually was 'x'"
    )
    assert ctl.error("set_vhost_limits", "{").startswith("kiltmq ctl: invalid JSON '{'")
    assert ctl.error("set_vhost_limits", "-p", "nowhere", "{}") == (
        "kiltmq ctl: no such vhost 'nowhere'"
    )
    assert ctl.error("list_vhost_limits", "-p", "nowhere") == (
        "kiltmq ctl: no such vhost 'nowhere'"
    )
    assert ctl("list_vhost_limits") == ""  # "/" has none


def test_vhost_limits_survive_a_restart(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data")
    ctl = Ctl(broker)
    try:
        broker.start()
        ctl("add_vhost", "kept")
        ctl("add_vhost", "cleared")
        ctl("set_vhost_limits", "-p", "kept", '{"max-queues": 0, "max-connections": -1}')
        ctl("set_vhost_limits", "-p", "cleared", '{"max-queues": 3}')
        ctl("clear_vhost_limits", "-p", "cleared")
        assert broker.stop() == 0
        broker.start()
        assert ctl.json("list_vhost_limits", "--global") == [
            {"vhost": "kept", "limits": {"max-queues": 0, "max-connections": -1}}
        ]
        ctl("set_permissions", "-p", "kept", "guest", ".*", ".*", ".*")
        with contextlib.closing(connect(broker.port, vhost="kept")) as conn:
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as full:
                conn.channel().queue_declare("q")
            assert "queue limit in vhost 'kept' (0) is reached" in full.value.reply_text
        ctl("delete_vhost", "kept")
        assert broker.stop() == 0
        broker.start()
        assert ctl.json("list_vhost_limits", "--global") == []
    finally:
        broker.close()
