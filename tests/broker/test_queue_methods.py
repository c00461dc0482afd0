"""queue.* over the wire: declare, bind, purge and delete rules; exclusive, auto-delete and
server-named queues."""

from __future__ import annotations

import pytest

from .conftest import Connect
from .pika_helpers import _bodies, _refused

pytestmark = pytest.mark.timeout(60)


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
