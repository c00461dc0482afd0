"""Users, password hashes and per-vhost permissions."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterator

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, ProbableAuthenticationError

from kiltmq.broker import Broker, User, check_password, hash_password
from kiltmq.broker.auth import AuthDB, Permission, TopicPermission

pytestmark = pytest.mark.timeout(60)


def test_password_hash_is_rabbitmq_compatible() -> None:
    salt = b"\x90\x8d\xc6\x0a"
    hashed = hash_password("test12", salt)
    raw = base64.b64decode(hashed)
    assert raw[:4] == salt
    assert raw[4:] == hashlib.sha256(salt + b"test12").digest()
    assert check_password("test12", hashed)
    assert not check_password("test13", hashed)
    assert not check_password("test12", "not base64 !")
    assert hash_password("same") != hash_password("same")  # salted


def test_permission_regexes() -> None:
    perm = Permission(configure="^app\\.", write="", read=".*")
    assert perm.allows("configure", "app.queue")
    assert not perm.allows("configure", "other")
    assert not perm.allows("write", "anything")  # "" allows nothing
    assert perm.allows("read", "x")
    assert Permission(configure="queue").allows("configure", "my-queue-1")  # unanchored


@pytest.fixture
def restricted() -> Iterator[pika.BlockingConnection]:
    broker = Broker(
        port=0,
        users=[User.with_password("app", "s3cret"), User.with_password("guest", "guest")],
        permissions={
            "app": {"/": ("^app\\.", "^(app\\.|amq\\.default$)", "^app\\.")},
            "guest": {"/": (".*", ".*", ".*")},
        },
    )
    broker.start_in_thread()
    url = f"amqp://app:s3cret@127.0.0.1:{broker.port}/"
    conn = pika.BlockingConnection(pika.URLParameters(url))
    yield conn
    if conn.is_open:
        conn.close()
    broker.stop_thread()


def _refused(
    channel: BlockingChannel, call: Callable[..., object], *args: object, **kwargs: object
) -> str:
    with pytest.raises(ChannelClosedByBroker) as info:
        call(*args, **kwargs)
    assert info.value.reply_code == 403
    return str(info.value.reply_text)


def test_permissions_are_checked_on_every_operation(restricted: pika.BlockingConnection) -> None:
    conn = restricted
    ch = conn.channel()
    ch.queue_declare("app.q")
    ch.exchange_declare("app.x", "fanout")
    ch.queue_bind("app.q", "app.x")
    ch.basic_publish("app.x", "", b"allowed")
    ch.basic_publish("", "app.q", b"default exchange allowed as amq.default")
    assert ch.basic_get("app.q", auto_ack=True)[2] == b"allowed"
    assert _refused(ch, ch.queue_declare, "other.q") == (
        "ACCESS_REFUSED - access to queue 'other.q' in vhost '/' refused for user 'app'"
    )
    ch = conn.channel()
    assert "exchange 'other.x'" in _refused(ch, ch.exchange_declare, "other.x", "direct")
    ch = conn.channel()
    assert "exchange 'amq.direct'" in _refused(ch, ch.queue_bind, "app.q", "amq.direct")
    ch = conn.channel()
    ch.basic_publish("amq.fanout", "", b"x")
    assert "exchange 'amq.fanout'" in _refused(ch, ch.queue_declare, "app.q", passive=True)
    ch = conn.channel()
    assert "queue 'app.q'" not in _refused(ch, ch.basic_get, "shared")
    ch = conn.channel()
    assert "queue 'other'" in _refused(ch, ch.queue_delete, "other")
    ch = conn.channel()
    assert "queue 'other'" in _refused(ch, ch.queue_purge, "other")


def test_wrong_password_is_refused() -> None:
    with Broker(port=0) as broker:
        url = broker.url.replace("guest:guest", "guest:nope")
        with pytest.raises(ProbableAuthenticationError) as info:
            pika.BlockingConnection(pika.URLParameters(url))
        assert "ACCESS_REFUSED" in str(info.value)


def test_users_as_mapping_and_url() -> None:
    with Broker(port=0, users={"alice": "p@ss:word"}) as broker:
        assert broker.url.startswith("amqp://alice:p%40ss%3Aword@127.0.0.1:")
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        conn.channel().queue_declare("", exclusive=True)
        conn.close()


def test_topic_permission_regexes() -> None:
    topic = TopicPermission.build("ann", "shop", "amq.topic", "^{username}\\.|^{vhost}$", "")
    assert topic.allows("write", "ann.orders")
    assert topic.allows("write", "shop")
    assert not topic.allows("write", "bob.orders")
    assert not topic.allows("write", "{username}.orders")
    # an empty pattern allows the empty routing key only (RabbitMQ reads it as ^$)
    assert topic.allows("read", "") and not topic.allows("read", "a")
    # a name that makes the expanded pattern invalid: nothing matches
    odd = TopicPermission.build("a(", "/", "x", "^{username}", ".*")
    assert not odd.allows("write", "a(") and odd.allows("read", "anything")
    with pytest.raises(re.error):
        TopicPermission.build("ann", "/", "x", "(", "")

    auth = AuthDB()
    auth.set_topic_permission("ann", "/", "amq.topic", "a", "b")
    auth.set_topic_permission("ann", "/", "events", "c", "d")
    auth.set_topic_permission("ann", "shop", "amq.topic", "e", "f")
    auth.set_topic_permission("bob", "/", "amq.topic", "g", "h")
    auth.clear_topic_permissions("ann", "/", "events")
    assert list(auth.topic_permission("ann", "/") or {}) == ["amq.topic"]
    auth.clear_topic_permissions("ann", "/", "amq.topic")
    assert auth.topic_permission("ann", "/") is None  # none left: nothing to check
    auth.remove_vhost("shop")
    assert auth.topic_permission("ann", "shop") is None
    auth.remove_user("bob")
    assert auth.topic_permissions == {}
