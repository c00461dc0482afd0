"""Policies and operator policies: the same steps on RabbitMQ (policies set through its
HTTP API) and on kiltmq (through its admin interface), each in a vhost of its own; what a
client then sees (queue depths, which messages are left, where dead letters go, which
publishes are refused) must be the same. Counts are read after publisher confirms."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest

from kiltmq.broker import Broker

from .policy_admin import KiltHost, PolicyHost, RabbitHost, rabbitmq_api_available

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(120)]

Steps = Callable[[PolicyHost, pika.adapters.blocking_connection.BlockingChannel], Any]


@pytest.fixture
def hosts(rabbitmq_url: str, embedded_broker: Broker) -> Iterator[tuple[PolicyHost, PolicyHost]]:
    rabbitmq_api_available()
    rabbit = RabbitHost(rabbitmq_url)
    kilt = KiltHost(embedded_broker)
    try:
        yield rabbit, kilt
    finally:
        rabbit.close()
        kilt.close()


def run_on(host: PolicyHost, steps: Steps) -> Any:
    params = pika.URLParameters(host.url)
    params.socket_timeout = 10
    params.blocked_connection_timeout = 10
    conn = pika.BlockingConnection(params)
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        return steps(host, channel)
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def same_on_both(hosts: tuple[PolicyHost, PolicyHost], steps: Steps) -> Any:
    rabbit, kilt = hosts
    expected = run_on(rabbit, steps)
    assert run_on(kilt, steps) == expected
    return expected


def publish(channel: Any, queue: str, *bodies: str, exchange: str = "") -> list[str]:
    """Publish with confirms: "ack" or "nack" for each."""
    outcomes = []
    for body in bodies:
        try:
            channel.basic_publish(exchange, queue, body.encode())
            outcomes.append("ack")
        except pika.exceptions.NackError:
            outcomes.append("nack")
    return outcomes


def count(channel: Any, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def drain(channel: Any, queue: str) -> list[str]:
    bodies: list[str] = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body.decode())


def dead_letters(channel: Any, queue: str) -> list[tuple[str, str, str, str]]:
    """(body, routing key, x-death queue, reason) of each message in ``queue``."""
    found: list[tuple[str, str, str, str]] = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return found
        death = props.headers["x-death"][0]
        found.append((body.decode(), method.routing_key, death["queue"], death["reason"]))


def test_max_length_policy_trims_an_existing_queue_and_goes_with_the_policy(hosts: Any) -> None:
    def steps(host: PolicyHost, ch: Any) -> Any:
        ch.queue_declare("jobs")
        publish(ch, "jobs", *(f"m{i}" for i in range(10)))
        host.set_policy("cap", "^jobs$", {"max-length": 3})
        trimmed = count(ch, "jobs")
        publish(ch, "jobs", "n1", "n2")
        after = count(ch, "jobs")
        host.clear_policy("cap")
        publish(ch, "jobs", "o1", "o2")
        return trimmed, after, drain(ch, "jobs")

    assert same_on_both(hosts, steps) == (3, 3, ["m9", "n1", "n2", "o1", "o2"])


def test_policy_priority_and_apply_to(hosts: Any) -> None:
    def steps(host: PolicyHost, ch: Any) -> Any:
        host.set_policy("low", "^p", {"max-length": 1}, priority=1)
        host.set_policy("high", "^p\\.", {"max-length": 2}, priority=5)
        host.set_policy("exchanges-only", "^p", {"max-length": 0}, priority=9,
                        apply_to="exchanges")
        for queue in ("p.one", "pone"):
            ch.queue_declare(queue)
            publish(ch, queue, "a", "b", "c")
        return count(ch, "p.one"), count(ch, "pone")

    assert same_on_both(hosts, steps) == (2, 1)


def test_x_arguments_against_policy(hosts: Any) -> None:
    """Limits: the lower of argument and policy; dead-letter exchange and overflow: the
    argument; a key only the policy has comes from the policy."""

    def steps(host: PolicyHost, ch: Any) -> Any:
        for exchange in ("dlx-arg", "dlx-policy"):
            ch.exchange_declare(exchange, "fanout")
            ch.queue_declare(exchange + "-q")
            ch.queue_bind(exchange + "-q", exchange)
        host.set_policy("limits", "^w", {
            "max-length": 2, "dead-letter-exchange": "dlx-policy",
            "dead-letter-routing-key": "from-policy", "overflow": "drop-head",
        })
        ch.queue_declare("w.arg-higher", arguments={"x-max-length": 5})
        ch.queue_declare("w.arg-lower", arguments={
            "x-max-length": 1, "x-dead-letter-exchange": "dlx-arg",
        })
        ch.queue_declare("w.reject", arguments={"x-overflow": "reject-publish"})
        ch.queue_declare("w.bytes", arguments={"x-max-length-bytes": 100})
        host.set_policy("bytes", "^w\\.bytes$", {"max-length-bytes": 14}, priority=1)
        outcomes = {}
        for queue in ("w.arg-higher", "w.arg-lower", "w.reject", "w.bytes"):
            outcomes[queue] = publish(ch, queue, f"{queue}-1", f"{queue}-2", f"{queue}-3")
        depths = {q: count(ch, q) for q in outcomes}
        return (
            outcomes, depths,
            dead_letters(ch, "dlx-arg-q"), dead_letters(ch, "dlx-policy-q"),
        )

    outcomes, depths, by_arg, by_policy = same_on_both(hosts, steps)
    assert depths == {"w.arg-higher": 2, "w.arg-lower": 1, "w.reject": 2, "w.bytes": 1}
    assert outcomes["w.reject"] == ["ack", "ack", "nack"]
    assert by_arg == [
        ("w.arg-lower-1", "from-policy", "w.arg-lower", "maxlen"),
        ("w.arg-lower-2", "from-policy", "w.arg-lower", "maxlen"),
    ]
    assert by_policy == [("w.arg-higher-1", "from-policy", "w.arg-higher", "maxlen")]


def test_message_ttl_policy_and_dead_lettering(hosts: Any) -> None:
    """A TTL from a policy counts for messages enqueued after it; expired ones go to the
    policy's dead-letter exchange."""

    def steps(host: PolicyHost, ch: Any) -> Any:
        ch.exchange_declare("expired", "fanout")
        ch.queue_declare("expired-q")
        ch.queue_bind("expired-q", "expired")
        ch.queue_declare("t.fresh")
        ch.queue_declare("t.old")
        publish(ch, "t.old", "before-1", "before-2")
        host.set_policy("ttl", "^t\\.", {"message-ttl": 0, "dead-letter-exchange": "expired"})
        publish(ch, "t.fresh", "fresh")
        fresh = count(ch, "t.fresh")
        publish(ch, "t.old", "after")
        old = count(ch, "t.old")
        left = drain(ch, "t.old")
        return fresh, old, left, dead_letters(ch, "expired-q")

    fresh, _old, left, dead = same_on_both(hosts, steps)
    assert fresh == 0
    assert left == ["before-1", "before-2"]
    assert ("fresh", "t.fresh", "t.fresh", "expired") in dead


def test_operator_policy_lower_limit_wins(hosts: Any) -> None:
    def steps(host: PolicyHost, ch: Any) -> Any:
        host.set_policy("user", "^o", {"max-length": 5})
        host.set_policy("operator", "^o", {"max-length": 3}, operator=True)
        ch.queue_declare("o.one")
        publish(ch, "o.one", *(str(i) for i in range(10)))
        first = count(ch, "o.one")
        host.set_policy("user", "^o", {"max-length": 2})
        second = count(ch, "o.one")
        host.clear_policy("user")
        publish(ch, "o.one", "x", "y")
        third = count(ch, "o.one")
        ch.queue_declare("o.arg", arguments={"x-max-length": 1})
        publish(ch, "o.arg", "1", "2")
        return first, second, third, count(ch, "o.arg")

    assert same_on_both(hosts, steps) == (3, 2, 3, 1)


def test_alternate_exchange_by_policy(hosts: Any) -> None:
    def steps(host: PolicyHost, ch: Any) -> Any:
        for name in ("ae-policy", "ae-arg"):
            ch.exchange_declare(name, "fanout")
            ch.queue_declare(name + "-q")
            ch.queue_bind(name + "-q", name)
        host.set_policy("ae", "^(main\\..*|amq\\.direct|)$", {"alternate-exchange": "ae-policy"},
                        apply_to="exchanges", priority=1)
        ch.exchange_declare("main.plain", "direct")
        ch.exchange_declare("main.own", "direct", arguments={"alternate-exchange": "ae-arg"})
        publish(ch, "nowhere", "u1", exchange="main.plain")
        publish(ch, "nowhere", "u2", exchange="main.own")
        publish(ch, "nowhere", "u3", exchange="amq.direct")
        publish(ch, "no-such-queue", "u4")  # the default exchange uses no alternate
        host.clear_policy("ae")
        publish(ch, "nowhere", "u5", exchange="main.plain")
        return drain(ch, "ae-policy-q"), drain(ch, "ae-arg-q")

    assert same_on_both(hosts, steps) == (["u1", "u3"], ["u2"])


def test_expires_by_policy(hosts: Any) -> None:
    """An unused queue goes once a policy's ``expires`` passes; one with a consumer
    stays (polled: the expiry is 1 ms, the wait up to 10 s)."""

    def exists(host: PolicyHost, name: str) -> bool:
        def look(_host: PolicyHost, ch: Any) -> bool:
            try:
                ch.queue_declare(name, passive=True)
            except pika.exceptions.ChannelClosedByBroker as closed:
                assert closed.reply_code == 404
                return False
            return True

        return bool(run_on(host, look))

    def steps(host: PolicyHost, ch: Any) -> Any:
        ch.queue_declare("e.idle")
        ch.queue_declare("e.long", arguments={"x-expires": 3600000})  # the lower wins
        ch.queue_declare("e.used")
        ch.basic_consume("e.used", lambda *_: None)
        host.set_policy("expiry", "^e\\.", {"expires": 1})
        deadline = time.monotonic() + 10
        while (exists(host, "e.idle") or exists(host, "e.long")) and time.monotonic() < deadline:
            time.sleep(0.01)
        return exists(host, "e.idle"), exists(host, "e.long"), count(ch, "e.used")

    assert same_on_both(hosts, steps) == (False, False, 0)


def test_delivery_limit_policy_on_quorum_queues(hosts: Any) -> None:
    """delivery-limit counts for quorum queues (the lower of policy and argument wins);
    classic queues ignore it."""

    def steps(host: PolicyHost, ch: Any) -> Any:
        host.set_policy("limit", "^dl", {"delivery-limit": 1})
        quorum = {"x-queue-type": "quorum"}
        ch.queue_declare("dl.quorum", durable=True, arguments=quorum)
        ch.queue_declare("dl.lower-arg", durable=True,
                         arguments={**quorum, "x-delivery-limit": 0})
        ch.queue_declare("dl.classic")
        seen = {}
        for queue in ("dl.quorum", "dl.lower-arg", "dl.classic"):
            publish(ch, queue, "m")
            counts = []
            for _ in range(4):
                method, props, _body = ch.basic_get(queue)
                if method is None:
                    break
                counts.append((props.headers or {}).get("x-delivery-count"))
                ch.basic_reject(method.delivery_tag, requeue=True)
            seen[queue] = counts
        return seen

    assert same_on_both(hosts, steps) == {
        "dl.quorum": [0, 1],
        "dl.lower-arg": [0],
        "dl.classic": [None, None, None, None],
    }


def test_policies_apply_only_to_queue_types_that_support_them(hosts: Any) -> None:
    """A policy with a key the queue's type does not support does not apply to it at
    all (the next matching one may); an expires policy leaves a stream alone."""

    def steps(host: PolicyHost, ch: Any) -> Any:
        queues = {
            "t.classic": {},
            "t.quorum": {"x-queue-type": "quorum"},
            "t.stream": {"x-queue-type": "stream"},
        }
        for queue, arguments in queues.items():
            ch.queue_declare(queue, durable=True, arguments=arguments)
        host.set_policy("age", "^t\\.", {"max-age": "1h"}, priority=5)
        host.set_policy("length", "^t\\.", {"max-length": 2, "expires": 3600000}, priority=3)
        host.set_policy("limit", "^t\\.", {"delivery-limit": 4}, priority=1)
        host.set_policy("bytes", "^t\\.", {"max-length-bytes": 100000}, operator=True)
        host.set_policy("ttl", "^t\\.s", {"message-ttl": 60000}, priority=1, operator=True)
        seen = {queue: host.queue_policy(queue) for queue in queues}
        for queue in ("t.classic", "t.quorum"):
            publish(ch, queue, "a", "b", "c", "d")
        counts = [count(ch, queue) for queue in ("t.classic", "t.quorum")]
        host.clear_policy("age")
        host.clear_policy("length")
        after = {queue: host.queue_policy(queue) for queue in queues}
        host.set_policy("gone", "^t\\.stream$", {"expires": 1}, priority=9)
        time.sleep(0.5)
        stream = run_on(host, lambda _h, c: c.queue_declare("t.stream", passive=True,
                                                            durable=True).method.queue)
        return seen, counts, after, stream

    seen, counts, after, stream = same_on_both(hosts, steps)
    assert seen["t.classic"]["policy"] == "length"
    assert seen["t.quorum"]["policy"] == "length"
    assert seen["t.stream"]["policy"] == "age"
    assert seen["t.stream"]["effective_policy_definition"] == {
        "max-age": "1h", "max-length-bytes": 100000,
    }
    assert counts == [2, 2]
    assert after["t.classic"]["policy"] is None
    assert after["t.quorum"]["policy"] == "limit"
    assert stream == "t.stream"
