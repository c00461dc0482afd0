"""Definitions over HTTP: ``/api/definitions`` export and import, with rabbitmqadmin's
``export`` and ``import``, and a RabbitMQ export loaded into kiltmq and exported again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiltmq.broker import Broker

from .api import Api, q
from .conftest import unique
from .test_rabbitmqadmin import admin, pytestmark  # noqa: F401  (rabbitmqadmin needed)


def _topology(api: Api, v: str) -> None:
    assert api.put(f"/api/vhosts/{q(v)}").status == 201
    assert api.put(f"/api/queues/{q(v)}/orders", {"durable": True}).status == 201
    assert api.put(f"/api/exchanges/{q(v)}/shop", {"type": "topic", "durable": True}).status == 201
    assert api.post(f"/api/bindings/{q(v)}/e/shop/q/orders", {"routing_key": "o.*"}).status == 201
    policy = {"pattern": "^orders$", "definition": {"max-length": 10}, "apply-to": "queues"}
    assert api.put(f"/api/policies/{q(v)}/cap", policy).status == 201
    topic = {"exchange": "shop", "write": "^o\\.", "read": "^{username}\\."}
    assert api.put(f"/api/topic-permissions/{q(v)}/guest", topic).status == 201


def test_rabbitmqadmin_exports_and_imports(
    kilt_broker: Broker, kilt: Api, tmp_path: Path
) -> None:
    v = unique("defs")
    _topology(kilt, v)
    try:
        path = tmp_path / "defs.json"
        admin(kilt_broker, "export", str(path))
        exported = json.loads(path.read_text())
        assert {"name": v} in exported["vhosts"]
        assert [x["name"] for x in exported["queues"] if x["vhost"] == v] == ["orders"]
        assert [p["name"] for p in exported["policies"] if p["vhost"] == v] == ["cap"]
        assert kilt.delete(f"/api/vhosts/{q(v)}").status == 204
        admin(kilt_broker, "import", str(path))
        queue = kilt.get(f"/api/queues/{q(v)}/orders").body
        assert (queue["durable"], queue["policy"]) == (True, "cap")
        assert queue["effective_policy_definition"] == {"max-length": 10}
        bindings = kilt.get(f"/api/exchanges/{q(v)}/shop/bindings/source").body
        assert [(b["destination"], b["routing_key"]) for b in bindings] == [("orders", "o.*")]
        one = tmp_path / "vhost.json"
        admin(kilt_broker, "export", str(one), vhost=v)
        content = json.loads(one.read_text())
        assert sorted(content) == [
            "bindings", "exchanges", "parameters", "policies", "queues", "rabbit_version",
        ]
        assert "vhost" not in content["queues"][0]
    finally:
        kilt.delete(f"/api/vhosts/{q(v)}")


def test_download_names_the_file(kilt: Api, vhost: str) -> None:
    reply = kilt.get("/api/definitions?download=kilt%20defs.json")
    assert reply.status == 200
    assert reply.headers["content-disposition"] == "attachment; filename=kilt defs.json"
    assert "content-disposition" not in kilt.get(f"/api/definitions/{q(vhost)}").headers


def test_web_form_upload_imports(kilt: Api, vhost: str) -> None:
    definitions = json.dumps({"queues": [{"name": "uploaded", "durable": False,
                                          "auto_delete": False, "arguments": {}}]})
    boundary = "kiltboundary"
    form = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
        f"filename=\"d.json\"\r\nContent-Type: application/json\r\n\r\n{definitions}\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    reply = kilt.call(
        "POST", f"/api/definitions/{q(vhost)}", raw=form,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert reply.status == 204, reply.text
    assert kilt.get(f"/api/queues/{q(vhost)}/uploaded").status == 200


@pytest.mark.rabbitmq
def test_a_rabbitmq_export_loads_and_comes_back_out(rabbit: Api, kilt: Api) -> None:
    v = unique("fromrabbit")
    _topology(rabbit, v)
    try:
        theirs = rabbit.get(f"/api/definitions/{q(v)}").body
        full = rabbit.get("/api/definitions").body
    finally:
        rabbit.delete(f"/api/vhosts/{q(v)}")
    assert kilt.put(f"/api/vhosts/{q(v)}").status == 201
    try:
        reply = kilt.post(f"/api/definitions/{q(v)}", theirs)
        assert reply.status == 204, reply.text
        ours = kilt.get(f"/api/definitions/{q(v)}").body
        for section in ("policies", "queues", "exchanges", "bindings"):
            assert ours[section] == theirs[section], section
    finally:
        kilt.delete(f"/api/vhosts/{q(v)}")
    with Broker(port=0, management_port=0) as fresh:
        assert fresh.management_url is not None
        api = Api(fresh.management_url)
        reply = api.post("/api/definitions", full)
        assert reply.status == 204, reply.text
        again = api.get("/api/definitions").body
        assert {"user": "guest", "vhost": v, "exchange": "shop", "write": "^o\\.",
                "read": "^{username}\\."} in full["topic_permissions"]
        for section in (
            "users", "vhosts", "permissions", "topic_permissions", "policies", "queues",
            "exchanges", "bindings",
        ):
            assert sorted(map(json.dumps, again[section])) == sorted(
                map(json.dumps, full[section])
            ), section


def test_only_administrators_export(kilt: Api) -> None:
    name = unique("pm")
    assert kilt.put(f"/api/users/{name}", {"password": "pw", "tags": "policymaker"}).status == 201
    try:
        reply = kilt.as_user(name, "pw").get("/api/definitions")
        assert (reply.status, reply.body["reason"]) == (401, "Not administrator user")
    finally:
        kilt.delete(f"/api/users/{name}")
