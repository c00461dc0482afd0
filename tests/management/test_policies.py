"""Policies over HTTP on kiltmq: what queues and exchanges show once policies apply (the
answers RabbitMQ gives at once are compared in the conversation of test_compat)."""

from __future__ import annotations

from .api import Api, q


def test_queues_and_exchanges_show_the_policies_that_apply(kilt: Api, vhost: str) -> None:
    v = q(vhost)
    assert kilt.put(f"/api/queues/{v}/orders", {}).status == 201
    assert kilt.put(f"/api/exchanges/{v}/shop", {"type": "topic"}).status == 201
    plain = kilt.get(f"/api/queues/{v}/orders").body
    assert (plain["policy"], plain["operator_policy"]) == (None, None)
    assert plain["effective_policy_definition"] == {}
    assert kilt.put(f"/api/policies/{v}/cap", {
        "pattern": ".*", "definition": {"max-length": 10, "alternate-exchange": "amq.fanout"},
    }).status == 201
    assert kilt.put(f"/api/operator-policies/{v}/ops", {
        "pattern": "^orders$", "definition": {"max-length": 3, "message-ttl": 1000},
        "apply-to": "queues",
    }).status == 201
    queue = kilt.get(f"/api/queues/{v}/orders").body
    assert (queue["policy"], queue["operator_policy"]) == ("cap", "ops")
    assert queue["effective_policy_definition"] == {
        "alternate-exchange": "amq.fanout", "max-length": 3, "message-ttl": 1000,
    }
    listed = kilt.get(f"/api/queues/{v}?columns=name,policy,operator_policy").body
    assert listed == [{"name": "orders", "policy": "cap", "operator_policy": "ops"}]
    exchanges = kilt.get(f"/api/exchanges/{v}?columns=name,policy").body
    assert {"name": "shop", "policy": "cap"} in exchanges
    assert kilt.delete(f"/api/operator-policies/{v}/ops").status == 204
    assert kilt.delete(f"/api/policies/{v}/cap").status == 204
    cleared = kilt.get(f"/api/queues/{v}/orders").body
    assert (cleared["policy"], cleared["operator_policy"]) == (None, None)
    assert "policy" not in kilt.get(f"/api/exchanges/{v}/shop").body


def test_a_policy_takes_effect(kilt: Api, vhost: str) -> None:
    v = q(vhost)
    assert kilt.put(f"/api/queues/{v}/short", {}).status == 201
    policy = {"pattern": "^short$", "definition": {"max-length": 1}, "apply-to": "queues"}
    assert kilt.put(f"/api/policies/{v}/one", policy).status == 201
    for body in ("a", "b"):
        assert kilt.post(f"/api/exchanges/{v}/amq.default/publish", {
            "properties": {}, "routing_key": "short", "payload": body,
            "payload_encoding": "string",
        }).body == {"routed": True}
    got = kilt.post(f"/api/queues/{v}/short/get", {
        "count": 5, "ackmode": "ack_requeue_false", "encoding": "auto",
    }).body
    assert [m["payload"] for m in got] == ["b"]
