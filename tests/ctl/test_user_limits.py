"""``kiltmq ctl set_user_limits``, ``clear_user_limits`` and ``list_user_limits``, with
``rabbitmqctl``'s arguments, merging and listing; limits survive a restart and a new
password."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pika
import pytest
from tests.durability.conftest import BrokerProcess

from .conftest import Ctl, connect

pytestmark = pytest.mark.timeout(60)


def test_set_list_and_clear_user_limits(broker: BrokerProcess, ctl: Ctl) -> None:
    ctl("add_user", "limited", "pw")
    ctl("set_permissions", "limited", ".*", ".*", ".*")
    assert ctl("list_user_limits", "--user", "limited") == "{}\n"
    assert ctl("set_user_limits", "limited", '{"max-connections": 1}') == (
        "limits of user 'limited' set to {\"max-connections\": 1}\n"
    )
    ctl("set_user_limits", "limited", '{"max-channels": 2}')  # the other limit stays
    assert ctl("list_user_limits", "--user", "limited") == (
        '{"max-channels":2,"max-connections":1}\n'
    )
    assert ctl.json("list_user_limits", "--user", "limited") == [
        {"user": "limited", "limits": {"max-connections": 1, "max-channels": 2}}
    ]
    assert ctl("list_user_limits", "--global").splitlines() == [
        "user     limits",
        'limited  {"max-channels":2,"max-connections":1}',
    ]
    conn = connect(broker.port, "limited", "pw")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
        connect(broker.port, "limited", "pw")
    assert (
        "(530) \"NOT_ALLOWED - connection refused for user 'limited': user connection "
        "limit (1) is reached\""
    ) in str(refused.value)
    conn.channel()
    conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        conn.channel()  # the third channel closes the connection
    assert closed.value.reply_code == 530
    assert closed.value.reply_text == (
        "NOT_ALLOWED - number of channels opened for user 'limited' has reached the "
        "maximum allowed user limit of (2)"
    )
    assert ctl("clear_user_limits", "limited", "max-connections") == (
        "limit max-connections of user 'limited' cleared\n"
    )
    assert ctl("list_user_limits", "--user", "limited") == '{"max-channels":2}\n'
    assert ctl("clear_user_limits", "limited", "all") == "limits of user 'limited' cleared\n"
    assert ctl("-q", "list_user_limits", "--global") == ""
    with contextlib.closing(connect(broker.port, "limited", "pw")) as one, \
            contextlib.closing(connect(broker.port, "limited", "pw")):
        for _ in range(3):
            one.channel()
    ctl("delete_user", "limited")


def test_bad_user_limits_are_refused(ctl: Ctl) -> None:
    assert ctl.error("set_user_limits", "guest", '{"max-queues": 1}') == (
        'kiltmq ctl: Unrecognised terms [{<<"max-queues">>,1}] in user-limits'
    )
    assert ctl.error("set_user_limits", "guest", '{"max-channels": "x"}') == (
        'kiltmq ctl: max-channels should be a number, actually was <<"x">>'
    )
    assert ctl.error("set_user_limits", "guest", "{bad") == (
        "kiltmq ctl: JSON decoding error. Reason: badarg"
    )
    assert ctl.error("set_user_limits", "nobody", '{"max-channels": 1}') == (
        "kiltmq ctl: no such user 'nobody'"
    )
    assert ctl.error("clear_user_limits", "nobody", "all") == "kiltmq ctl: no such user 'nobody'"
    assert ctl.error("list_user_limits", "--user", "nobody") == (
        "kiltmq ctl: no such user 'nobody'"
    )
    assert ctl("list_user_limits") == "{}\n"  # guest's, who has none


def test_user_limits_survive_a_restart_and_a_new_password(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data")
    ctl = Ctl(broker)
    try:
        broker.start()
        ctl("add_user", "kept", "one")
        ctl("set_permissions", "kept", ".*", ".*", ".*")
        ctl("set_user_limits", "kept", '{"max-connections": 0, "max-channels": -1}')
        ctl("change_password", "kept", "two")
        ctl("set_user_tags", "kept", "monitoring")
        ctl("set_user_limits", "guest", '{"max-channels": 5}')
        ctl("clear_user_limits", "guest", "all")
        assert broker.stop() == 0
        broker.start()
        assert ctl.json("list_user_limits", "--global") == [
            {"user": "kept", "limits": {"max-connections": 0, "max-channels": -1}}
        ]
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
            connect(broker.port, "kept", "two")
        assert "user connection limit (0) is reached" in str(refused.value)
        ctl("delete_user", "kept")
        assert broker.stop() == 0
        broker.start()
        assert ctl.json("list_user_limits", "--global") == []
    finally:
        broker.close()
