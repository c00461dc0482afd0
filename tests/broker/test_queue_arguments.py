"""Queue arguments and what they do: message TTL, queue expiry, max length, dead lettering,
priorities, single active consumer."""

from __future__ import annotations

import pytest
from pika.exceptions import ChannelClosedByBroker
from pika.spec import BasicProperties

from .conftest import Connect
from .pika_helpers import _bodies, _count, _refused, _wait_until

pytestmark = pytest.mark.timeout(60)


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
