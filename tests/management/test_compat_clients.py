"""What the management APIs of RabbitMQ and kiltmq show of a pika client's connection,
channel, consumer and exclusive queue: every field RabbitMQ shows that clients read is
there, and closing the connection and deleting its queue go the same way."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pika
import pytest

from kiltmq.broker import Broker

from .api import Api, q
from .conftest import unique

#: RabbitMQ fields with no kiltmq counterpart: Erlang process statistics, pending writes,
#: its queue implementation's internals, quorum queues, TLS peer details.
NOT_SHOWN = {
    "garbage_collection", "reductions", "reductions_details",
    "send_pend", "idle_since", "pending_raft_commands", "backing_queue_status",
    "recoverable_slaves", "consumer_utilisation", "consumer_capacity", "messages_paged_out",
    "messages_persistent", "message_bytes_paged_out", "message_bytes_persistent",
    "message_bytes_ram", "single_active_consumer_tag", "slave_nodes",
    "synchronised_slave_nodes",
}

DEADLINE = 30.0


def _until(check: Callable[[], Any]) -> Any:
    """What ``check`` gives once it is truthy (RabbitMQ lists objects only once its
    statistics collector has seen them, within seconds)."""
    end = time.monotonic() + DEADLINE
    while True:
        found = check()
        if found or time.monotonic() > end:
            return found
        time.sleep(0.2)


def _observe(api: Api, amqp_url: str, vhost: str) -> dict[str, Any]:
    assert api.put(f"/api/vhosts/{q(vhost)}").status in (201, 204)
    params = pika.URLParameters(amqp_url + q(vhost))
    params.client_properties = {"connection_name": "observed"}
    conn = pika.BlockingConnection(params)
    seen: dict[str, Any] = {}
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_qos(prefetch_count=3)
        channel.queue_declare("mine", exclusive=True)
        channel.basic_publish("", "mine", b"x")
        channel.basic_consume("mine", lambda *a: None, consumer_tag="tag-1")
        conn.process_data_events(time_limit=0.2)
        V = q(vhost)

        def channel_with_stats() -> Any:
            found = api.get(f"/api/vhosts/{V}/channels").body or []
            return [c for c in found if "message_stats" in c]

        [seen["channel"]] = _until(channel_with_stats)
        [seen["connection"]] = _until(lambda: api.get(f"/api/vhosts/{V}/connections").body)
        [seen["consumer"]] = _until(lambda: api.get(f"/api/consumers/{V}").body)
        seen["queue"] = _until(
            lambda: (lambda b: b if "messages" in b else None)(
                api.get(f"/api/queues/{V}/mine").body
            )
        )
        reply = api.delete(f"/api/queues/{V}/mine")
        seen["delete exclusive"] = (reply.status, reply.body)
        name = q(seen["connection"]["name"])
        reply = api.delete(f"/api/connections/{name}", headers={"X-Reason": "bye now"})
        seen["close"] = reply.status
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
            for _ in range(50):
                conn.process_data_events(time_limit=0.1)
        seen["closed with"] = (closed.value.reply_code, closed.value.reply_text)
    finally:
        if conn.is_open:
            conn.close()
        api.delete(f"/api/vhosts/{q(vhost)}")
    return seen


def _missing(theirs: Any, ours: Any, path: str = "") -> list[str]:
    """Keys RabbitMQ shows (recursively in objects) that kiltmq does not."""
    if not isinstance(theirs, dict) or not isinstance(ours, dict):
        return []
    found = []
    for key, value in theirs.items():
        if key in NOT_SHOWN:
            continue
        if key not in ours:
            found.append(path + key)
        elif key not in ("client_properties", "arguments"):
            found += _missing(value, ours[key], f"{path}{key}.")
    return found


@pytest.mark.rabbitmq
def test_clients_look_the_same(
    rabbit: Api, rabbitmq_url: str, kilt: Api, kilt_broker: Broker
) -> None:
    vhost = unique("mgmt-clients")
    theirs = _observe(rabbit, rabbitmq_url.rstrip("/") + "/", vhost)
    ours = _observe(kilt, kilt_broker.url, vhost)
    for kind in ("connection", "channel", "consumer", "queue"):
        assert _missing(theirs[kind], ours[kind]) == [], kind
    for kind in ("delete exclusive", "close", "closed with"):
        assert ours[kind] == theirs[kind], kind
    assert ours["queue"]["owner_pid_details"].keys() == theirs["queue"]["owner_pid_details"].keys()


#: Overview and node fields kiltmq has no counterpart for (Erlang, clustering, churn,
#: I/O and RabbitMQ's own release support).
NOT_IN_OVERVIEW = {
    "churn_rates", "erlang_version", "erlang_full_version", "release_series_support_status",
}
NOT_IN_NODE = {
    "context_switches", "context_switches_details", "gc_bytes_reclaimed",
    "gc_bytes_reclaimed_details", "gc_num", "gc_num_details", "metrics_gc_queue_length",
    "mnesia_disk_tx_count", "mnesia_disk_tx_count_details", "mnesia_ram_tx_count",
    "mnesia_ram_tx_count_details", "msg_store_read_count", "msg_store_read_count_details",
    "msg_store_write_count", "msg_store_write_count_details", "proc_total", "proc_used",
    "proc_used_details", "queue_index_read_count", "queue_index_read_count_details",
    "queue_index_write_count", "queue_index_write_count_details", "ra_open_file_metrics",
    "run_queue", "fd_used_details", "mem_used_details", "disk_free_details",
    "sockets_used_details", "io_read_avg_time", "io_read_avg_time_details", "io_read_bytes",
    "io_read_bytes_details", "io_read_count", "io_read_count_details", "io_reopen_count",
    "io_reopen_count_details", "io_seek_avg_time", "io_seek_avg_time_details",
    "io_seek_count", "io_seek_count_details", "io_sync_avg_time", "io_sync_avg_time_details",
    "io_sync_count", "io_sync_count_details", "io_write_avg_time",
    "io_write_avg_time_details", "io_write_bytes", "io_write_bytes_details",
    "io_write_count", "io_write_count_details", "connection_created",
    "connection_created_details", "connection_closed", "connection_closed_details",
    "channel_created", "channel_created_details", "channel_closed",
    "channel_closed_details", "queue_created", "queue_created_details", "queue_declared",
    "queue_declared_details", "queue_deleted", "queue_deleted_details",
}


@pytest.mark.rabbitmq
def test_overview_and_nodes_have_rabbitmqs_fields(rabbit: Api, kilt: Api) -> None:
    theirs, ours = rabbit.get("/api/overview").body, kilt.get("/api/overview").body
    assert sorted(set(theirs) - set(ours) - NOT_IN_OVERVIEW) == []
    assert theirs["object_totals"].keys() == ours["object_totals"].keys()
    [their_node], [our_node] = rabbit.get("/api/nodes").body, kilt.get("/api/nodes").body
    assert sorted(set(their_node) - set(our_node) - NOT_IN_NODE) == []
    assert kilt.get(f"/api/nodes/{q(our_node['name'])}").body["name"] == our_node["name"]
