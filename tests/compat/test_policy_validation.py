"""Policies RabbitMQ refuses, kiltmq refuses with the same reason: each case is sent to
RabbitMQ's HTTP API and to kiltmq's policy parser."""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from kiltmq.broker.policy import PolicyError, parse_policy

from .policy_admin import rabbitmq_api, rabbitmq_api_available, unique_vhost

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(120)]

#: (body of PUT /api/policies/<vhost>/<name>, operator policy?)
REFUSED: list[tuple[dict[str, Any], bool]] = [
    ({"pattern": "^q", "definition": {"max-length": -1}}, False),
    ({"pattern": "^q", "definition": {"max-length": "a"}}, False),
    ({"pattern": "^q", "definition": {"max-length": 'say "a"\n\\'}}, False),
    ({"pattern": "^q", "definition": {"max-length-bytes": 1.5}}, False),
    ({"pattern": "^q", "definition": {"message-ttl": -1}}, False),
    ({"pattern": "^q", "definition": {"message-ttl": 1e3}}, False),
    ({"pattern": "^q", "definition": {"expires": 0}}, False),
    ({"pattern": "^q", "definition": {"overflow": "bad"}}, False),
    ({"pattern": "^q", "definition": {"alternate-exchange": 1}}, False),
    ({"pattern": "^q", "definition": {"dead-letter-exchange": True}}, False),
    ({"pattern": "^q", "definition": {"delivery-limit": 1.0}}, False),
    ({"pattern": "^q", "definition": {"queue-mode": "x"}}, False),
    ({"pattern": "^q", "definition": {"max-priority": 5}}, False),
    ({"pattern": "^q", "definition": {"x-max-priority": 5}}, False),
    ({"pattern": "^q", "definition": {"consumer-timeout": 1000}}, False),
    ({"pattern": "^q", "definition": {"foo": 1, "bar": "x"}}, False),
    ({"pattern": "^q", "definition": {"max-length": 1, "foo": 2, "message-ttl": -5}}, False),
    ({"pattern": "^q", "definition": {"ha-mode": "exactly"}}, False),
    ({"pattern": "^q", "definition": {"ha-params": 2}}, False),
    ({"pattern": "^q", "definition": {"ha-mode": "all", "ha-params": 2}}, False),
    ({"pattern": "^q", "definition": {"ha-mode": "all", "ha-sync-mode": "x"}}, False),
    ({"pattern": "^q", "definition": {}}, False),
    ({"pattern": "^q", "definition": {"max-length": 1}, "priority": "5"}, False),
    ({"pattern": "^q", "definition": {"max-length": 1}, "priority": True}, False),
    ({"pattern": 5, "definition": {"max-length": 1}}, False),
    ({"pattern": "a(", "definition": {"max-length": 1}}, False),
    ({"pattern": "^q", "definition": {"max-length": 1}, "apply-to": "bad"}, False),
    ({"pattern": "^q", "definition": {"queue-mode": "lazy"}}, True),
    ({"pattern": "^q", "definition": {"ha-mode": "all"}}, True),
    ({"pattern": "^q", "definition": {"max-length": -1}}, True),
]
#: definitions with faults in keys that RabbitMQ checks in different modules: which fault it
#: reports depends on the order of its validator registry, which differs between nodes
SEVERAL_FAULTS: list[dict[str, Any]] = [
    {"ha-mode": "bad", "max-length": -1},
    {"ha-params": 2, "message-ttl": -1},
]
ACCEPTED: list[tuple[dict[str, Any], bool]] = [
    ({"pattern": "^q", "definition": {"dead-letter-routing-key": "k"}}, False),
    ({"pattern": "^q", "definition": {"delivery-limit": 3, "queue-mode": "lazy"}}, False),
    ({"pattern": "^q", "definition": {"ha-mode": "exactly", "ha-params": 2}}, False),
    ({"pattern": "^q", "definition": {"max-length": 1}, "priority": 1.5}, False),
    ({"pattern": "^q", "definition": {"max-in-memory-length": 3, "expires": 1}}, True),
]


@pytest.fixture(scope="module")
def rabbit_vhost() -> Iterator[str]:
    rabbitmq_api_available()
    vhost = unique_vhost()
    path = urllib.parse.quote(vhost, safe="")
    rabbitmq_api("PUT", f"/vhosts/{path}", {})
    try:
        yield path
    finally:
        rabbitmq_api("DELETE", f"/vhosts/{path}")


def kiltmq_reason(body: dict[str, Any], operator: bool) -> str | None:
    try:
        parse_policy(
            "v", "p", body.get("pattern"), body.get("definition"),
            priority=body.get("priority", 0), apply_to=body.get("apply-to", "all"),
            operator=operator,
        )
    except PolicyError as error:
        return error.reason
    return None


def rabbitmq_reason(vhost: str, body: dict[str, Any], operator: bool) -> str | None:
    kind = "operator-policies" if operator else "policies"
    status, answer = rabbitmq_api("PUT", f"/{kind}/{vhost}/p", body)
    if status in (201, 204):
        rabbitmq_api("DELETE", f"/{kind}/{vhost}/p")
        return None
    assert status == 400, (status, answer)
    return html.unescape(answer["reason"])


@pytest.mark.parametrize(("body", "operator"), REFUSED + ACCEPTED)
def test_same_verdict_and_reason_as_rabbitmq(
    rabbit_vhost: str, body: dict[str, Any], operator: bool
) -> None:
    expected = rabbitmq_reason(rabbit_vhost, body, operator)
    assert ((body, operator) in REFUSED) == (expected is not None)
    assert kiltmq_reason(body, operator) == expected


@pytest.mark.parametrize("definition", SEVERAL_FAULTS)
def test_one_of_several_faults_is_reported_as_rabbitmq_would(
    rabbit_vhost: str, definition: dict[str, Any]
) -> None:
    alone = {
        rabbitmq_reason(rabbit_vhost, {"pattern": "^q", "definition": {key: value}}, False)
        for key, value in definition.items()
    }
    assert None not in alone and len(alone) == len(definition)
    body = {"pattern": "^q", "definition": definition}
    assert rabbitmq_reason(rabbit_vhost, body, False) in alone
    assert kiltmq_reason(body, False) in alone
