"""Exchanges, queues and bindings: declare/delete rules, routing, queue arguments."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker
from pika.spec import BasicProperties

from .conftest import Connect

pytestmark = pytest.mark.timeout(60)


def _count(channel: BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def _bodies(channel: BlockingChannel, queue: str) -> list[bytes]:
    out: list[bytes] = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def _refused(
    channel: BlockingChannel, call: Callable[..., object], *args: object, **kwargs: object
) -> tuple[int, str]:
    with pytest.raises((ChannelClosedByBroker, ConnectionClosedByBroker)) as info:
        call(*args, **kwargs)
    return int(info.value.reply_code), str(info.value.reply_text)


def _wait_until(predicate: Callable[[], object], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


# -- exchanges ----------------------------------------------------------------------------


def test_standard_exchanges_exist(connect: Connect) -> None:
    ch = connect().channel()
    for name in ("amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"):
        ch.exchange_declare(name, passive=True)
    ch.exchange_declare("amq.direct", "direct", durable=True)  # equivalent redeclare is fine


def test_exchange_declare_rules(connect: Connect) -> None:
    conn = connect()
    ch = conn.channel()
    ch.exchange_declare("x1", "direct")
    ch.exchange_declare("x1", "direct")
    assert _refused(ch, ch.exchange_declare, "x1", "fanout") == (
        406,
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x1' in vhost '/': "
        "received 'fanout' but current is 'direct'",
    )
    ch = conn.channel()
    assert _refused(ch, ch.exchange_declare, "x1", "direct", durable=True) == (
        406,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'x1' in vhost '/': "
        "received 'true' but current is 'false'",
    )
    ch = conn.channel()
    assert _refused(ch, ch.exchange_declare, "missing", passive=True) == (
        404, "NOT_FOUND - no exchange 'missing' in vhost '/'"
    )
    ch = conn.channel()
    assert _refused(ch, ch.exchange_declare, "amq.mine", "direct") == (
        403, "ACCESS_REFUSED - exchange name 'amq.mine' contains reserved prefix 'amq.*'"
    )
    ch = conn.channel()
    assert _refused(ch, ch.exchange_declare, "", "direct") == (
        403, "ACCESS_REFUSED - operation not permitted on the default exchange"
    )
    ch = conn.channel()
    assert _refused(ch, ch.exchange_declare, "x2", "nonsense") == (
        503, "COMMAND_INVALID - unknown exchange type 'nonsense'"
    )


def test_exchange_delete_rules(connect: Connect) -> None:
    conn = connect()
    ch = conn.channel()
    ch.exchange_delete("never-declared")  # idempotent
    ch.exchange_declare("busy", "fanout")
    ch.queue_declare("busy-q")
    ch.queue_bind("busy-q", "busy")
    assert _refused(ch, ch.exchange_delete, "busy", if_unused=True) == (
        406, "PRECONDITION_FAILED - exchange 'busy' in vhost '/' in use"
    )
    ch = conn.channel()
    ch.exchange_delete("busy")
    ch.basic_publish("busy", "", b"x")
    assert _refused(ch, ch.queue_declare, "busy-q", passive=True)[0] == 404
    ch = conn.channel()
    assert _refused(ch, ch.exchange_delete, "amq.direct") == (
        403, "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"
    )
    ch = conn.channel()
    assert _refused(ch, ch.exchange_delete, "")[0] == 403


def test_internal_exchange_refuses_publishes(connect: Connect) -> None:
    ch = connect().channel()
    ch.exchange_declare("inside", "fanout", internal=True)
    ch.exchange_declare("front", "fanout")
    ch.exchange_bind("inside", "front")
    ch.queue_declare("behind")
    ch.queue_bind("behind", "inside")
    ch.basic_publish("front", "", b"through the front")
    assert _bodies(ch, "behind") == [b"through the front"]
    ch.basic_publish("inside", "", b"x")
    assert _refused(ch, ch.queue_declare, "behind", passive=True) == (
        403, "ACCESS_REFUSED - cannot publish to internal exchange 'inside' in vhost '/'"
    )


def test_auto_delete_exchange_goes_with_its_last_binding(connect: Connect) -> None:
    conn = connect()
    ch = conn.channel()
    ch.exchange_declare("ad-x", "direct", auto_delete=True)
    ch.queue_declare("ad-q1")
    ch.queue_declare("ad-q2")
    ch.queue_bind("ad-q1", "ad-x", "a")
    ch.queue_bind("ad-q2", "ad-x", "b")
    ch.queue_unbind("ad-q1", "ad-x", "a")
    ch.exchange_declare("ad-x", passive=True)
    ch.queue_delete("ad-q2")  # the last binding goes with the queue
    assert _refused(ch, ch.exchange_declare, "ad-x", passive=True)[0] == 404


def test_exchange_to_exchange_bindings_without_loops_or_duplicates(connect: Connect) -> None:
    ch = connect().channel()
    ch.exchange_declare("e-a", "fanout")
    ch.exchange_declare("e-b", "fanout")
    ch.exchange_declare("e-c", "topic")
    ch.exchange_bind("e-b", "e-a")
    ch.exchange_bind("e-a", "e-b")  # a loop
    ch.exchange_bind("e-c", "e-a")
    ch.queue_declare("e-q")
    ch.queue_bind("e-q", "e-a")
    ch.queue_bind("e-q", "e-b")
    ch.queue_bind("e-q", "e-c", "#")
    ch.basic_publish("e-a", "k", b"once")
    ch.basic_publish("e-b", "k", b"twice?")
    assert _bodies(ch, "e-q") == [b"once", b"twice?"]
    ch.exchange_unbind("e-c", "e-a")
    ch.exchange_unbind("e-c", "e-a")  # unbinding what is not bound is fine
    assert _refused(ch, ch.exchange_bind, "e-a", "missing") == (
        404, "NOT_FOUND - no exchange 'missing' in vhost '/'"
    )


def test_headers_exchange(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("h-all")
    ch.queue_declare("h-any")
    ch.queue_declare("h-present")
    ch.queue_bind("h-all", "amq.headers", arguments={"x-match": "all", "a": 1, "b": "two"})
    ch.queue_bind("h-any", "amq.headers", arguments={"x-match": "any", "a": 1, "b": "two"})
    ch.queue_bind("h-present", "amq.match", arguments={"flag": None})
    publish = [
        ({"a": 1, "b": "two", "c": 3}, b"both"),
        ({"a": 1}, b"only a"),
        ({"a": 2, "b": "nope"}, b"neither"),
        ({"flag": "anything"}, b"flagged"),
    ]
    for headers, body in publish:
        ch.basic_publish("amq.headers", "", body, BasicProperties(headers=headers))
        ch.basic_publish("amq.match", "", body, BasicProperties(headers=headers))
    ch.basic_publish("amq.headers", "", b"no headers at all")
    assert _bodies(ch, "h-all") == [b"both"]
    assert _bodies(ch, "h-any") == [b"both", b"only a"]
    assert _bodies(ch, "h-present") == [b"flagged"]
    assert _refused(
        ch, ch.queue_bind, "h-all", "amq.headers", arguments={"x-match": "some"}
    )[0] == 406


def test_alternate_exchange_takes_unroutable_messages(connect: Connect) -> None:
    ch = connect().channel()
    ch.exchange_declare("ae", "fanout")
    ch.queue_declare("ae-q")
    ch.queue_bind("ae-q", "ae")
    ch.exchange_declare("main-x", "direct", arguments={"alternate-exchange": "ae"})
    ch.queue_declare("main-q")
    ch.queue_bind("main-q", "main-x", "known")
    ch.basic_publish("main-x", "known", b"routed")
    ch.basic_publish("main-x", "unknown", b"to the alternate")
    assert _bodies(ch, "main-q") == [b"routed"]
    assert _bodies(ch, "ae-q") == [b"to the alternate"]


# -- queues ---------------------------------------------------------------------------------


def test_queue_declare_rules(connect: Connect) -> None:
    conn = connect()
    ch = conn.channel()
    ok = ch.queue_declare("qd", durable=True)
    assert (ok.method.queue, ok.method.message_count, ok.method.consumer_count) == ("qd", 0, 0)
    assert _refused(ch, ch.queue_declare, "qd") == (
        406,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'qd' in vhost '/': "
        "received 'false' but current is 'true'",
    )
    ch = conn.channel()
    ch.queue_declare("qd-ttl", arguments={"x-message-ttl": 1000})
    assert _refused(ch, ch.queue_declare, "qd-ttl", arguments={"x-message-ttl": 2000}) == (
        406,
        "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'qd-ttl' in vhost "
        "'/': received '2000' but current is '1000'",
    )
    ch = conn.channel()
    assert _refused(ch, ch.queue_declare, "qd-ttl") == (
        406,
        "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'qd-ttl' in vhost "
        "'/': received none but current is the value '1000' of type 'signedint'",
    )
    ch = conn.channel()
    assert _refused(ch, ch.queue_declare, "amq.q") == (
        403, "ACCESS_REFUSED - queue name 'amq.q' contains reserved prefix 'amq.*'"
    )
    ch = conn.channel()
    assert _refused(ch, ch.queue_declare, "bad-ttl", arguments={"x-message-ttl": -1}) == (
        406,
        "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'bad-ttl' in vhost '/': "
        "{value_negative,-1}",
    )
    ch = conn.channel()
    assert _refused(ch, ch.queue_declare, "nope", passive=True) == (
        404, "NOT_FOUND - no queue 'nope' in vhost '/'"
    )


def test_bind_rules(connect: Connect) -> None:
    conn = connect()
    ch = conn.channel()
    ch.queue_declare("b-q")
    assert _refused(ch, ch.queue_bind, "b-q", "missing-x") == (
        404, "NOT_FOUND - no exchange 'missing-x' in vhost '/'"
    )
    ch = conn.channel()
    assert _refused(ch, ch.queue_bind, "missing-q", "amq.direct") == (
        404, "NOT_FOUND - no queue 'missing-q' in vhost '/'"
    )
    ch = conn.channel()
    assert _refused(ch, ch.queue_bind, "b-q", "") == (
        403, "ACCESS_REFUSED - operation not permitted on the default exchange"
    )
    ch = conn.channel()
    ch.queue_unbind("missing-q", "missing-x", "rk")  # unbinding is idempotent
    ch.queue_bind("b-q", "amq.direct", "rk")
    ch.queue_bind("b-q", "amq.direct", "rk")  # a duplicate binding is one binding
    ch.basic_publish("amq.direct", "rk", b"one copy")
    assert _bodies(ch, "b-q") == [b"one copy"]
    ch.queue_unbind("b-q", "amq.direct", "rk")
    ch.basic_publish("amq.direct", "rk", b"unrouted")
    assert _bodies(ch, "b-q") == []


def test_purge_and_delete(connect: Connect) -> None:
    conn = connect()
    ch = conn.channel()
    ch.queue_declare("pd")
    for i in range(3):
        ch.basic_publish("", "pd", str(i).encode())
    assert ch.queue_purge("pd").method.message_count == 3
    ch.basic_publish("", "pd", b"x")
    assert _refused(ch, ch.queue_delete, "pd", if_empty=True) == (
        406, "PRECONDITION_FAILED - queue 'pd' in vhost '/' not empty"
    )
    ch = conn.channel()
    ch.basic_consume("pd", lambda *_: None)
    other = connect().channel()
    assert _refused(other, other.queue_delete, "pd", if_unused=True) == (
        406, "PRECONDITION_FAILED - queue 'pd' in vhost '/' in use"
    )
    assert ch.queue_delete("pd").method.message_count == 0  # delivered to the consumer
    assert ch.queue_delete("pd").method.message_count == 0  # gone: still delete-ok
    assert _refused(ch, ch.queue_purge, "pd")[0] == 404


def test_exclusive_queue_is_locked_to_its_connection(connect: Connect) -> None:
    owner = connect()
    ch = owner.channel()
    ch.queue_declare("mine", exclusive=True)
    ch.basic_publish("", "mine", b"x")
    stranger = connect()
    text = (
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'mine' in vhost "
        "'/'. It could be originally declared on another connection or the exclusive "
        "property value does not match that of the original declaration."
    )
    operations = [
        lambda c: c.queue_declare("mine", passive=True),
        lambda c: c.queue_declare("mine", exclusive=True),
        lambda c: c.queue_declare("mine"),
        lambda c: c.basic_consume("mine", lambda *_: None),
        lambda c: c.basic_get("mine"),
        lambda c: c.queue_purge("mine"),
        lambda c: c.queue_delete("mine"),
        lambda c: c.queue_bind("mine", "amq.fanout"),
    ]
    for operation in operations:
        sch = stranger.channel()
        assert _refused(sch, operation, sch) == (405, text)
    # the owner uses it freely, and it goes when the owner's connection closes
    assert _bodies(ch, "mine") == [b"x"]
    owner.close()
    sch = stranger.channel()
    assert _refused(sch, sch.queue_declare, "mine", passive=True)[0] == 404


def test_auto_delete_queue_goes_with_its_last_consumer(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("ad", auto_delete=True)
    ch.basic_publish("", "ad", b"x")
    assert ch.basic_get("ad", auto_ack=True)[0] is not None  # basic.get is no consumer
    ch.queue_declare("ad", passive=True, auto_delete=True)
    first = ch.basic_consume("ad", lambda *_: None)
    second = ch.basic_consume("ad", lambda *_: None)
    ch.basic_cancel(first)
    ch.queue_declare("ad", passive=True)
    ch.basic_cancel(second)
    assert _refused(ch, ch.queue_declare, "ad", passive=True)[0] == 404


def test_server_named_queue_and_last_queue_shortcut(connect: Connect) -> None:
    ch = connect().channel()
    name = ch.queue_declare("", exclusive=True).method.queue
    assert name.startswith("amq.gen-") and len(name) == 30
    ch.basic_publish("", name, b"x")
    assert ch.queue_purge("").method.message_count == 1  # "" is the last declared queue


def test_message_ttl_expires_messages(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("ttl", arguments={"x-message-ttl": 50})
    ch.basic_publish("", "ttl", b"short-lived")
    ch.queue_declare("per-msg")
    ch.basic_publish("", "per-msg", b"gone", BasicProperties(expiration="50"))
    ch.basic_publish("", "per-msg", b"stays", BasicProperties(expiration="600000"))
    _wait_until(lambda: _count(ch, "ttl") == 0)
    _wait_until(lambda: _count(ch, "per-msg") == 1)
    assert _bodies(ch, "per-msg") == [b"stays"]


def test_zero_ttl_delivers_only_to_a_waiting_consumer(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("ttl0", arguments={"x-message-ttl": 0})
    ch.basic_publish("", "ttl0", b"nobody listening")
    assert _count(ch, "ttl0") == 0
    got: list[bytes] = []
    ch.basic_consume("ttl0", lambda _c, _m, _p, body: got.append(body), auto_ack=True)
    ch.basic_publish("", "ttl0", b"taken at once")
    _wait_until(lambda: (ch.connection.process_data_events(time_limit=0.05), got)[1])
    assert got == [b"taken at once"]


def test_queue_expires_when_unused(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("expiring", arguments={"x-expires": 100})
    _wait_until(lambda: _gone(connect))


def _gone(connect: Connect) -> bool:
    ch = connect().channel()
    try:
        ch.queue_declare("expiring", passive=True)
    except ChannelClosedByBroker as exc:
        return bool(exc.reply_code == 404)
    return False


def test_max_length_drops_from_the_head(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("short", arguments={"x-max-length": 2})
    for i in range(5):
        ch.basic_publish("", "short", str(i).encode())
    assert _bodies(ch, "short") == [b"3", b"4"]


def test_max_length_reject_publish_nacks(connect: Connect) -> None:
    from pika.exceptions import NackError

    ch = connect().channel()
    ch.queue_declare("full", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    ch.basic_publish("", "full", b"fits")
    with pytest.raises(NackError):
        ch.basic_publish("", "full", b"does not fit")
    assert _bodies(ch, "full") == [b"fits"]


def test_dead_lettering(connect: Connect) -> None:
    ch = connect().channel()
    ch.exchange_declare("dlx", "direct")
    ch.queue_declare("dead")
    ch.queue_bind("dead", "dlx", "dead-key")
    ch.queue_declare(
        "work-dl",
        arguments={
            "x-dead-letter-exchange": "dlx",
            "x-dead-letter-routing-key": "dead-key",
            "x-message-ttl": 600000,
        },
    )
    ch.basic_publish("", "work-dl", b"rejected one", BasicProperties(headers={"k": "v"}))
    method, _p, _b = ch.basic_get("work-dl")
    assert method is not None
    ch.basic_reject(method.delivery_tag, requeue=False)
    method, props, body = ch.basic_get("dead", auto_ack=True)
    assert method is not None and body == b"rejected one"
    assert method.routing_key == "dead-key" and method.exchange == "dlx"
    assert props.headers["k"] == "v"
    death = props.headers["x-death"][0]
    assert death["reason"] == "rejected"
    assert death["queue"] == "work-dl"
    assert death["count"] == 1
    assert death["routing-keys"] == ["work-dl"]
    assert props.headers["x-first-death-reason"] == "rejected"


def test_expired_messages_are_dead_lettered(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("dl-target")
    ch.queue_declare(
        "dl-source",
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dl-target"},
    )
    ch.basic_publish("", "dl-source", b"late", BasicProperties(expiration="20"))
    _wait_until(lambda: _count(ch, "dl-target") == 1)
    method, props, body = ch.basic_get("dl-target", auto_ack=True)
    assert method is not None and body == b"late"
    assert props.expiration is None
    assert props.headers["x-death"][0]["reason"] == "expired"
    assert props.headers["x-death"][0]["original-expiration"] == "20"


def test_priority_queue(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("prio", arguments={"x-max-priority": 5})
    for body, priority in (("low", None), ("p5a", 5), ("p9", 9), ("p1", 1), ("p5b", 5)):
        ch.basic_publish("", "prio", body.encode(), BasicProperties(priority=priority))
    method, _props, _body = ch.basic_get("prio")  # p5a, then requeued to its place
    assert method is not None
    ch.basic_nack(method.delivery_tag, requeue=True)
    assert _bodies(ch, "prio") == [b"p5a", b"p9", b"p5b", b"p1", b"low"]
    assert _refused(ch, ch.queue_declare, "prio2", arguments={"x-max-priority": 300}) == (
        406,
        "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'prio2' in vhost '/': "
        "{max_value_exceeded,300}",
    )


@pytest.mark.parametrize(
    ("expiration", "reason"),
    [("soon", "no_integer"), ("10s", '{leftover_string,"s"}'), ("-1", "{value_negative,-1}")],
)
def test_invalid_expiration_is_refused_at_publish(
    connect: Connect, expiration: str, reason: str
) -> None:
    ch = connect().channel()
    ch.basic_publish("amq.direct", "x", b"x", BasicProperties(expiration=expiration))
    assert _refused(ch, ch.queue_declare, "", exclusive=True) == (
        406, f"PRECONDITION_FAILED - invalid expiration '{expiration}': {reason}"
    )


def test_single_active_consumer(connect: Connect) -> None:
    ch = connect().channel()
    ch.queue_declare("sac", arguments={"x-single-active-consumer": True})
    got: dict[str, list[bytes]] = {"first": [], "second": []}
    for tag in got:
        ch.basic_consume(
            "sac", lambda _c, _m, _p, body, tag=tag: got[tag].append(body), auto_ack=True,
            consumer_tag=tag,
        )
    for i in range(4):
        ch.basic_publish("", "sac", str(i).encode())
    _wait_until(
        lambda: (
            ch.connection.process_data_events(time_limit=0.05),
            len(got["first"]) + len(got["second"]) == 4,
        )[1]
    )
    assert got == {"first": [b"0", b"1", b"2", b"3"], "second": []}
    assert ch.queue_declare("sac", passive=True).method.consumer_count == 2
    ch.basic_cancel("first")
    ch.basic_publish("", "sac", b"4")
    _wait_until(lambda: (ch.connection.process_data_events(time_limit=0.05), got["second"])[1])
    assert got["second"] == [b"4"]


def test_reject_publish_dlx_dead_letters_the_refused_message(connect: Connect) -> None:
    from pika.exceptions import NackError

    ch = connect().channel()
    ch.queue_declare("overflowed")
    ch.queue_declare(
        "bounded",
        arguments={
            "x-max-length": 1,
            "x-overflow": "reject-publish-dlx",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "overflowed",
        },
    )
    ch.confirm_delivery()
    ch.basic_publish("", "bounded", b"first")
    with pytest.raises(NackError):
        ch.basic_publish("", "bounded", b"second")
    assert _bodies(ch, "bounded") == [b"first"]
    method, props, body = ch.basic_get("overflowed", auto_ack=True)
    assert method is not None and body == b"second"
    assert props.headers["x-death"][0]["reason"] == "maxlen"
