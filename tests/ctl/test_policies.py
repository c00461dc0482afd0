"""``kiltmq ctl set_policy``, ``clear_policy``, ``list_policies``, their operator policy
forms, ``export_definitions`` and ``import_definitions``, with ``rabbitmqctl``'s
arguments; policies and imported definitions survive a restart, ``kiltmq broker
--load-definitions`` loads a file at start."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from tests.durability.conftest import BrokerProcess

from .conftest import Ctl, connect

pytestmark = pytest.mark.timeout(60)


def test_set_list_and_clear_policies(broker: BrokerProcess, ctl: Ctl) -> None:
    ctl("add_vhost", "pol")
    ctl("set_permissions", "-p", "pol", "guest", ".*", ".*", ".*")
    assert ctl("list_policies", "-p", "pol") == (
        "vhost  name  pattern  apply-to  definition  priority\n"
    )
    assert ctl("set_policy", "-p", "pol", "--priority", "2", "--apply-to", "queues",
               "cap", "^jobs", '{"max-length": 2}') == "policy 'cap' set in vhost 'pol'\n"
    assert ctl("set_operator_policy", "-p", "pol", "op", ".*", '{"max-length": 1}') == (
        "operator policy 'op' set in vhost 'pol'\n"
    )
    assert ctl("list_policies", "-p", "pol").splitlines() == [
        "vhost  name  pattern  apply-to  definition        priority",
        'pol    cap   ^jobs    queues    {"max-length":2}  2',
    ]
    assert ctl.json("list_operator_policies", "-p", "pol") == [{
        "vhost": "pol", "name": "op", "pattern": ".*", "apply-to": "all",
        "definition": {"max-length": 1}, "priority": 0,
    }]
    with contextlib.closing(connect(broker.port, vhost="pol")) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.queue_declare("jobs")
        for body in (b"1", b"2", b"3"):
            channel.basic_publish("", "jobs", body)
        assert channel.queue_declare("jobs", passive=True).method.message_count == 1
        ctl("clear_operator_policy", "-p", "pol", "op")
        for body in (b"4", b"5"):
            channel.basic_publish("", "jobs", body)
        assert channel.queue_declare("jobs", passive=True).method.message_count == 2
        assert ctl("clear_policy", "-p", "pol", "cap") == "policy 'cap' cleared in vhost 'pol'\n"
        channel.basic_publish("", "jobs", b"6")
        assert channel.queue_declare("jobs", passive=True).method.message_count == 3
    assert ctl("-q", "list_policies", "-p", "pol") == ""
    ctl("delete_vhost", "pol")


def test_bad_policies_are_refused_with_rabbitmqs_reason(ctl: Ctl) -> None:
    assert ctl.error("set_policy", "p", "^q", '{"max-length": -1}') == (
        "kiltmq ctl: -1 is not a valid maximum length"
    )
    assert ctl.error("set_policy", "p", "^q", '{"x-max-priority": 5}') == (
        'kiltmq ctl: [{<<"x-max-priority">>,5}] are not recognised policy settings'
    )
    assert ctl.error("set_operator_policy", "p", "^q", '{"overflow": "drop-head"}') == (
        'kiltmq ctl: [{<<"overflow">>,<<"drop-head">>}] are not recognised policy settings'
    )
    assert ctl.error("set_policy", "--apply-to", "bad", "p", "^q", '{"max-length": 1}') == (
        "kiltmq ctl: apply-to 'bad' unrecognised; should be 'queues', 'exchanges' or 'all'"
    )
    assert ctl.error("set_policy", "p", "^q", "nope") == (
        "kiltmq ctl: JSON decoding error. Reason: badarg"
    )
    assert ctl.error("set_policy", "-p", "nowhere", "p", "^q", '{"max-length": 1}') == (
        "kiltmq ctl: no such vhost 'nowhere'"
    )
    assert ctl.error("clear_policy", "nothing") == (
        "kiltmq ctl: no such policy 'nothing' in vhost '/'"
    )
    assert ctl.error("clear_operator_policy", "nothing") == (
        "kiltmq ctl: no such operator policy 'nothing' in vhost '/'"
    )


def test_policies_and_imported_definitions_survive_a_restart(tmp_path: Path) -> None:
    definitions = {
        "vhosts": [{"name": "imported"}],
        "users": [{"name": "alice", "password_hash": "", "tags": "administrator"}],
        "permissions": [{"user": "guest", "vhost": "imported", "configure": ".*",
                         "write": ".*", "read": ".*"}],
        "policies": [{"vhost": "imported", "name": "lim", "pattern": "^d",
                      "apply-to": "all", "definition": {"max-length": 1}, "priority": 0}],
        "queues": [{"name": "durable-q", "vhost": "imported", "durable": True,
                    "auto_delete": False, "arguments": {}}],
    }
    broker = BrokerProcess(tmp_path / "data")
    ctl = Ctl(broker)
    try:
        broker.start()
        assert ctl("import_definitions", "-", stdin=json.dumps(definitions)) == (
            "definitions imported from standard input\n"
        )
        ctl("set_operator_policy", "-p", "imported", "op", ".*", '{"message-ttl": 5000}')
        assert broker.stop() == 0
        broker.start()
        exported_file = tmp_path / "out.json"
        assert ctl("export_definitions", str(exported_file)) == (
            f"definitions exported to {exported_file}\n"
        )
        exported = json.loads(exported_file.read_text())
        assert exported["policies"] == definitions["policies"]
        assert exported["parameters"] == [{
            "value": {"pattern": ".*", "definition": {"message-ttl": 5000}, "priority": 0,
                      "apply-to": "all"},
            "vhost": "imported", "component": "operator_policy", "name": "op",
        }]
        assert [q["name"] for q in exported["queues"]] == ["durable-q"]
        assert {"name": "alice", "password_hash": "", "tags": ["administrator"],
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "limits": {}} in exported["users"]
        assert json.loads(ctl("export_definitions", "-")) == exported
        with contextlib.closing(connect(broker.port, vhost="imported")) as conn:
            channel = conn.channel()
            channel.confirm_delivery()
            channel.basic_publish("", "durable-q", b"1")
            channel.basic_publish("", "durable-q", b"2")
            assert channel.queue_declare("durable-q", passive=True).method.message_count == 1
    finally:
        broker.close()


def test_import_refuses_what_it_cannot_load(ctl: Ctl, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert ctl.error("import_definitions", str(bad)).startswith(
        f"kiltmq ctl: {bad} is not JSON:"
    )
    assert ctl.error("import_definitions", str(tmp_path / "missing.json")) == (
        f"kiltmq ctl: cannot read {tmp_path / 'missing.json'}: No such file or directory"
    )
    bad.write_text(json.dumps({"policies": [{"vhost": "/", "name": "p", "pattern": "^q",
                                             "definition": {"expires": 0}}]}))
    assert ctl.error("import_definitions", str(bad)) == (
        "kiltmq ctl: 0 is not a valid queue expiry"
    )
    bad.write_text(json.dumps({"parameters": [{"vhost": "/", "component": "federation-upstream",
                                               "name": "u", "value": {}}]}))
    assert ctl.error("import_definitions", str(bad)) == (
        "kiltmq ctl: definitions: component federation-upstream not found"
    )


def test_broker_loads_definitions_at_start(tmp_path: Path) -> None:
    path = tmp_path / "definitions.json"
    path.write_text(json.dumps({
        "queues": [{"name": "loaded", "vhost": "/", "durable": True, "auto_delete": False,
                    "arguments": {}}],
        "policies": [{"vhost": "/", "name": "lim", "pattern": "^loaded$",
                      "definition": {"max-length": 1}, "priority": 0, "apply-to": "queues"}],
        "topic_permissions": [{"user": "guest", "vhost": "/", "exchange": "amq.topic",
                               "write": "^loaded\\.", "read": ""}],
    }))
    broker = BrokerProcess(tmp_path / "data", "--load-definitions", str(path))
    ctl = Ctl(broker)
    try:
        broker.start()
        assert ctl.json("list_policies")[0]["name"] == "lim"
        assert [q["name"] for q in ctl.json("list_queues")] == ["loaded"]
        assert ctl.json("list_topic_permissions") == [
            {"user": "guest", "exchange": "amq.topic", "write": "^loaded\\.", "read": ""}
        ]
    finally:
        broker.close()
    path.write_text(json.dumps({"policies": [{"vhost": "/", "name": "x", "pattern": "^q",
                                              "definition": {"foo": 1}}]}))
    failing = BrokerProcess(tmp_path / "data2", "--load-definitions", str(path))
    with pytest.raises(AssertionError, match="cannot load definitions"):
        failing.start()
