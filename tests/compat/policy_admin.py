"""Setting policies on either broker for the comparison tests: RabbitMQ through its HTTP
API (127.0.0.1:15672, guest/guest), kiltmq through its admin interface. Each test works
in a vhost of its own, created and deleted here."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any, Protocol

import pytest

from kiltmq.broker import Broker
from kiltmq.broker.admin import Admin

#: What the management API shows of the policies that apply to a queue.
POLICY_FIELDS = ("policy", "operator_policy", "effective_policy_definition")
#: How often RabbitMQ emits a queue's statistics (collect_statistics_interval), plus a
#: margin, in seconds.
STATS_INTERVAL = 5.5
#: How long after a policy change the management API surely shows it: a queue writes its
#: statistics every interval (a quorum queue on its leader's tick) and the management
#: plugin's collector picks them up on an interval of its own, so up to two intervals.
STATS_SETTLED = 2 * STATS_INTERVAL
RABBITMQ_API = os.environ.get("KILTMQ_RABBITMQ_API", "http://127.0.0.1:15672/api")


class PolicyHost(Protocol):
    """One broker, seen by a comparison test."""

    url: str
    vhost: str

    def set_policy(
        self, name: str, pattern: str, definition: dict[str, Any], *, priority: int = 0,
        apply_to: str = "all", operator: bool = False,
    ) -> None: ...

    def clear_policy(self, name: str, *, operator: bool = False) -> None: ...

    def queue_policy(self, name: str) -> dict[str, Any]:
        """The policy, operator policy and effective definition of queue ``name``, as
        the management API shows them."""
        ...

    def close(self) -> None: ...


def rabbitmq_api(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request to RabbitMQ's HTTP API: status and decoded JSON (or text)."""
    request = urllib.request.Request(
        RABBITMQ_API + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "content-type": "application/json",
            "authorization": "Basic " + base64.b64encode(b"guest:guest").decode(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            data = response.read()
            return response.status, json.loads(data) if data else None
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text


def rabbitmq_api_available() -> None:
    """Skip the test unless RabbitMQ's HTTP API answers."""
    try:
        status, _ = rabbitmq_api("GET", "/overview")
    except OSError as exc:
        pytest.skip(f"RabbitMQ's HTTP API is not reachable at {RABBITMQ_API}: {exc}")
    if status != 200:
        pytest.skip(f"RabbitMQ's HTTP API answered {status}")


def unique_vhost() -> str:
    return f"kiltmq-policy-{uuid.uuid4().hex[:10]}"


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class RabbitHost:
    """A fresh vhost on RabbitMQ, guest allowed everything in it."""

    def __init__(self, amqp_url: str) -> None:
        self.vhost = unique_vhost()
        self.url = amqp_url.rstrip("/") + "/" + _quote(self.vhost)
        self._path = _quote(self.vhost)
        self._changed = 0.0
        status, _ = rabbitmq_api("PUT", f"/vhosts/{self._path}", {})
        assert status in (201, 204), status
        status, _ = rabbitmq_api(
            "PUT", f"/permissions/{self._path}/guest",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )
        assert status in (201, 204), status

    def set_policy(
        self, name: str, pattern: str, definition: dict[str, Any], *, priority: int = 0,
        apply_to: str = "all", operator: bool = False,
    ) -> None:
        kind = "operator-policies" if operator else "policies"
        body = {"pattern": pattern, "definition": definition, "priority": priority,
                "apply-to": apply_to}
        status, answer = rabbitmq_api("PUT", f"/{kind}/{self._path}/{_quote(name)}", body)
        assert status in (201, 204), answer
        self._changed = time.monotonic()

    def clear_policy(self, name: str, *, operator: bool = False) -> None:
        kind = "operator-policies" if operator else "policies"
        status, answer = rabbitmq_api("DELETE", f"/{kind}/{self._path}/{_quote(name)}")
        assert status == 204, answer
        self._changed = time.monotonic()

    def queue_policy(self, name: str) -> dict[str, Any]:
        # RabbitMQ's management API shows a queue's policies from its statistics:
        # wait for those of after the last change
        time.sleep(max(0.0, self._changed + STATS_SETTLED - time.monotonic()))
        deadline = time.monotonic() + STATS_INTERVAL
        while True:
            status, answer = rabbitmq_api("GET", f"/queues/{self._path}/{_quote(name)}")
            assert status == 200, answer
            if "effective_policy_definition" in answer or time.monotonic() > deadline:
                return {key: answer.get(key) for key in POLICY_FIELDS}
            time.sleep(0.2)

    def close(self) -> None:
        rabbitmq_api("DELETE", f"/vhosts/{self._path}")


class KiltHost:
    """A fresh vhost on an embedded kiltmq broker, guest allowed everything in it."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.admin = Admin(broker)
        self.vhost = unique_vhost()
        self.url = broker.url.rstrip("/") + "/" + _quote(self.vhost)
        broker.call_in_loop(lambda: self.admin.add_vhost(self.vhost, users=["guest"]))

    def set_policy(
        self, name: str, pattern: str, definition: dict[str, Any], *, priority: int = 0,
        apply_to: str = "all", operator: bool = False,
    ) -> None:
        self.broker.call_in_loop(lambda: self.admin.set_policy(
            self.vhost, name, pattern, definition, priority=priority, apply_to=apply_to,
            operator=operator,
        ))

    def clear_policy(self, name: str, *, operator: bool = False) -> None:
        self.broker.call_in_loop(
            lambda: self.admin.clear_policy(self.vhost, name, operator=operator)
        )

    def queue_policy(self, name: str) -> dict[str, Any]:
        (stats,) = [
            s for s in self.broker.call_in_loop(lambda: self.admin.queues(self.vhost))
            if s.name == name
        ]
        return {key: getattr(stats, key) for key in POLICY_FIELDS}

    def close(self) -> None:
        self.broker.call_in_loop(lambda: self.admin.delete_vhost(self.vhost))
