"""Definitions between RabbitMQ and kiltmq: a real RabbitMQ export loads into kiltmq
and comes back out equivalent, its users log in with their passwords; a kiltmq export
loads into RabbitMQ and its users log in there."""

from __future__ import annotations

import contextlib
import json
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from kiltmq.broker import Broker
from kiltmq.broker.admin import Admin

from .policy_admin import rabbitmq_api, rabbitmq_api_available, unique_vhost

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(120)]

SECTIONS = ("users", "vhosts", "permissions", "topic_permissions", "parameters", "policies",
            "queues", "exchanges", "bindings")


def q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def ok(answer: tuple[int, Any]) -> Any:
    status, body = answer
    assert status in (200, 201, 204), answer
    return body


def login(port: int, user: str, password: str, vhost: str) -> int:
    """Connect as ``user`` and passively declare "durable-q": its message count."""
    params = pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials(user, password),
        socket_timeout=10, connection_attempts=1,
    )
    with contextlib.closing(pika.BlockingConnection(params)) as conn:
        return int(conn.channel().queue_declare("durable-q", passive=True).method.message_count)


def only(definitions: dict[str, Any], vhost: str, user: str) -> dict[str, list[Any]]:
    """The parts of a whole-broker export about ``vhost`` and ``user``, each list in a
    fixed order."""
    picked: dict[str, list[Any]] = {}
    for section in SECTIONS:
        items = definitions.get(section, [])
        if section == "users":
            items = [u for u in items if u["name"] == user]
        elif section == "vhosts":
            items = [{"name": v["name"]} for v in items if v["name"] == vhost]
        else:
            items = [i for i in items if i.get("vhost") == vhost]
            if section in ("permissions", "topic_permissions"):
                items = [i for i in items if i["user"] == user]
        picked[section] = sorted(items, key=lambda i: json.dumps(i, sort_keys=True))
    return picked


@pytest.fixture
def rabbit_setup(rabbitmq_url: str) -> Iterator[tuple[str, str, str]]:
    """A vhost and a user on RabbitMQ with something of every kind; deleted after."""
    rabbitmq_api_available()
    vhost = unique_vhost()
    user = f"kiltmq-user-{uuid.uuid4().hex[:8]}"
    password = "s3cret-é"
    v = q(vhost)
    try:
        ok(rabbitmq_api("PUT", f"/vhosts/{v}", {}))
        ok(rabbitmq_api("PUT", f"/users/{q(user)}",
                        {"password": password, "tags": "monitoring,policymaker"}))
        ok(rabbitmq_api("PUT", f"/permissions/{v}/{q(user)}",
                        {"configure": "^d", "write": ".*", "read": "^(d|x)"}))
        ok(rabbitmq_api("PUT", f"/permissions/{v}/guest",
                        {"configure": ".*", "write": ".*", "read": ".*"}))
        for exchange, write, read in (("amq.topic", "^a\\.{username}", ""),
                                      ("x.main", ".*", "^r")):
            ok(rabbitmq_api("PUT", f"/topic-permissions/{v}/{q(user)}",
                            {"exchange": exchange, "write": write, "read": read}))
        ok(rabbitmq_api("PUT", f"/exchanges/{v}/ae", {"type": "fanout", "durable": True}))
        ok(rabbitmq_api("PUT", f"/exchanges/{v}/x.main", {
            "type": "topic", "durable": True, "arguments": {"alternate-exchange": "ae"}}))
        ok(rabbitmq_api("PUT", f"/exchanges/{v}/x.inner", {
            "type": "headers", "durable": True, "internal": True}))
        ok(rabbitmq_api("PUT", f"/queues/{v}/durable-q", {
            "durable": True, "arguments": {"x-max-length": 10, "x-queue-mode": "lazy"}}))
        ok(rabbitmq_api("PUT", f"/queues/{v}/transient-q", {
            "durable": False, "auto_delete": False, "arguments": {}}))
        ok(rabbitmq_api("POST", f"/bindings/{v}/e/x.main/q/durable-q",
                        {"routing_key": "a.#", "arguments": {}}))
        ok(rabbitmq_api("POST", f"/bindings/{v}/e/x.main/e/x.inner",
                        {"routing_key": "", "arguments": {"x-match": "any", "k": "v"}}))
        ok(rabbitmq_api("POST", f"/bindings/{v}/e/ae/q/transient-q",
                        {"routing_key": "", "arguments": {}}))
        ok(rabbitmq_api("PUT", f"/policies/{v}/ttl", {
            "pattern": "^durable", "definition": {"message-ttl": 60000, "max-length": 5},
            "priority": 3, "apply-to": "queues"}))
        ok(rabbitmq_api("PUT", f"/operator-policies/{v}/cap", {
            "pattern": ".*", "definition": {"max-length-bytes": 1000000},
            "priority": 0, "apply-to": "queues"}))
        ok(rabbitmq_api("PUT", f"/vhost-limits/{v}/max-queues", {"value": 50}))
        ok(rabbitmq_api("PUT", f"/user-limits/{q(user)}/max-channels", {"value": 70}))
        yield vhost, user, password
    finally:
        rabbitmq_api("DELETE", f"/vhosts/{v}")
        rabbitmq_api("DELETE", f"/users/{q(user)}")


def test_rabbitmq_export_loads_into_kiltmq_and_comes_back_equivalent(
    rabbitmq_url: str, rabbit_setup: tuple[str, str, str]
) -> None:
    vhost, user, password = rabbit_setup
    exported = ok(rabbitmq_api("GET", "/definitions"))
    assert exported["rabbit_version"].startswith("3.")
    ours = only(exported, vhost, user)
    assert ours["users"][0]["tags"] == ["monitoring", "policymaker"]
    assert ours["users"][0]["limits"] == {"max-channels": 70}
    assert len(ours["bindings"]) == 3 and len(ours["parameters"]) == 2
    assert len(ours["topic_permissions"]) == 2
    per_vhost = ok(rabbitmq_api("GET", f"/definitions/{q(vhost)}"))
    with Broker(port=0) as broker:
        admin = Admin(broker)
        broker.call_in_loop(lambda: admin.import_definitions({
            "rabbit_version": exported["rabbit_version"], **ours,
        }))
        again = broker.call_in_loop(admin.export_definitions)
        assert only(again, vhost, user) == ours
        back = broker.call_in_loop(lambda: admin.export_definitions(vhost))
        assert set(back) == set(per_vhost)
        for section in ("parameters", "policies", "queues", "exchanges", "bindings"):
            key = lambda i: json.dumps(i, sort_keys=True)  # noqa: E731
            assert sorted(back[section], key=key) == sorted(per_vhost[section], key=key)
        # the imported user logs in with the password RabbitMQ hashed; policies apply
        assert login(broker.port, user, password, vhost) == 0
        queue = broker.vhosts[vhost].queues["durable-q"]
        assert broker.call_in_loop(lambda: (queue.max_length, queue.message_ttl)) == (5, 60000)
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            login(broker.port, user, "wrong", vhost)


def test_kiltmq_export_loads_into_rabbitmq(rabbitmq_url: str) -> None:
    rabbitmq_api_available()
    vhost = unique_vhost()
    user = f"kiltmq-user-{uuid.uuid4().hex[:8]}"
    with Broker(port=0) as broker:
        admin = Admin(broker)

        def define() -> None:
            admin.add_vhost(vhost, users=[])
            admin.add_user(user, "from-kiltmq", ["management"])
            admin.set_user_limits(user, {"max-connections": 4, "max-channels": -1})
            admin.set_permissions(user, vhost, ".*", ".*", ".*")
            admin.set_topic_permissions(user, vhost, "amq.topic", "^o\\.{username}\\.", "^s")
            admin.set_topic_permissions(user, vhost, "x", "", ".*")
            host = broker.vhosts[vhost]
            host.declare_queue("durable-q", durable=True, arguments={"x-max-length": 7})
            host.declare_exchange("x", "direct", durable=True)
            host.bind(host.exchanges["x"], host.queues["durable-q"], "k")
            admin.set_policy(vhost, "lim", "^durable", {"max-length": 3}, priority=2)
            admin.set_operator_policy(vhost, "op", ".*", {"message-ttl": 1000})

        broker.call_in_loop(define)
        exported = only(broker.call_in_loop(admin.export_definitions), vhost, user)
    assert exported["users"][0]["limits"] == {"max-connections": 4, "max-channels": -1}
    assert len(exported["topic_permissions"]) == 2
    try:
        ok(rabbitmq_api("POST", "/definitions", exported))
        assert login(5672, user, "from-kiltmq", vhost) == 0
        back = only(ok(rabbitmq_api("GET", "/definitions")), vhost, user)
        assert back == exported
    finally:
        rabbitmq_api("DELETE", f"/vhosts/{q(vhost)}")
        rabbitmq_api("DELETE", f"/users/{q(user)}")
