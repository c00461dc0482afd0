"""The node's health checks that depend on its listeners and certificates, its memory
breakdown and its login attempts, on kiltmq (the conversation compares their shapes
with RabbitMQ's)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest
from tests.broker.certs import CertificateAuthority

from kiltmq.broker import Broker

from .api import Api, q


def _node(api: Api) -> str:
    return q(api.get("/api/overview").body["node"])


def test_certificates_expiring_and_the_amqps_listener(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "ca")  # both valid for two days
    server = ca.issue("server", "/CN=localhost", server=True)
    with Broker(port=0, tls_port=0, tls_cert=server.cert, tls_key=server.key,
                tls_ca=ca.cert, management_port=0) as broker:
        assert broker.management_url is not None
        api = Api(broker.management_url)
        expiry = "/api/health/checks/certificate-expiration"
        assert api.get(f"{expiry}/1/days").body == {"status": "ok"}
        reply = api.get(f"{expiry}/1/weeks")
        assert reply.status == 503
        assert reply.body["reason"] == "Certificates expiring"
        [expiring] = reply.body["expired"]
        assert expiring["port"] == broker.tls_port
        assert expiring["certfile"] == str(server.cert)
        assert expiring["cacertfile"] == str(ca.cert)
        for key in ("certfile_expires_on", "cacertfile_expires_on"):
            [when] = expiring[key]
            day, clock = when.split(" ")
            end = datetime.strptime(f"{day} {clock}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            assert 1 < (end - datetime.now(UTC)).total_seconds() / 86400 <= 2
        listener = api.get("/api/health/checks/protocol-listener/amqps")
        assert listener.body == {"status": "ok", "protocol": "amqp/ssl"}
    with Broker(port=0, management_port=0) as plain:
        assert plain.management_url is not None
        api = Api(plain.management_url)
        assert api.get(f"{expiry}/1/weeks").body == {"status": "ok"}  # no TLS listener
        reply = api.get("/api/health/checks/protocol-listener/amqps")
        assert reply.status == 503
        assert reply.body == {"status": "failed", "reason": "No active listener",
                              "missing": "amqp/ssl", "protocols": ["http", "amqp"]}


def test_login_attempts_are_counted_and_reset(kilt: Api, kilt_broker: Broker) -> None:
    node = _node(kilt)
    kilt.delete(f"/api/auth/attempts/{node}")
    assert kilt.get(f"/api/auth/attempts/{node}").body == [
        {"protocol": "http", "auth_attempts": 1, "auth_attempts_failed": 0,
         "auth_attempts_succeeded": 1},  # this request's own
    ]
    assert kilt.as_user("guest", "wrong").get("/api/overview").status == 401
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(
            kilt_broker.url.replace("guest:guest", "guest:wrong")))
    pika.BlockingConnection(pika.URLParameters(kilt_broker.url)).close()
    counted = {a["protocol"]: a for a in kilt.get(f"/api/auth/attempts/{node}").body}
    assert counted["http"]["auth_attempts_failed"] == 1
    assert counted["http"]["auth_attempts_succeeded"] == 2  # the two GETs
    assert counted["amqp091"] == {"protocol": "amqp091", "auth_attempts": 2,
                                  "auth_attempts_failed": 1, "auth_attempts_succeeded": 1}
    assert kilt.delete(f"/api/auth/attempts/{node}").status == 204
    assert kilt.delete("/api/auth/attempts/nobody@nowhere").status == 404


def test_node_memory_counts_the_queued_messages(kilt: Api, vhost: str) -> None:
    node = _node(kilt)
    before = kilt.get(f"/api/nodes/{node}/memory").body["memory"]
    kilt.put(f"/api/queues/{q(vhost)}/big", {})
    body = "x" * 200_000
    for _ in range(5):
        kilt.post(f"/api/exchanges/{q(vhost)}/amq.default/publish",
                  {"properties": {}, "routing_key": "big", "payload": body,
                   "payload_encoding": "string"})
    after = kilt.get(f"/api/nodes/{node}/memory").body["memory"]
    assert after["queue_procs"] - before["queue_procs"] >= 5 * 200_000
    assert after["strategy"] == "rss"
    parts = sum(v for k, v in after.items() if k not in ("strategy", "total"))
    assert parts == after["total"]["rss"]
    relative = kilt.get(f"/api/nodes/{node}/memory/relative").body["memory"]
    assert relative["total"] == 100 and relative["queue_procs"] >= 1
