"""Protocol violations, handshake failures and reply codes, driven with the raw client.

RabbitMQ's behaviour is the reference: soft errors close the channel, hard ones the
connection; handshake failures other than a refused login or vhost just close the socket.
"""

from __future__ import annotations

import struct

import pytest

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker, Store
from kiltmq.broker.handshake import is_loopback
from kiltmq.broker.message import Message
from kiltmq.protocol import BasicProperties, spec
from kiltmq.protocol.frames import encode_frame

pytestmark = pytest.mark.timeout(60)


async def _still_works(port: int) -> None:
    """A fresh connection can declare, publish and get."""
    client = await RawClient.connect(port)
    await client.open_channel(1)
    ok = await client.call(1, spec.QueueDeclare("", exclusive=True))
    assert isinstance(ok, spec.QueueDeclareOk)
    client.publish(1, "", ok.queue, b"alive")
    got = await client.call(1, spec.BasicGet(ok.queue, no_ack=True))
    assert isinstance(got, spec.BasicGetOk)
    await client.disconnect()


async def test_unsupported_protocol_header_gets_ours_back(abroker: Broker) -> None:
    client = await RawClient.open(abroker.port)
    client.send_raw(b"AMQP\x01\x01\x00\x0a")
    data = await client.read_bytes(10)
    assert data == b"AMQP\x00\x00\x09\x01"
    assert await client.read_bytes(10) == b""
    await client.disconnect()


async def test_http_request_is_answered_with_the_protocol_header(abroker: Broker) -> None:
    client = await RawClient.open(abroker.port)
    client.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = await client.read_bytes(10)
    assert data == b"AMQP\x00\x00\x09\x01"
    await client.disconnect()
    await _still_works(abroker.port)


async def test_garbage_after_handshake_is_a_frame_error(abroker: Broker) -> None:
    bystander = await RawClient.connect(abroker.port)
    await bystander.open_channel(1)
    client = await RawClient.connect(abroker.port)
    client.send_raw(b"\x01\x02garbage garbage garbage garbage")
    close = await client.method(0)
    assert isinstance(close, spec.ConnectionClose)
    assert close.reply_code == 501
    assert close.reply_text.startswith("FRAME_ERROR - ")
    await client.eof()
    await client.disconnect()
    # the other connection did not notice
    ok = await bystander.call(1, spec.QueueDeclare("", exclusive=True))
    assert isinstance(ok, spec.QueueDeclareOk)
    await bystander.disconnect()
    await _still_works(abroker.port)


@pytest.mark.parametrize(
    "data",
    [
        encode_frame(1, 0, b"\x00"),  # method frame too short
        encode_frame(7, 0, b""),  # unknown frame type
        encode_frame(1, 1, struct.pack(">HH", 50, 10) + b"\xff"),  # truncated queue.declare
        b"\x08\x00\x00\x00\x00\x00\x00\x00",  # heartbeat with a bad frame end
        encode_frame(2, 1, b"\x00\x3c"),  # content header with no method
    ],
)
async def test_malformed_frames_close_the_connection(abroker: Broker, data: bytes) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    client.send_raw(data)
    events = await client.eof()
    closes = [e for e in events if getattr(e, "method", None).__class__ is spec.ConnectionClose]
    assert closes, events
    assert closes[0].method.reply_code in (501, 502, 505)  # type: ignore[attr-defined]
    await client.disconnect()
    await _still_works(abroker.port)


async def test_content_interrupted_by_a_method_reports_the_publish(abroker: Broker) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    client.send_raw_method(1, spec.BasicPublish(routing_key="q"))
    client.send_raw_method(1, spec.BasicQos(prefetch_count=1))
    close = await client.method(0)
    assert isinstance(close, spec.ConnectionClose)
    assert (close.reply_code, close.class_id, close.method_id) == (505, 60, 40)
    await client.disconnect()


async def test_method_on_unopened_channel_is_a_channel_error(abroker: Broker) -> None:
    client = await RawClient.connect(abroker.port)
    client.send_raw_method(5, spec.QueueDeclare("q"))
    close = await client.method(0)
    assert isinstance(close, spec.ConnectionClose)
    assert (close.reply_code, close.class_id, close.method_id) == (504, 50, 10)
    await client.disconnect()


async def test_unknown_method_drops_the_connection(abroker: Broker) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    client.send_raw(encode_frame(1, 1, struct.pack(">HH", 99, 1)))
    events = await client.eof()
    assert not events
    await client.disconnect()


async def test_channel_error_leaves_the_connection_usable(abroker: Broker) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    await client.open_channel(2)
    close = await client.call(1, spec.QueueDeclare("missing", passive=True))
    assert isinstance(close, spec.ChannelClose)
    assert close.reply_code == 404
    assert close.reply_text == "NOT_FOUND - no queue 'missing' in vhost '/'"
    assert (close.class_id, close.method_id) == (50, 10)
    # methods on the closing channel are ignored until close-ok
    client.send(1, spec.ChannelCloseOk())
    ok = await client.call(2, spec.QueueDeclare("", exclusive=True))
    assert isinstance(ok, spec.QueueDeclareOk)
    await client.open_channel(1)  # the number can be reused after close-ok
    await client.disconnect()


async def test_duplicate_consumer_tag_is_a_connection_error(abroker: Broker) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    await client.call(1, spec.QueueDeclare("q"))
    ok = await client.call(1, spec.BasicConsume("q", "tag"))
    assert isinstance(ok, spec.BasicConsumeOk)
    close = await client.call(1, spec.BasicConsume("q", "tag"))
    assert isinstance(close, spec.ConnectionClose)
    assert close.reply_code == 530
    assert close.reply_text == "NOT_ALLOWED - attempt to reuse consumer tag 'tag'"
    client.send(0, spec.ConnectionCloseOk())
    await client.eof()
    await client.disconnect()


async def test_immediate_flag_is_not_implemented(abroker: Broker) -> None:
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    client.core.send_content(1, spec.BasicPublish("", "q", immediate=True), None, b"x")
    client.flush()
    close = await client.method(0)
    assert isinstance(close, spec.ConnectionClose)
    assert (close.reply_code, close.reply_text) == (540, "NOT_IMPLEMENTED - immediate=true")
    await client.disconnect()


# -- handshake --------------------------------------------------------------------------


async def test_server_properties_and_tune(abroker: Broker) -> None:
    client = await RawClient.open(abroker.port)
    start = await client.start()
    assert isinstance(start, spec.ConnectionStart)
    assert (start.version_major, start.version_minor) == (0, 9)
    assert set(start.mechanisms.split()) == {b"PLAIN", b"AMQPLAIN"}
    props = dict(start.server_properties or {})
    assert props["product"] == "kiltmq"
    for key in ("version", "platform", "copyright", "information"):
        assert isinstance(props[key], str) and props[key]
    assert props["capabilities"] == {
        "publisher_confirms": True,
        "exchange_exchange_bindings": True,
        "basic.nack": True,
        "consumer_cancel_notify": True,
        "connection.blocked": True,
        "authentication_failure_close": True,
        "per_consumer_qos": True,
        "direct_reply_to": True,
        "consumer_priorities": True,
    }
    tune = await client.login("guest", "guest")
    assert isinstance(tune, spec.ConnectionTune)
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)
    await client.disconnect()


async def test_amqplain_login(abroker: Broker) -> None:
    client = await RawClient.connect(abroker.port, mechanism="AMQPLAIN")
    await client.open_channel(1)
    await client.disconnect()


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
async def test_wrong_password_is_403_with_authentication_failure_close(
    abroker: Broker, mechanism: str
) -> None:
    client = await RawClient.open(abroker.port)
    await client.start()
    close = await client.login("guest", "wrong", mechanism)
    assert isinstance(close, spec.ConnectionClose)
    assert close.reply_code == 403
    assert close.reply_text == (
        f"ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. "
        "For details see the broker logfile."
    )
    assert (close.class_id, close.method_id) == (0, 0)
    await client.disconnect()


async def test_wrong_password_without_the_capability_just_closes(abroker: Broker) -> None:
    client = await RawClient.open(abroker.port)
    await client.start()
    client.send(0, spec.ConnectionStartOk({}, "PLAIN", b"\x00guest\x00nope", "en_US"))
    assert await client.eof() == []
    await client.disconnect()


async def test_unknown_user_is_refused(abroker: Broker) -> None:
    client = await RawClient.open(abroker.port)
    await client.start()
    close = await client.login("nobody", "guest")
    assert isinstance(close, spec.ConnectionClose)
    assert close.reply_code == 403
    await client.disconnect()


async def test_unknown_mechanism_closes_the_socket(abroker: Broker) -> None:
    client = await RawClient.open(abroker.port)
    await client.start()
    client.send(0, spec.ConnectionStartOk({}, "KILT", b"", "en_US"))
    assert await client.eof() == []
    await client.disconnect()


async def test_unknown_vhost_is_530(abroker: Broker) -> None:
    client = await RawClient.open(abroker.port)
    await client.start()
    tune = await client.login("guest", "guest")
    assert isinstance(tune, spec.ConnectionTune)
    client.send(0, spec.ConnectionTuneOk(tune.channel_max, tune.frame_max, 0))
    close = await client.call(0, spec.ConnectionOpen("nowhere"))
    assert isinstance(close, spec.ConnectionClose)
    assert (close.reply_code, close.reply_text) == (530, "NOT_ALLOWED - vhost nowhere not found")
    assert (close.class_id, close.method_id) == (10, 40)
    await client.disconnect()


async def test_vhost_without_permission_is_530() -> None:
    async with Broker(
        port=0,
        users={"guest": "guest", "shop": "pw"},
        vhosts=["/", "shop"],
        permissions={"guest": {"/": (".*", ".*", ".*")}, "shop": {"shop": (".*", ".*", ".*")}},
    ) as broker:
        client = await RawClient.open(broker.port)
        await client.start()
        tune = await client.login("guest", "guest")
        assert isinstance(tune, spec.ConnectionTune)
        client.send(0, spec.ConnectionTuneOk(tune.channel_max, tune.frame_max, 0))
        close = await client.call(0, spec.ConnectionOpen("shop"))
        assert isinstance(close, spec.ConnectionClose)
        assert close.reply_code == 530
        assert close.reply_text == "NOT_ALLOWED - access to vhost 'shop' refused for user 'guest'"
        await client.disconnect()
        shop = await RawClient.connect(broker.port, username="shop", password="pw", vhost="shop")
        await shop.open_channel(1)
        await shop.disconnect()


@pytest.mark.parametrize(
    ("channel_max", "frame_max"),
    [(0, 0), (0, 200_000), (0, 1024), (5000, 131072)],
)
async def test_tune_ok_out_of_bounds_closes_the_socket(
    abroker: Broker, channel_max: int, frame_max: int
) -> None:
    client = await RawClient.open(abroker.port)
    await client.start()
    await client.login("guest", "guest")
    client.send_raw_method(0, spec.ConnectionTuneOk(channel_max, frame_max, 0))
    assert await client.eof() == []
    await client.disconnect()


async def test_channel_max_is_enforced() -> None:
    async with Broker(port=0, channel_max=2) as broker:
        client = await RawClient.connect(broker.port)
        await client.open_channel(1)
        await client.open_channel(2)
        client.send_raw_method(3, spec.ChannelOpen())
        close = await client.method(0)
        assert isinstance(close, spec.ConnectionClose)
        assert close.reply_code == 530
        await client.disconnect()


def test_loopback_detection() -> None:
    assert is_loopback(("127.0.0.1", 5))
    assert is_loopback(("::1", 5, 0, 0))
    assert is_loopback(("::ffff:127.0.0.1", 5, 0, 0))
    assert not is_loopback(("10.1.2.3", 5))
    assert not is_loopback(("2001:db8::1", 5, 0, 0))


async def test_loopback_users_list_is_configurable() -> None:
    # the rule applies to the listed users; all test traffic is loopback, so both connect
    async with Broker(port=0, users={"guest": "guest", "app": "pw"}, loopback_users=["app"]) as b:
        for user, password in (("guest", "guest"), ("app", "pw")):
            client = await RawClient.connect(b.port, username=user, password=password)
            await client.disconnect()
        assert b.auth.loopback_only("app") and not b.auth.loopback_only("guest")


async def test_handshake_timeout_closes_idle_sockets() -> None:
    async with Broker(port=0, handshake_timeout=0.2) as broker:
        client = await RawClient.open(broker.port)
        client.send_raw(b"AMQP")  # half a header, then nothing
        assert await client.read_bytes(10) == b""
        await client.disconnect()


# -- heartbeats -------------------------------------------------------------------------


async def test_heartbeats_are_sent_and_a_silent_peer_is_dropped() -> None:
    async with Broker(port=0, heartbeat=1) as broker:
        client = await RawClient.connect(broker.port, heartbeat=1)
        # send nothing from now on: the broker beats, then gives up on us
        events = await client.eof(timeout=15)
        assert any(type(e).__name__ == "HeartbeatReceived" for e in events)
        await client.disconnect()
        await _still_works(broker.port)


async def test_heartbeat_zero_disables_them() -> None:
    async with Broker(port=0, heartbeat=1) as broker:
        client = await RawClient.connect(broker.port, heartbeat=0)
        with pytest.raises(TimeoutError):
            await client.event(timeout=2.5, heartbeats=True)
        await client.open_channel(1)
        await client.disconnect()


# -- internal errors --------------------------------------------------------------------


class FailingStore(Store):
    """A store whose disk is broken: every persistent message fails to be written."""

    def message_enqueued(self, vhost: str, queue: str, message: Message) -> None:
        raise OSError("disk on fire")


async def test_unexpected_exception_closes_the_connection_with_541() -> None:
    async with Broker(port=0, store=FailingStore()) as broker:
        client = await RawClient.connect(broker.port)
        await client.open_channel(1)
        await client.call(1, spec.QueueDeclare("durable-q", durable=True))
        client.publish(1, "", "durable-q", b"transient is fine")
        ok = await client.call(1, spec.QueueDeclare("durable-q", passive=True))
        assert isinstance(ok, spec.QueueDeclareOk) and ok.message_count == 1
        client.publish(1, "", "durable-q", b"persistent", BasicProperties(delivery_mode=2))
        close = await client.method(0)
        assert isinstance(close, spec.ConnectionClose)
        assert (close.reply_code, close.reply_text) == (541, "INTERNAL_ERROR")
        await client.disconnect()
        await _still_works(broker.port)


@pytest.mark.parametrize(
    "raw_properties",
    [b"\x20\x00\x00\x00\x00\xff", b"\x80\x00\x10ab", b"\x00\x10\x05ab", b"\x00\x40\x00\x01"],
)
async def test_undecodable_properties_close_the_connection_with_541(
    abroker: Broker, raw_properties: bytes
) -> None:
    """As RabbitMQ: properties that do not decode are an internal error (541, no method)."""
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    await client.call(1, spec.QueueDeclare("q"))
    client.send_raw(encode_frame(1, 1, spec.BasicPublish("", "q").encode()))
    client.send_raw(encode_frame(2, 1, struct.pack(">HHQ", 60, 0, 3) + raw_properties))
    client.send_raw(encode_frame(3, 1, b"abc"))
    close = await client.method(0)
    assert isinstance(close, spec.ConnectionClose)
    assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == (
        541, "INTERNAL_ERROR", 0, 0
    )
    await client.disconnect()


@pytest.mark.parametrize("notify", [True, False])
async def test_consumer_cancel_notification_needs_the_capability(
    abroker: Broker, notify: bool
) -> None:
    caps = {"consumer_cancel_notify": True} if notify else {}
    client = await RawClient.connect(abroker.port, capabilities=caps)
    await client.open_channel(1)
    await client.call(1, spec.QueueDeclare("short-lived"))
    await client.call(1, spec.BasicConsume("short-lived", "watcher"))
    other = await RawClient.connect(abroker.port)
    await other.open_channel(1)
    await other.call(1, spec.QueueDelete("short-lived"))
    await other.disconnect()
    if notify:
        cancel = await client.method(1)
        assert isinstance(cancel, spec.BasicCancel)
        assert (cancel.consumer_tag, cancel.no_wait) == ("watcher", True)
    # either way the tag is free again on this channel
    ok = await client.call(1, spec.QueueDeclare("short-lived"))
    assert isinstance(ok, spec.QueueDeclareOk)
    ok2 = await client.call(1, spec.BasicConsume("short-lived", "watcher"))
    assert isinstance(ok2, spec.BasicConsumeOk)
    await client.disconnect()
