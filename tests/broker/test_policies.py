"""Policies in the embedded broker: which policy applies, what queues and exchanges show,
x-expires by policy, policies kept by the SQLite store, the test fixture's policy and
definitions methods. (Behaviour RabbitMQ also has is compared in tests/compat.)"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
from pathlib import Path
from typing import Any

import pika
import pytest

from kiltmq.broker import Broker
from kiltmq.broker.admin import Admin, AdminError, NotFound
from kiltmq.broker.auth import check_password, hash_password, hashing_algorithm
from kiltmq.broker.policy import Policy, PolicyError, erlang_term, parse_policy, pick
from kiltmq.broker.policy_admin import PolicyInvalid
from kiltmq.testing import BrokerFixture

pytestmark = pytest.mark.timeout(60)


def make(
    name: str, pattern: str, priority: int | float = 0,
    definition: dict[str, Any] | None = None,
) -> Policy:
    return parse_policy("/", name, pattern, definition or {"max-length": 1},
                        priority=priority)


def test_erlang_terms_as_rabbitmq_prints_them() -> None:
    assert [erlang_term(v) for v in (1000.0, 100.0, 1.5, 1e20, 0.0001, 1e-7, -2.5)] == [
        "1.0e3", "100.0", "1.5", "1.0e20", "0.0001", "1.0e-7", "-2.5",
    ]
    assert erlang_term({"b": [1, None, True], "a": 'say "x"'}) == (
        '#{<<"a">> => <<"say \\"x\\"">>,<<"b">> => [1,null,true]}'
    )


def test_the_highest_priority_applies_and_equals_go_by_name() -> None:
    low, high = make("low", "^q", 1), make("high", "^q\\.", 2.5)
    assert pick([low, high], "queue", "q.x") is high
    assert pick([low, high], "queue", "qx") is low
    assert pick([low, high], "queue", "x.q") is None
    beta, alpha = make("beta", "q"), make("alpha", "q")
    assert pick([beta, alpha], "queue", "q") is alpha
    only_exchanges = parse_policy("/", "x", ".*", {"alternate-exchange": "ae"},
                                  apply_to="exchanges")
    assert pick([only_exchanges], "queue", "q") is None
    assert pick([only_exchanges], "exchange", "q") is only_exchanges


def test_policy_reason_for_the_http_api() -> None:
    with pytest.raises(PolicyError) as refused:
        make("p", "^q", definition={"max-length": "a"})
    assert str(refused.value) == '<<"a">> is not a valid maximum length'
    assert refused.value.reason == 'Validation failed\n\n<<"a">> is not a valid maximum length\n'


def test_rabbitmq_password_hashes() -> None:
    sha256 = hash_password("secret")
    assert hashing_algorithm(sha256) == "rabbit_password_hashing_sha256"
    assert check_password("secret", sha256) and not check_password("other", sha256)
    # a hash RabbitMQ 3.10.8 made for "guest"
    assert check_password("guest", "Cs26oMvhnmscg0KaY0WODN4aTZ+K+JmKkOhDarXf51XjhzNj")
    assert hashing_algorithm("not base64!") is None


def test_queue_and_exchange_show_their_policies() -> None:
    async def run() -> None:
        async with Broker(port=0) as broker:
            admin = Admin(broker)
            host = broker.vhosts["/"]
            host.declare_queue("q1", arguments={"x-max-length": 10})
            host.declare_exchange("x1", "direct")
            admin.set_policy("/", "user", "1$", {"max-length": 5, "dead-letter-exchange": "d"})
            admin.set_operator_policy("/", "op", "^q", {"max-length": 3, "expires": 60000})
            (stats,) = admin.queues("/")
            assert (stats.policy, stats.operator_policy) == ("user", "op")
            assert stats.effective_policy_definition == {
                "dead-letter-exchange": "d", "expires": 60000, "max-length": 3,
            }
            assert stats.arguments == {"x-max-length": 10}
            exchange = next(x for x in admin.exchanges("/") if x.name == "x1")
            assert exchange.policy == "user"
            with pytest.raises(PolicyInvalid) as invalid:
                admin.set_policy("/", "bad", "^q", {"expires": 0})
            assert invalid.value.reason == "Validation failed\n\n0 is not a valid queue expiry\n"
            with pytest.raises(NotFound):
                admin.clear_policy("/", "nothing")
            admin.clear_policy("/", "user")
            (stats,) = admin.queues("/")
            assert (stats.policy, stats.effective_policy_definition["max-length"]) == (None, 3)

    asyncio.run(run())


def test_expires_by_policy_deletes_an_unused_queue(broker: Broker) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    with contextlib.closing(connection):
        connection.channel().queue_declare("idle")
        connection.channel().queue_declare("kept")
    admin = Admin(broker)
    broker.call_in_loop(lambda: admin.set_policy("/", "expiry", "^idle$", {"expires": 50}))
    deadline = time.monotonic() + 10
    while "idle" in broker.vhosts["/"].queues and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(broker.vhosts["/"].queues) == ["kept"]


def test_policies_are_kept_by_the_store(tmp_path: Path) -> None:
    async def first() -> None:
        async with Broker(port=0, data_dir=tmp_path) as broker:
            admin = Admin(broker)
            broker.vhosts["/"].declare_queue("durable", durable=True)
            admin.set_policy("/", "lim", "^dur", {"max-length": 2, "ha-mode": "all"},
                             priority=1.5, apply_to="queues")
            admin.set_operator_policy("/", "op", ".*", {"message-ttl": 1000})
            admin.set_policy("/", "gone", ".*", {"max-length": 9})
            admin.clear_policy("/", "gone")
            await admin.committed()

    async def second() -> None:
        async with Broker(port=0, data_dir=tmp_path) as broker:
            admin = Admin(broker)
            assert [p.as_json() for p in admin.policies("/")] == [{
                "vhost": "/", "name": "lim", "pattern": "^dur", "apply-to": "queues",
                "definition": {"ha-mode": "all", "max-length": 2}, "priority": 1.5,
            }]
            assert [p.name for p in admin.operator_policies()] == ["op"]
            queue = broker.vhosts["/"].queues["durable"]
            assert (queue.max_length, queue.message_ttl) == (2, 1000)

    asyncio.run(first())
    asyncio.run(second())


def test_fixture_sets_policies_and_loads_definitions() -> None:
    with BrokerFixture.start() as amqp_broker:
        own = amqp_broker.add_vhost("mine")
        own.load_definitions({
            "queues": [{"name": "jobs", "vhost": "elsewhere", "durable": True,
                        "auto_delete": False, "arguments": {}}],
            "policies": [{"vhost": "elsewhere", "name": "lim", "pattern": "^jobs$",
                          "definition": {"max-length": 1}, "priority": 0,
                          "apply-to": "queues"}],
        })
        own.publish("", "jobs", "one")
        own.publish("", "jobs", "two")
        info = own.queue("jobs")
        assert [m.text for m in info.messages] == ["two"]
        assert (info.policy, info.effective_policy_definition) == ("lim", {"max-length": 1})
        own.set_policy("op", ".*", {"max-length": 0}, operator=True)
        assert own.queue("jobs").message_count == 0
        own.clear_policy("op", operator=True)
        with pytest.raises(ValueError, match="not a valid maximum length"):
            own.set_policy("bad", ".*", {"max-length": -2})
        exported = own.export_definitions(vhost="mine")
        assert [q["name"] for q in exported["queues"]] == ["jobs"]
        assert exported["policies"][0]["vhost"] == "mine"


def test_definitions_with_deeply_nested_arguments_go_in_and_out() -> None:
    nested: dict[str, Any] = {}
    inner = nested
    for _ in range(700):  # RabbitMQ exports such tables; too deep for recursive copying
        inner["x"] = {}
        inner = inner["x"]
    queue = {"name": "deep", "vhost": "/", "durable": False, "auto_delete": False,
             "arguments": {"x-deep": nested}}

    async def run() -> None:
        async with Broker(port=0) as broker:
            admin = Admin(broker)
            admin.import_definitions({"queues": [queue]})
            assert admin.export_definitions()["queues"] == [queue]

    asyncio.run(run())


@pytest.mark.parametrize(
    ("definitions", "error"),
    [
        ([], "definitions must be a JSON object"),
        ({"queues": {"name": "q"}}, "definitions: 'queues' must be a list of objects"),
        ({"users": [{"name": ""}]}, "definitions: a user name cannot be empty"),
        ({"users": [{"name": "u", "password_hash": "c2hvcnQ="}]},
         "definitions: user 'u' has a password hash kiltmq cannot use "
         "(unknown hashing algorithm)"),
        ({"users": [{"name": "u", "password_hash": hash_password("p"),
                     "hashing_algorithm": "rabbit_password_hashing_sha512"}]},
         "definitions: user 'u' has a password hash kiltmq cannot use "
         "(rabbit_password_hashing_sha512)"),
        ({"users": [{"name": "u", "password_hash": "", "tags": 5}]},
         "definitions: the tags of user 'u' must be a list or a string"),
        ({"topic_permissions": [{"user": "nobody", "vhost": "/", "exchange": "amq.topic",
                                 "write": ".*", "read": ".*"}]}, "no such user 'nobody'"),
        ({"topic_permissions": [{"user": "guest", "vhost": "/", "exchange": "amq.topic",
                                 "write": "(", "read": ".*"}]},
         "regular expression '(' is invalid: missing ) at 1"),
        ({"topic_permissions": [{"user": "guest", "vhost": "/", "write": "", "read": ""}]},
         "definitions: each of 'topic_permissions' needs a string 'exchange'"),
        ({"permissions": [{"user": "nobody", "vhost": "/", "configure": ".*",
                           "write": ".*", "read": ".*"}]}, "no such user 'nobody'"),
        ({"queues": [{"name": "q", "vhost": "nowhere"}]}, "no such vhost 'nowhere'"),
        ({"queues": [{"name": "q", "vhost": "/", "arguments": {"x-max-length": "a"}}]},
         "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'q' in vhost '/': "
         '"expected integer, got longstr"'),
        ({"bindings": [{"source": "missing", "vhost": "/", "destination": "q",
                        "destination_type": "queue", "routing_key": ""}]},
         "definitions: no exchange 'missing' in vhost '/'"),
        ({"parameters": [{"vhost": "/", "component": "vhost-limits", "name": "limits",
                          "value": {"max-foo": 1}}]}, "unrecognised vhost limits: max-foo"),
    ],
)
def test_import_refuses_what_it_cannot_load(definitions: Any, error: str) -> None:
    async def run() -> None:
        async with Broker(port=0) as broker:
            with pytest.raises(AdminError) as refused:
                Admin(broker).import_definitions(definitions)
            assert str(refused.value) == error

    asyncio.run(run())


def test_import_keeps_existing_queues_and_logs_users_in() -> None:
    sha512 = "rabbit_password_hashing_sha512"

    async def run() -> None:
        async with Broker(port=0) as broker:
            admin = Admin(broker)
            broker.vhosts["/"].declare_queue("q", arguments={"x-max-length": 1})
            salt = b"salt"
            digest = hashlib.sha512(salt + b"pw").digest()
            admin.import_definitions({
                "users": [
                    {"name": "bob", "password_hash": base64.b64encode(salt + digest).decode(),
                     "hashing_algorithm": sha512, "tags": "a,b"},
                    {"name": "carol", "password": "clear"},
                ],
                "queues": [{"name": "q", "vhost": "/", "arguments": {"x-max-length": 9}}],
            })
            assert broker.vhosts["/"].queues["q"].arguments == {"x-max-length": 1}
            assert broker.auth.authenticate("bob", "pw") is not None
            assert broker.auth.authenticate("carol", "clear") is not None
            users = {u["name"]: u for u in admin.export_definitions()["users"]}
            assert (users["bob"]["hashing_algorithm"], users["bob"]["tags"]) == (sha512, ["a", "b"])

    asyncio.run(run())
