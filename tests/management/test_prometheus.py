"""Prometheus metrics under RabbitMQ's names."""

from __future__ import annotations

import logging
import re
import socket
import urllib.request
from collections.abc import Iterator

import pika
import pytest

from kiltmq.broker import Broker

from .conftest import RABBITMQ_MANAGEMENT_PORT

RABBITMQ_PROMETHEUS_PORT = 15692
SERIES = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


def scrape(url: str) -> tuple[str, dict[str, float]]:
    with urllib.request.urlopen(url, timeout=30) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = SERIES.match(line)
        assert match is not None, line
        values[match[1] + (match[2] or "")] = float(match[3])
    return content_type, values


def names(values: dict[str, float]) -> set[str]:
    return {key.split("{")[0] for key in values}


@pytest.fixture(scope="module")
def metered() -> Iterator[Broker]:
    with Broker(port=0, prometheus_port=0) as broker:
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
    finally:
        conn.close()


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
