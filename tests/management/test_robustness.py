"""Random request bodies for every endpoint that takes one: always an answer from the
API (never a server error), and the broker keeps serving."""

from __future__ import annotations

import random
from typing import Any

import pika

from kiltmq.broker import Broker

from .api import Api, q

VALUES: list[Any] = [
    None, True, False, 0, -1, 2**70, 1.5, "", "x", "true", [], [1, "a"], {}, {"a": 1},
    {"x-max-length": "a"}, "amq.x", "\u00e9", "a" * 300,
]
KEYS = [
    "durable", "auto_delete", "internal", "arguments", "type", "routing_key", "properties",
    "payload", "payload_encoding", "count", "ackmode", "encoding", "truncate", "password",
    "password_hash", "tags", "configure", "write", "read", "value", "hashing_algorithm",
]
REQUESTS = [
    ("PUT", "/api/queues/{v}/fq"), ("PUT", "/api/exchanges/{v}/fx"),
    ("POST", "/api/bindings/{v}/e/fx/q/fq"), ("POST", "/api/bindings/{v}/e/amq.direct/e/fx"),
    ("POST", "/api/exchanges/{v}/amq.default/publish"), ("POST", "/api/queues/{v}/fq/get"),
    ("PUT", "/api/users/mgmt-fuzz"), ("PUT", "/api/permissions/{v}/mgmt-fuzz"),
    ("PUT", "/api/vhost-limits/{v}/max-queues"), ("DELETE", "/api/queues/{v}/fq"),
    ("DELETE", "/api/exchanges/{v}/fx"),
]
PUBLISHABLE = {
    "routing_key": "fq", "payload": "x", "payload_encoding": "string", "count": 1,
    "ackmode": "ack_requeue_true", "encoding": "auto",
}


def test_random_bodies_get_answers(kilt: Api, kilt_broker: Broker, vhost: str) -> None:
    chance = random.Random(20261206)
    statuses: dict[int, int] = {}
    V = q(vhost)
    try:
        for i in range(600):
            if i % 50 == 0:
                kilt.put(f"/api/queues/{V}/fq", {})
                kilt.put(f"/api/exchanges/{V}/fx", {})
            method, path = chance.choice(REQUESTS)
            body = {k: chance.choice(VALUES) for k in chance.sample(KEYS, chance.randint(0, 6))}
            if chance.random() < 0.5:
                headers = chance.choice(VALUES)
                body.update(PUBLISHABLE, properties={"headers": headers})
            reply = kilt.call(method, path.format(v=V), body)
            assert reply.status < 500, (method, path, body, reply.text)
            statuses[reply.status] = statuses.get(reply.status, 0) + 1
    finally:
        kilt.delete("/api/users/mgmt-fuzz")
    assert {200, 201, 204, 400} <= set(statuses)
    conn = pika.BlockingConnection(pika.URLParameters(kilt_broker.url + V))
    try:
        channel = conn.channel()
        channel.queue_declare("after")
        channel.basic_publish("", "after", b"still here")
        assert channel.basic_get("after", auto_ack=True)[2] == b"still here"
    finally:
        conn.close()
