"""RabbitMQ's own command-line client, rabbitmqadmin, against kiltmq's management API."""

from __future__ import annotations

import json
import shutil
import subprocess
from urllib.parse import urlsplit

import pika
import pytest

from kiltmq.broker import Broker

from .api import Api, q
from .conftest import unique

RABBITMQADMIN = shutil.which("rabbitmqadmin") or "/usr/bin/rabbitmqadmin"

pytestmark = pytest.mark.skipif(
    not shutil.which(RABBITMQADMIN), reason="rabbitmqadmin is not installed"
)


def admin(broker: Broker, *args: str, vhost: str | None = None) -> str:
    url = urlsplit(broker.management_url or "")
    command = [
        RABBITMQADMIN, "-H", url.hostname or "", "-P", str(url.port), "-u", "guest",
        "-p", "guest",
    ]
    if vhost is not None:
        command += ["-V", vhost]
    result = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_declare_publish_get_and_list(kilt_broker: Broker, kilt: Api) -> None:
    v = unique("admin")
    assert admin(kilt_broker, "declare", "vhost", f"name={v}").strip() == "vhost declared"
    try:
        admin(kilt_broker, "declare", "queue", "name=orders", "durable=true", vhost=v)
        admin(kilt_broker, "declare", "exchange", "name=shop", "type=topic", vhost=v)
        admin(
            kilt_broker, "declare", "binding", "source=shop", "destination=orders",
            "routing_key=order.*", vhost=v,
        )
        published = admin(
            kilt_broker, "publish", "exchange=shop", "routing_key=order.new",
            "payload=kilt #1", vhost=v,
        )
        assert published.strip() == "Message published"
        queues = json.loads(admin(kilt_broker, "-f", "raw_json", "list", "queues", vhost=v))
        assert [(x["name"], x["durable"], x["messages"]) for x in queues] == [
            ("orders", True, 1)
        ]
        exchanges = json.loads(
            admin(kilt_broker, "-f", "raw_json", "list", "exchanges", vhost=v)
        )
        assert {"name": "shop", "type": "topic"}.items() <= next(
            x for x in exchanges if x["name"] == "shop"
        ).items()
        bindings = json.loads(admin(kilt_broker, "-f", "raw_json", "list", "bindings", vhost=v))
        assert [(b["source"], b["destination"], b["routing_key"]) for b in bindings] == [
            ("", "orders", "orders"), ("shop", "orders", "order.*"),
        ]
        got = json.loads(
            admin(
                kilt_broker, "-f", "raw_json", "get", "queue=orders",
                "ackmode=ack_requeue_false", vhost=v,
            )
        )
        assert [(m["payload"], m["routing_key"], m["redelivered"]) for m in got] == [
            ("kilt #1", "order.new", False)
        ]
        assert kilt.get(f"/api/queues/{q(v)}/orders").body["messages"] == 0
        admin(kilt_broker, "delete", "queue", "name=orders", vhost=v)
        assert kilt.get(f"/api/queues/{q(v)}/orders").status == 404
    finally:
        admin(kilt_broker, "delete", "vhost", f"name={v}")
    assert kilt.get(f"/api/vhosts/{q(v)}").status == 404


def test_close_a_connection(kilt_broker: Broker) -> None:
    params = pika.URLParameters(kilt_broker.url)
    params.client_properties = {"connection_name": "to-be-closed"}
    conn = pika.BlockingConnection(params)
    try:
        channel = conn.channel()
        channel.queue_declare("watched", exclusive=True)
        channel.basic_consume("watched", lambda *a: None, consumer_tag="admin-watch")
        listed = json.loads(admin(kilt_broker, "-f", "raw_json", "list", "connections"))
        [name] = [c["name"] for c in listed if c.get("user_provided_name") == "to-be-closed"]
        channels = json.loads(admin(kilt_broker, "-f", "raw_json", "list", "channels"))
        assert [c["connection_details"]["name"] for c in channels] == [name]
        consumers = json.loads(admin(kilt_broker, "-f", "raw_json", "list", "consumers"))
        assert [c["consumer_tag"] for c in consumers] == ["admin-watch"]
        admin(kilt_broker, "close", "connection", f"name={name}")
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
            conn.process_data_events(time_limit=5)
            conn.process_data_events(time_limit=5)
        assert info.value.reply_code == 320
        assert json.loads(admin(kilt_broker, "-f", "raw_json", "list", "connections")) == []
    finally:
        if conn.is_open:
            conn.close()


def test_overview_nodes_and_users(kilt_broker: Broker) -> None:
    overview = json.loads(admin(kilt_broker, "-f", "raw_json", "show", "overview"))
    assert overview[0]["rabbitmq_version"] == "3.10.8"
    nodes = json.loads(admin(kilt_broker, "-f", "raw_json", "list", "nodes"))
    assert nodes[0]["running"] is True
    users = json.loads(admin(kilt_broker, "-f", "raw_json", "list", "users"))
    assert ("guest", ["administrator"]) in [(u["name"], u["tags"]) for u in users]
