"""Celery Flower's broker tab against kiltmq: Flower's own RabbitMQ client
(``flower.utils.broker``) asks ``/api/queues/{vhost}`` as it does for RabbitMQ, and gets
the fields its page shows (name, messages, unacked, ready, consumers)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import pika
import pytest

from kiltmq.broker import Broker

from .api import Api, q
from .conftest import unique

broker_module = pytest.importorskip("flower.utils.broker")

#: What Flower's broker page reads of each queue (flower/templates/broker.html).
SHOWN = ("messages", "messages_unacknowledged", "messages_ready", "consumers")


def _flower_queues(amqp_url: str, api_base: str, names: list[str]) -> list[dict[str, Any]]:
    async def ask() -> list[dict[str, Any]]:
        flower = broker_module.Broker(amqp_url, http_api=f"{api_base}/api/")
        result: list[dict[str, Any]] = await flower.queues(names)
        return result

    return asyncio.run(ask())


def test_flower_reads_the_queues_of_a_vhost(kilt_broker: Broker, kilt: Api) -> None:
    v = unique("celery")
    assert kilt.put(f"/api/vhosts/{q(v)}").status == 201
    try:
        amqp = urlsplit(kilt_broker.url)
        amqp_url = f"amqp://guest:guest@{amqp.hostname}:{amqp.port}/{v}"
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            channel = conn.channel()
            channel.queue_declare("celery")
            channel.queue_declare("other")
            for _ in range(3):
                channel.basic_publish("", "celery", b"task")
            method, _, _ = channel.basic_get("celery")
            assert method is not None  # one taken, not acknowledged
            channel.basic_consume("other", lambda *_: None)
            queues = _flower_queues(amqp_url, kilt.base, ["celery", "other"])
        finally:
            conn.close()
    finally:
        kilt.delete(f"/api/vhosts/{q(v)}")
    shown = {x["name"]: tuple(x[k] for k in SHOWN) for x in queues}
    assert shown == {"celery": (3, 1, 2, 0), "other": (0, 0, 0, 1)}


@pytest.mark.rabbitmq
def test_flowers_request_is_rabbitmqs(rabbit_base: str, rabbitmq_url: str) -> None:
    rabbit = Api(rabbit_base)
    v = unique("celery")
    assert rabbit.put(f"/api/vhosts/{q(v)}").status == 201
    try:
        assert rabbit.put(f"/api/queues/{q(v)}/celery", {}).status == 201
        host = urlsplit(rabbitmq_url)
        amqp_url = f"amqp://guest:guest@{host.hostname}:{host.port or 5672}/{v}"
        [queue] = _flower_queues(amqp_url, rabbit_base, ["celery"])
    finally:
        rabbit.delete(f"/api/vhosts/{q(v)}")
    assert queue["name"] == "celery"  # the same request finds it (statistics come later)
