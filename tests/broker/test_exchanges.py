"""Exchanges: declare/delete rules, internal and auto-delete exchanges, exchange-to-exchange
bindings, headers routing, alternate exchanges."""

from __future__ import annotations

import pytest
from pika.spec import BasicProperties

from .conftest import Connect
from .pika_helpers import _bodies, _refused

pytestmark = pytest.mark.timeout(60)


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
