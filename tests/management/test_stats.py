"""Message counters and rates, connections, channels and consumers, seen through the
management API of kiltmq while pika clients work."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from kiltmq.broker import Broker
from kiltmq.broker.memory import MESSAGE_OVERHEAD, UNACKED_OVERHEAD
from kiltmq.broker.monitor import Monitor
from kiltmq.management.stats import QUEUE_FIELDS, Sampler

from .api import Api, q
from .conftest import unique


@pytest.fixture
def channel(kilt_broker: Broker, vhost: str) -> Iterator[BlockingChannel]:
    params = pika.URLParameters(kilt_broker.url + q(vhost))
    params.client_properties = {"connection_name": "stats-test"}
    conn = pika.BlockingConnection(params)
    try:
        yield conn.channel()
    finally:
        if conn.is_open:
            conn.close()


def test_queue_and_channel_counters(
    kilt: Api, kilt_broker: Broker, vhost: str, channel: BlockingChannel
) -> None:
    channel.confirm_delivery()
    channel.queue_declare("work")
    for i in range(3):
        channel.basic_publish("", "work", f"m{i}".encode())
    channel.basic_publish("", "nowhere", b"dropped")
    method, _props, _body = channel.basic_get("work", auto_ack=True)
    assert method is not None
    method, _props, _body = channel.basic_get("work")
    assert method is not None
    channel.basic_nack(method.delivery_tag, requeue=True)
    method, _props, _body = channel.basic_get("work")
    assert method is not None and method.redelivered
    channel.basic_ack(method.delivery_tag)
    assert channel.basic_get("work")[0] is not None  # the third, left unacked

    stats = kilt.get(f"/api/queues/{q(vhost)}/work").body["message_stats"]
    assert {k: stats[k] for k in ("publish", "get", "get_no_ack", "ack", "redeliver")} == {
        "publish": 3, "get": 3, "get_no_ack": 1, "ack": 1, "redeliver": 1,
    }
    assert stats["deliver_get"] == 4
    assert stats["publish_details"] == {"rate": 0.0}

    [chan] = kilt.get(f"/api/vhosts/{q(vhost)}/channels").body
    stats = chan["message_stats"]
    assert (stats["publish"], stats["confirm"], stats["drop_unroutable"]) == (4, 4, 1)
    assert (stats["get"], stats["get_no_ack"], stats["ack"]) == (3, 1, 1)
    assert chan["messages_unacknowledged"] == 1
    assert chan["confirm"] is True
    assert chan["connection_details"]["name"] in chan["name"]
    vhost_stats = kilt.get(f"/api/vhosts/{q(vhost)}").body["message_stats"]
    assert (vhost_stats["publish"], vhost_stats["get"], vhost_stats["deliver_get"]) == (4, 3, 4)


def test_rates_come_from_samples(
    kilt: Api, kilt_broker: Broker, vhost: str, channel: BlockingChannel, sampler: Sampler
) -> None:
    channel.queue_declare("rated")
    kilt_broker.call_in_loop(sampler.sample)
    for _ in range(10):
        channel.basic_publish("", "rated", b"x")
    channel.basic_get("rated", auto_ack=True)  # a round trip: the publishes are in
    kilt_broker.call_in_loop(sampler.sample)
    stats = kilt.get(f"/api/queues/{q(vhost)}/rated").body["message_stats"]
    assert stats["publish"] == 10
    assert stats["publish_details"]["rate"] > 0
    overview = kilt.get("/api/overview").body
    assert overview["message_stats"]["publish"] >= 10
    assert overview["queue_totals"]["messages_ready"] >= 9


def test_closed_channels_stay_in_the_totals(
    kilt: Api, kilt_broker: Broker, vhost: str, channel: BlockingChannel
) -> None:
    channel.queue_declare("kept")
    before = kilt.get("/api/overview").body["message_stats"].get("publish", 0)
    for _ in range(5):
        channel.basic_publish("", "kept", b"x")
    channel.basic_get("kept", auto_ack=True)
    channel.close()
    assert kilt.get("/api/overview").body["message_stats"]["publish"] == before + 5
    vhost_stats = kilt.get(f"/api/vhosts/{q(vhost)}").body["message_stats"]
    assert (vhost_stats["publish"], vhost_stats["get_no_ack"]) == (5, 1)


def test_disable_stats_leaves_message_stats_out(
    kilt: Api, vhost: str, channel: BlockingChannel
) -> None:
    channel.queue_declare("quiet")
    channel.basic_publish("", "quiet", b"x")
    channel.basic_get("quiet", auto_ack=False)
    [item] = kilt.get(f"/api/queues/{q(vhost)}?disable_stats=true").body
    assert "message_stats" not in item and "messages" not in item
    [item] = kilt.get(f"/api/queues/{q(vhost)}").body
    assert item["messages_unacknowledged"] == 1 and item["message_stats"]["get"] == 1


def test_connections_consumers_and_closing_with_a_reason(
    kilt: Api, kilt_broker: Broker, vhost: str, channel: BlockingChannel
) -> None:
    channel.queue_declare("watched")
    channel.basic_qos(prefetch_count=7)
    channel.basic_consume("watched", lambda *a: None, consumer_tag="watcher")
    [conn] = kilt.get(f"/api/vhosts/{q(vhost)}/connections").body
    assert conn["user_provided_name"] == "stats-test"
    assert conn["vhost"] == vhost and conn["user"] == "guest"
    assert conn["port"] == kilt_broker.port and conn["protocol"] == "AMQP 0-9-1"
    assert conn["client_properties"]["product"] == "Pika Python Client Library"
    assert conn["recv_oct"] > 0 and conn["send_oct"] > 0
    [consumer] = kilt.get(f"/api/consumers/{q(vhost)}").body
    assert consumer["consumer_tag"] == "watcher"
    assert consumer["queue"] == {"name": "watched", "vhost": vhost}
    assert consumer["prefetch_count"] == 7 and consumer["ack_required"] is True
    assert consumer["channel_details"]["connection_name"] == conn["name"]
    details = kilt.get(f"/api/queues/{q(vhost)}/watched").body["consumer_details"]
    assert [c["consumer_tag"] for c in details] == ["watcher"]
    [chan] = kilt.get(f"/api/connections/{q(conn['name'])}/channels").body
    assert chan["prefetch_count"] == 7 and chan["consumer_count"] == 1
    one = kilt.get(f"/api/channels/{q(chan['name'])}").body
    assert [c["consumer_tag"] for c in one["consumer_details"]] == ["watcher"]
    assert kilt.get(f"/api/connections/{q(conn['name'])}").body["name"] == conn["name"]

    closed = kilt.delete(
        f"/api/connections/{q(conn['name'])}", headers={"X-Reason": "maintenance now"}
    )
    assert closed.status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        channel.connection.process_data_events(time_limit=5)
        channel.connection.process_data_events(time_limit=5)
    assert info.value.reply_code == 320
    assert info.value.reply_text == "CONNECTION_FORCED - maintenance now"
    assert kilt.get(f"/api/connections/{q(conn['name'])}").status == 404


def test_users_see_only_their_own_connections(
    kilt: Api, kilt_broker: Broker, vhost: str, channel: BlockingChannel
) -> None:
    assert kilt.put("/api/users/mgmt-own", {"password": "pw", "tags": "management"}).status == 201
    perm = {"configure": ".*", "write": ".*", "read": ".*"}
    assert kilt.put(f"/api/permissions/{q(vhost)}/mgmt-own", perm).status == 201
    try:
        own = kilt.as_user("mgmt-own", "pw")
        assert own.get("/api/connections").body == []
        [guests] = kilt.get(f"/api/vhosts/{q(vhost)}/connections").body
        refused = own.delete(f"/api/connections/{q(guests['name'])}")
        assert refused.status == 401
        assert refused.body == {
            "error": "not_authorised", "reason": "User not authorised to access object",
        }
        assert channel.connection.is_open
    finally:
        kilt.delete("/api/users/mgmt-own")


@pytest.mark.parametrize(
    "properties",
    [{"priority": 300}, {"headers": {"big": 2**70}}, {"content_type": "x" * 300}],
    ids=["priority", "integer", "shortstr"],
)
def test_properties_that_cannot_be_encoded_are_a_bad_request(
    kilt: Api, vhost: str, properties: dict[str, object]
) -> None:
    assert kilt.put(f"/api/queues/{q(vhost)}/props").status == 201
    reply = kilt.post(f"/api/exchanges/{q(vhost)}/amq.default/publish", {
        "properties": properties, "routing_key": "props", "payload": "x",
        "payload_encoding": "string",
    })
    assert (reply.status, reply.body["error"]) == (400, "bad_request")
    assert kilt.get(f"/api/queues/{q(vhost)}/props").body["messages"] == 0


def test_overview_churn_and_exchange_message_stats(
    kilt: Api, kilt_broker: Broker, vhost: str, sampler: Sampler
) -> None:
    before = kilt.get("/api/overview").body["churn_rates"]
    assert set(before) == {
        f"{name}{suffix}"
        for name in ("channel_closed", "channel_created", "connection_closed",
                     "connection_created", "queue_created", "queue_declared", "queue_deleted")
        for suffix in ("", "_details")
    }
    assert kilt.put(f"/api/queues/{q(vhost)}/counted", {}).status == 201
    assert kilt.put(f"/api/exchanges/{q(vhost)}/shop", {"type": "direct"}).status == 201
    assert "message_stats" not in kilt.get(f"/api/exchanges/{q(vhost)}/shop").body
    assert kilt.post(f"/api/bindings/{q(vhost)}/e/shop/q/counted",
                     {"routing_key": "k"}).status == 201
    kilt_broker.call_in_loop(sampler.sample)
    conn = pika.BlockingConnection(pika.URLParameters(kilt_broker.url + q(vhost)))
    try:
        channel = conn.channel()
        for key in ("k", "k", "nowhere"):
            channel.basic_publish("shop", key, b"x")
        channel.queue_declare("counted")
    finally:
        conn.close()
    assert kilt.post(f"/api/exchanges/{q(vhost)}/shop/publish", {
        "properties": {}, "routing_key": "k", "payload": "x", "payload_encoding": "string",
    }).body == {"routed": True}
    kilt_broker.call_in_loop(sampler.sample)
    stats = kilt.get(f"/api/exchanges/{q(vhost)}/shop").body["message_stats"]
    assert (stats["publish_in"], stats["publish_out"]) == (4, 3)
    assert stats["publish_in_details"]["rate"] > 0
    listed = kilt.get(f"/api/exchanges/{q(vhost)}?columns=name,message_stats.publish_out").body
    assert {"name": "shop", "message_stats": {"publish_out": 3}} in listed
    after = kilt.get("/api/overview").body["churn_rates"]
    assert after["connection_created"] - before["connection_created"] == 1
    assert after["connection_closed"] - before["connection_closed"] == 1
    assert after["channel_created"] - before["channel_created"] == 1
    assert after["channel_closed"] - before["channel_closed"] == 1
    assert after["queue_declared"] - before["queue_declared"] == 2
    assert after["queue_created"] - before["queue_created"] == 1
    assert after["connection_created_details"]["rate"] > 0, after


def test_history_with_rabbitmqs_range_parameters(
    kilt: Api, kilt_broker: Broker, vhost: str, channel: BlockingChannel, sampler: Sampler
) -> None:
    channel.queue_declare("charted")
    kilt_broker.call_in_loop(sampler.sample)
    for _ in range(3):
        channel.basic_publish("", "charted", b"x")
    channel.basic_get("charted", auto_ack=True)
    kilt_broker.call_in_loop(sampler.sample)
    time.sleep(1.1)  # the newest sample time (a whole second) is after the sample
    ranges = "lengths_age=10&lengths_incr=1&msg_rates_age=10&msg_rates_incr=1"
    queue = kilt.get(f"/api/queues/{q(vhost)}/charted?{ranges}").body
    details = queue["messages_details"]
    samples = details["samples"]
    assert len(samples) == 11
    times = [s["timestamp"] for s in samples]
    assert times == [times[0] - 1000 * n for n in range(11)] and times[0] % 1000 == 0
    assert times[0] <= time.time() * 1000 < times[0] + 2000
    # newest first; zero before the queue was first sampled
    assert samples[0]["sample"] == 2 and samples[-1]["sample"] == 0
    assert details["avg"] == sum(s["sample"] for s in samples) / 11
    assert details["avg_rate"] == 2 / 10
    assert details["rate"] == queue["messages_ready_details"]["rate"]
    publish = queue["message_stats"]["publish_details"]["samples"]
    assert publish[0]["sample"] == 3 and publish[-1]["sample"] == 0
    delivered = queue["message_stats"]["deliver_get_details"]["samples"]
    assert delivered[0]["sample"] == 1
    # without the parameters, as before: the rate only
    assert kilt.get(f"/api/queues/{q(vhost)}/charted").body["messages_details"] == {
        "rate": details["rate"]
    }
    overview = kilt.get(f"/api/overview?{ranges}").body
    assert overview["queue_totals"]["messages_details"]["samples"][0]["sample"] >= 2
    assert overview["message_stats"]["publish_details"]["samples"][0]["sample"] >= 3
    [conn] = [
        c for c in kilt.get("/api/connections").body
        if c["client_properties"].get("connection_name") == "stats-test"
    ]
    data = kilt.get(
        f"/api/connections/{q(conn['name'])}?data_rates_age=10&data_rates_incr=1"
    ).body
    assert data["recv_oct_details"]["samples"][0]["sample"] > 0
    assert len(data["send_oct_details"]["samples"]) == 11
    refused = kilt.get(f"/api/queues/{q(vhost)}/charted?lengths_age=3600&lengths_incr=1")
    assert (refused.status, refused.body) == (400, {
        "error": "bad_request", "reason": "Invalid range parameters: age 3600, incr 1",
    })


def test_the_history_is_bounded(kilt_broker: Broker, vhost: str, channel: BlockingChannel) -> None:
    channel.queue_declare("bounded")
    kept = Sampler(Monitor(kilt_broker))
    cut = Sampler(Monitor(kilt_broker), history=0.0)
    rows = []
    for n in range(5):
        channel.basic_publish("", "bounded", b"x")
        channel.basic_get("bounded", auto_ack=False)  # a round trip: the publish is in
        kilt_broker.call_in_loop(kept.sample)
        kilt_broker.call_in_loop(cut.sample)
        rows.append(cut.history_rows())
        if n == 0:
            first = kept.history_rows()
    # each change of the queue's depth and counters is a row, unless it is too old
    assert kept.history_rows() > first
    assert len(set(rows)) == 1

def test_overview_of_a_user_sums_only_its_vhosts(
    kilt: Api, kilt_broker: Broker, vhost: str, channel: BlockingChannel, sampler: Sampler
) -> None:
    """A user with the management tag sees the message counts, queue totals and objects
    of the vhosts it may use, not those of the others; a monitoring user the broker's."""
    other = f"{vhost}-other"
    kilt.put(f"/api/vhosts/{q(other)}")
    try:
        for name, tags in (("stats-mgr", "management"), ("stats-mon", "monitoring")):
            kilt.put(f"/api/users/{name}", {"password": "pw", "tags": tags})
            kilt.put(f"/api/permissions/{q(other)}/{name}",
                     {"configure": ".*", "write": ".*", "read": ".*"})
        kilt.put(f"/api/queues/{q(other)}/mine", {})
        channel.queue_declare("theirs")
        channel.basic_consume("theirs", lambda *a: None)
        channel.basic_publish("", "theirs", b"x")
        channel.basic_publish("", "theirs", b"y")
        kilt_broker.call_in_loop(sampler.sample)
        mgr = kilt.as_user("stats-mgr", "pw").get("/api/overview").body
        assert mgr["message_stats"] == {}
        assert mgr["queue_totals"]["messages"] == 0
        assert mgr["object_totals"]["queues"] == 1
        assert "consumers" not in mgr["object_totals"] and "node" not in mgr
        mon = kilt.as_user("stats-mon", "pw").get("/api/overview").body
        assert mon["message_stats"]["publish"] >= 2
        assert mon["object_totals"]["queues"] >= 2
        assert mon["object_totals"]["consumers"] >= 1
    finally:
        for name in ("stats-mgr", "stats-mon"):
            kilt.delete(f"/api/users/{name}")
        kilt.delete(f"/api/vhosts/{q(other)}")


def _http_messages(api: Api, vhost: str) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Publish and get through the API in a new vhost; its and its queue's counters once
    the broker shows them."""
    V = q(vhost)
    api.put(f"/api/vhosts/{V}")
    try:
        api.put(f"/api/queues/{V}/pq", {})
        publish = f"/api/exchanges/{V}/amq.default/publish"
        for key in ("pq", "pq", "nowhere"):
            reply = api.post(publish, {"properties": {}, "routing_key": key, "payload": "x",
                                       "payload_encoding": "string"})
            assert reply.status == 200
        get = f"/api/queues/{V}/pq/get"
        for mode in ("ack_requeue_true", "ack_requeue_false", "reject_requeue_false"):
            reply = api.post(get, {"count": 1, "ackmode": mode, "encoding": "auto"})
            assert reply.status == 200 and len(reply.body) == 1
        deadline = time.monotonic() + 12  # RabbitMQ shows them in its next sample
        while True:
            item = api.get(f"/api/vhosts/{V}").body
            host = item.get("message_stats", {})
            queue = api.get(f"/api/queues/{V}/pq").body.get("message_stats", {})
            # (RabbitMQ may show some counters a sample before others)
            done = [host.get("publish"), host.get("get_no_ack"), host.get("redeliver"),
                    queue.get("publish"), queue.get("get_no_ack"), queue.get("redeliver"),
                    "messages_details" in item] == [3, 1, 1, 2, 1, 1, True]
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        shown = ("publish", "confirm", "return_unroutable", "drop_unroutable", "get",
                 "get_no_ack", "redeliver", "ack", "deliver", "deliver_no_ack", "deliver_get")
        return ({k: host.get(k) for k in shown},
                {k: queue.get(k) for k in shown if k in QUEUE_FIELDS},
                sorted(k for k in item if k.startswith("messages")))
    finally:
        api.delete(f"/api/vhosts/{V}")


@pytest.mark.rabbitmq
def test_api_publishes_and_gets_count_as_in_rabbitmq(rabbit: Api, kilt: Api) -> None:
    name = unique("mgmt-http-counts")
    for _attempt in range(3):
        # RabbitMQ can lose the last counts of a channel that closes before its stats
        # are emitted (its management API's channel closes at once): try again then
        theirs = _http_messages(rabbit, name)
        if theirs[1].get("publish") and theirs[2]:
            break
    ours = _http_messages(kilt, name)
    assert ours == theirs
    assert ours[0]["publish"] == 3 and ours[0]["get_no_ack"] == 1
    assert "messages_ready_details" in ours[2]


def test_vhost_depth_rates(
    kilt: Api, kilt_broker: Broker, vhost: str, channel: BlockingChannel, sampler: Sampler
) -> None:
    channel.queue_declare("deep")
    kilt_broker.call_in_loop(sampler.sample)
    for _ in range(4):
        channel.basic_publish("", "deep", b"x")
    channel.basic_get("deep")  # one unacknowledged
    time.sleep(0.05)
    kilt_broker.call_in_loop(sampler.sample)
    item = kilt.get(f"/api/vhosts/{q(vhost)}").body
    assert (item["messages"], item["messages_ready"], item["messages_unacknowledged"]) == (
        4, 3, 1)
    assert item["messages_details"]["rate"] > 0
    assert item["messages_ready_details"]["rate"] > 0
    assert item["messages_unacknowledged_details"]["rate"] > 0
    assert "messages_details" not in kilt.get(f"/api/vhosts/{q(vhost)}?disable_stats=true").body


def test_queue_memory_is_what_the_memory_alarm_counts(
    kilt: Api, kilt_broker: Broker, vhost: str, channel: BlockingChannel
) -> None:
    channel.queue_declare("heavy")
    channel.queue_declare("light")
    for _ in range(3):
        channel.basic_publish("", "heavy", b"x" * 1000)
    V = q(vhost)
    assert kilt.get(f"/api/queues/{V}/heavy").body["memory"] == 3 * (1000 + MESSAGE_OVERHEAD)
    assert kilt.get(f"/api/queues/{V}/light").body["memory"] == 0
    channel.basic_get("heavy")  # awaiting its ack
    held = 2 * (1000 + MESSAGE_OVERHEAD) + 1000 + UNACKED_OVERHEAD
    assert kilt.get(f"/api/queues/{V}/heavy").body["memory"] == held
    listed = kilt.get(f"/api/queues/{V}?sort=memory&sort_reverse=true&columns=name,memory")
    assert listed.body == [{"name": "heavy", "memory": held}, {"name": "light", "memory": 0}]
    assert "memory" not in kilt.get(f"/api/queues/{V}/heavy?disable_stats=true").body
