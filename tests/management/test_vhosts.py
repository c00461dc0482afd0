"""Vhost descriptions and tags through the management API: kept across a restart, and
loaded from a later RabbitMQ's definitions export."""

from __future__ import annotations

from pathlib import Path

from kiltmq.broker import Broker
from kiltmq.broker.store import SQLiteStore

from .api import Api


def _api(broker: Broker) -> Api:
    assert broker.management_url is not None
    return Api(broker.management_url)


def test_descriptions_and_tags_survive_a_restart(tmp_path: Path) -> None:
    with Broker(port=0, management_port=0, store=SQLiteStore(tmp_path)) as broker:
        api = _api(broker)
        reply = api.put("/api/vhosts/shop", {"description": "Kilts", "tags": "retail,eu",
                                             "default_queue_type": "classic"})
        assert reply.status == 201
    with Broker(port=0, management_port=0, store=SQLiteStore(tmp_path)) as broker:
        shop = _api(broker).get("/api/vhosts/shop").body
        assert (shop["description"], shop["tags"]) == ("Kilts", ["retail", "eu"])
        assert shop["metadata"] == {"description": "Kilts", "tags": ["retail", "eu"]}
        assert shop["default_queue_type"] == "classic"
        assert _api(broker).get("/api/vhosts/%2F").body["default_queue_type"] == "undefined"


def test_a_later_rabbitmq_export_brings_its_metadata(kilt: Api) -> None:
    definitions = {"vhosts": [{
        "name": "described", "description": "From 3.11", "tags": ["x"],
        "metadata": {"description": "From 3.11", "tags": ["x"]},
        "default_queue_type": "classic",
    }]}
    try:
        assert kilt.post("/api/definitions", definitions).status == 204
        got = kilt.get("/api/vhosts/described?columns=description,tags").body
        assert got == {"description": "From 3.11", "tags": ["x"]}
    finally:
        kilt.delete("/api/vhosts/described")
