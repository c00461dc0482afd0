"""Prometheus metrics under RabbitMQ's names."""

from __future__ import annotations

import logging
import socket
import urllib.request
from collections.abc import Iterator

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kiltmq.broker import Broker

from .api import Api
from .conftest import RABBITMQ_MANAGEMENT_PORT

RABBITMQ_PROMETHEUS_PORT = 15692
AMQP_LABEL = 'protocol="amqp091"'
CLASSIC_LABELS = 'protocol="amqp091",queue_type="rabbit_classic_queue"'

#: The metrics that RabbitMQ's "RabbitMQ-Overview" Grafana dashboard queries
#: (deps/rabbitmq_prometheus/docker/grafana/dashboards/RabbitMQ-Overview.json in
#: rabbitmq-server v3.10.8: every ``rabbitmq_*`` name in its panels' expressions, less
#: the label names rabbitmq_node, rabbitmq_cluster and the data source variable).
DASHBOARD = frozenset({
    "rabbitmq_build_info", "rabbitmq_channel_consumers", "rabbitmq_channels",
    "rabbitmq_channels_closed_total", "rabbitmq_channels_opened_total",
    "rabbitmq_connections", "rabbitmq_connections_closed_total",
    "rabbitmq_connections_opened_total", "rabbitmq_consumers",
    "rabbitmq_disk_space_available_bytes", "rabbitmq_global_messages_acknowledged_total",
    "rabbitmq_global_messages_confirmed_total",
    "rabbitmq_global_messages_delivered_consume_auto_ack_total",
    "rabbitmq_global_messages_delivered_consume_manual_ack_total",
    "rabbitmq_global_messages_delivered_get_auto_ack_total",
    "rabbitmq_global_messages_delivered_get_manual_ack_total",
    "rabbitmq_global_messages_get_empty_total",
    "rabbitmq_global_messages_received_confirm_total",
    "rabbitmq_global_messages_received_total", "rabbitmq_global_messages_redelivered_total",
    "rabbitmq_global_messages_routed_total",
    "rabbitmq_global_messages_unroutable_dropped_total",
    "rabbitmq_global_messages_unroutable_returned_total", "rabbitmq_identity_info",
    "rabbitmq_process_max_fds", "rabbitmq_process_max_tcp_sockets",
    "rabbitmq_process_open_fds", "rabbitmq_process_open_tcp_sockets",
    "rabbitmq_process_resident_memory_bytes", "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked", "rabbitmq_queues", "rabbitmq_queues_created_total",
    "rabbitmq_queues_declared_total", "rabbitmq_queues_deleted_total",
    "rabbitmq_resident_memory_limit_bytes",
})
#: Further families that dashboards built on RabbitMQ's channel, connection, queue and
#: node figures use, served by both.
FIGURES = frozenset({
    "rabbitmq_channel_messages_published_total", "rabbitmq_channel_messages_confirmed_total",
    "rabbitmq_channel_messages_delivered_total", "rabbitmq_channel_messages_delivered_ack_total",
    "rabbitmq_channel_messages_redelivered_total", "rabbitmq_channel_messages_acked_total",
    "rabbitmq_channel_messages_unacked", "rabbitmq_channel_messages_unconfirmed",
    "rabbitmq_channel_messages_uncommitted", "rabbitmq_channel_acks_uncommitted",
    "rabbitmq_channel_prefetch",
    "rabbitmq_channel_messages_unroutable_dropped_total",
    "rabbitmq_channel_messages_unroutable_returned_total", "rabbitmq_channel_get_total",
    "rabbitmq_channel_get_ack_total", "rabbitmq_channel_get_empty_total",
    "rabbitmq_queue_messages_published_total", "rabbitmq_connection_incoming_bytes_total",
    "rabbitmq_connection_outgoing_bytes_total", "rabbitmq_connection_incoming_packets_total",
    "rabbitmq_connection_outgoing_packets_total", "rabbitmq_connection_channels",
    "rabbitmq_disk_space_available_limit_bytes", "rabbitmq_global_publishers",
    "rabbitmq_alarms_file_descriptor_limit",
})


def fetch(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.headers["Content-Type"], response.read().decode()


def scrape(url: str) -> tuple[str, dict[str, float]]:
    """The content type and each series' value, keyed ``name{label="value",...}``."""
    content_type, text = fetch(url)
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            shown = ",".join(f'{k}="{v}"' for k, v in sample.labels.items())
            values[f"{sample.name}{{{shown}}}" if shown else sample.name] = sample.value
    return content_type, values


def types(url: str) -> dict[str, str]:
    """Each family's name (as its ``# TYPE`` line gives it) and type."""
    _, text = fetch(url)
    found = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            found[name] = kind
    # the parser reads the same families (it drops a counter's _total suffix)
    parsed = {f.name for f in text_string_to_metric_families(text)}
    assert parsed == {n.removesuffix("_total") if k == "counter" else n
                      for n, k in found.items()}
    return found


def names(values: dict[str, float]) -> set[str]:
    return {key.split("{")[0] for key in values}


@pytest.fixture(scope="module")
def metered() -> Iterator[Broker]:
    with Broker(port=0, management_port=0, prometheus_port=0) as broker:
        yield broker


def test_metrics_count_what_clients_do(metered: Broker) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(metered.url))
    try:
        channel = conn.channel()
        channel.queue_declare("metered")
        for _ in range(4):
            channel.basic_publish("", "metered", b"x")
        channel.basic_publish("", "nowhere", b"x")
        channel.basic_get("metered", auto_ack=True)
        content_type, values = scrape(f"{metered.prometheus_url}/metrics")
        assert content_type == "text/plain; version=0.0.4"
        assert values["rabbitmq_connections"] == 1
        assert values["rabbitmq_channels"] == 1
        assert values["rabbitmq_queues"] == 1
        assert values["rabbitmq_queue_messages_ready"] == 3
        received = 'rabbitmq_global_messages_received_total{protocol="amqp091"}'
        assert values[received] == 5
        assert values['rabbitmq_global_messages_routed_total{protocol="amqp091"}'] == 4
        dropped = 'rabbitmq_global_messages_unroutable_dropped_total{protocol="amqp091"}'
        assert values[dropped] == 1
        auto = ('rabbitmq_global_messages_delivered_get_auto_ack_total{protocol="amqp091",'
                'queue_type="rabbit_classic_queue"}')
        assert values[auto] == 1
        _, per_object = scrape(f"{metered.prometheus_url}/metrics/per-object")
        assert per_object['rabbitmq_queue_messages_ready{vhost="/",queue="metered"}'] == 3
        published = 'rabbitmq_queue_messages_published_total{vhost="/",queue="metered"}'
        assert per_object[published] == 4
    finally:
        conn.close()


def test_channel_and_connection_figures(metered: Broker) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(metered.url))
    try:
        quiet = conn.channel()
        channel = conn.channel()
        channel.confirm_delivery()
        channel.queue_declare("figures")
        channel.basic_qos(prefetch_count=7, global_qos=True)
        for _ in range(3):
            channel.basic_publish("", "figures", b"x")
        method, _, _ = channel.basic_get("figures")
        assert method is not None
        channel.basic_get("figures", auto_ack=True)
        channel.basic_ack(method.delivery_tag)
        channel.basic_get("figures")  # stays unacked
        channel.basic_get("figures")  # empty
        _, values = scrape(f"{metered.prometheus_url}/metrics")
        assert values["rabbitmq_channel_messages_published_total"] == 3
        assert values["rabbitmq_channel_messages_confirmed_total"] == 3
        assert values["rabbitmq_channel_get_ack_total"] == 2
        assert values["rabbitmq_channel_get_total"] == 1
        assert values["rabbitmq_channel_get_empty_total"] == 1
        assert values["rabbitmq_channel_messages_acked_total"] == 1
        assert values["rabbitmq_channel_messages_unacked"] == 1
        assert values["rabbitmq_channel_prefetch"] == 7
        assert values["rabbitmq_connection_channels"] == 2
        assert values["rabbitmq_connection_incoming_bytes_total"] > 0
        assert values["rabbitmq_connection_outgoing_packets_total"] > 0
        assert values['rabbitmq_global_publishers{protocol="amqp091"}'] == 1
        confirm = 'rabbitmq_global_messages_received_confirm_total{protocol="amqp091"}'
        before = values[confirm]
        assert before >= 3
        _, per_object = scrape(f"{metered.prometheus_url}/metrics/per-object")
        ours = {k: v for k, v in per_object.items()
                if k.startswith("rabbitmq_channel_prefetch{")}
        assert sorted(ours.values()) == [0, 7]
        quiet.close()
        channel.close()
    finally:
        conn.close()
    _, values = scrape(f"{metered.prometheus_url}/metrics")
    assert values[confirm] == before  # kept when the channel closes
    assert values['rabbitmq_global_publishers{protocol="amqp091"}'] == 0
    assert values["rabbitmq_channel_messages_published_total"] == 0


@pytest.mark.rabbitmq
def test_metric_names_are_rabbitmqs(metered: Broker, rabbit_base: str) -> None:
    host = rabbit_base.split("//")[1].rsplit(":", 1)[0]
    try:
        socket.create_connection((host, RABBITMQ_PROMETHEUS_PORT), timeout=5).close()
    except OSError:
        pytest.skip("RabbitMQ's Prometheus plugin is not reachable")
    assert RABBITMQ_MANAGEMENT_PORT != RABBITMQ_PROMETHEUS_PORT
    theirs = names(scrape(f"http://{host}:{RABBITMQ_PROMETHEUS_PORT}/metrics")[1])
    theirs |= names(scrape(f"http://{host}:{RABBITMQ_PROMETHEUS_PORT}/metrics/per-object")[1])
    ours = names(scrape(f"{metered.prometheus_url}/metrics/per-object")[1])
    assert ours - theirs == set()
    assert len(ours) >= 25


@pytest.mark.rabbitmq
@pytest.mark.parametrize("path", ["/metrics", "/metrics/per-object"])
def test_dashboard_families_are_rabbitmqs(
    metered: Broker, rabbit_base: str, rabbitmq_url: str, path: str
) -> None:
    """The families the Overview dashboard and the channel, connection and queue panels
    query, with their types, are RabbitMQ's, with a client connected to each."""
    host = rabbit_base.split("//")[1].rsplit(":", 1)[0]
    try:
        socket.create_connection((host, RABBITMQ_PROMETHEUS_PORT), timeout=5).close()
    except OSError:
        pytest.skip("RabbitMQ's Prometheus plugin is not reachable")
    wanted = DASHBOARD | FIGURES
    seen = {}
    assert metered.prometheus_url is not None
    for name, url in (("rabbitmq", rabbitmq_url), ("kiltmq", metered.url)):
        conn = pika.BlockingConnection(pika.URLParameters(url))
        try:
            channel = conn.channel()
            channel.confirm_delivery()
            channel.basic_publish("", "nowhere", b"x")
            base = (f"http://{host}:{RABBITMQ_PROMETHEUS_PORT}" if name == "rabbitmq"
                    else metered.prometheus_url)
            seen[name] = {n: k for n, k in types(base + path).items() if n in wanted}
        finally:
            conn.close()
    assert seen["kiltmq"] == seen["rabbitmq"]
    assert set(seen["kiltmq"]) == wanted - (
        {"rabbitmq_alarms_file_descriptor_limit"} if path.endswith("per-object") else set()
    )


def test_a_taken_port_is_left_out_when_optional(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="kiltmq.broker"), Broker(
            port=0, management_port=port, prometheus_port=0, optional_services=["management"]
        ) as broker:
            assert broker.management_url is None
            assert broker.prometheus_url is not None
        assert f"cannot listen on 127.0.0.1:{port} for the management API" in caplog.text


def test_churn_and_dead_letter_counters(metered: Broker) -> None:
    _, before = scrape(f"{metered.prometheus_url}/metrics")
    conn = pika.BlockingConnection(pika.URLParameters(metered.url))
    try:
        channel = conn.channel()
        channel.exchange_declare("graveyard", "fanout")
        channel.queue_declare("graves")
        channel.queue_bind("graves", "graveyard")
        channel.queue_declare("mortal", arguments={"x-dead-letter-exchange": "graveyard"})
        channel.queue_declare("mortal", arguments={"x-dead-letter-exchange": "graveyard"})
        channel.queue_declare("dropped")
        for queue in ("mortal", "dropped"):
            channel.basic_publish("", queue, b"x")
            method, _, _ = channel.basic_get(queue)
            assert method is not None
            channel.basic_reject(method.delivery_tag, requeue=False)
        channel.basic_get("graves", auto_ack=True)
        for queue in ("graves", "mortal", "dropped"):
            channel.queue_delete(queue)
        channel.exchange_delete("graveyard")
        conn.channel().close()
    finally:
        conn.close()
    _, after = scrape(f"{metered.prometheus_url}/metrics")

    def grew(series: str) -> float:
        return after[series] - before.get(series, 0)

    assert grew("rabbitmq_connections_opened_total") == 1
    assert grew("rabbitmq_connections_closed_total") == 1
    assert grew("rabbitmq_channels_opened_total") == 2
    assert grew("rabbitmq_channels_closed_total") == 2
    assert grew("rabbitmq_queues_declared_total") == 4
    assert grew("rabbitmq_queues_created_total") == 3
    assert grew("rabbitmq_queues_deleted_total") == 3
    rejected = ('rabbitmq_global_messages_dead_lettered_rejected_total{'
                'queue_type="rabbit_classic_queue",dead_letter_strategy="%s"}')
    assert grew(rejected % "at_most_once") == 1
    assert grew(rejected % "disabled") == 1


def test_api_publishes_and_gets_count_in_the_global_counters(metered: Broker) -> None:
    """As RabbitMQ's, whose management API publishes (mandatory, in confirm mode) and
    gets on a channel of its own."""
    assert metered.management_url is not None
    api = Api(metered.management_url)
    metrics = f"{metered.prometheus_url}/metrics"
    _, before = scrape(metrics)
    v = "prometheus-http"
    api.put(f"/api/vhosts/{v}")
    try:
        api.put(f"/api/queues/{v}/pq", {})
        for key in ("pq", "nowhere"):
            api.post(f"/api/exchanges/{v}/amq.default/publish", {
                "properties": {}, "routing_key": key, "payload": "x",
                "payload_encoding": "string",
            })
        for mode in ("ack_requeue_true", "ack_requeue_false", "ack_requeue_false"):
            api.post(f"/api/queues/{v}/pq/get",
                     {"count": 1, "ackmode": mode, "encoding": "auto"})
        _, after = scrape(metrics)
    finally:
        api.delete(f"/api/vhosts/{v}")

    def grew(name: str, labels: str = AMQP_LABEL) -> float:
        series = f"rabbitmq_global_messages_{name}_total{{{labels}}}"
        return after[series] - before.get(series, 0)

    assert grew("received") == 2
    assert grew("received_confirm") == 2
    assert grew("confirmed") == 2
    assert grew("routed") == 1
    assert grew("unroutable_returned") == 1
    assert grew("delivered_get_manual_ack", CLASSIC_LABELS) == 1
    assert grew("delivered_get_auto_ack", CLASSIC_LABELS) == 1
    assert grew("redelivered", CLASSIC_LABELS) == 1
    assert grew("get_empty", CLASSIC_LABELS) == 1
