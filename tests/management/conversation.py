"""One HTTP conversation with the management API, recorded so that RabbitMQ's and
kiltmq's can be compared: each step's status code and what clients read of the reply
(error bodies in full, the keys of objects, the values that must agree), with the
conversation's own names replaced by placeholders."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pika

from kiltmq.client.blocking import connect
from kiltmq.protocol.spec import BasicProperties

from .api import Api, Reply, q
from .conversation_topics import topic_permissions

Step = tuple[str, int, Any]

#: Keys of a queue, an exchange, a binding, a vhost, a user, a permission that clients
#: read and that both brokers show at once (RabbitMQ adds its statistics later).
QUEUE_KEYS = {"name", "vhost", "durable", "auto_delete", "exclusive", "arguments", "node"}
EXCHANGE_KEYS = {"name", "vhost", "type", "durable", "auto_delete", "internal", "arguments"}
BINDING_KEYS = {
    "source", "vhost", "destination", "destination_type", "routing_key", "arguments",
    "properties_key",
}
VHOST_KEYS = {"name", "tracing", "description", "tags", "metadata", "default_queue_type"}
USER_KEYS = {"name", "password_hash", "hashing_algorithm", "tags", "limits"}
PAGE_KEYS = {
    "filtered_count", "item_count", "items", "page", "page_count", "page_size", "total_count",
}


def keys(value: Any, wanted: set[str]) -> Any:
    """The keys of ``value`` (or of each item of it) among ``wanted``."""
    if isinstance(value, list):
        return [keys(v, wanted) for v in value]
    if isinstance(value, dict):
        return sorted(k for k in value if k in wanted)
    return value


class Recorder:
    def __init__(self, api: Api, names: dict[str, str]) -> None:
        self.api = api
        self.names = names
        self.steps: list[Step] = []

    def _clean(self, value: Any) -> Any:
        text = json.dumps(value)
        for name, placeholder in sorted(self.names.items(), key=lambda i: -len(i[0])):
            text = text.replace(name, placeholder)
        return json.loads(text)

    def __call__(
        self,
        label: str,
        reply: Reply,
        summary: Callable[[Any], Any] | None = None,
    ) -> Reply:
        body = reply.body
        if isinstance(body, dict) and "error" in body and set(body) == {"error", "reason"}:
            shown: Any = body
        elif summary is not None:
            shown = summary(body)
        else:
            shown = None
        self.steps.append((label, reply.status, self._clean(shown)))
        return reply


def _get_items(body: Any) -> Any:
    return [
        {k: m[k] for k in (
            "payload", "payload_encoding", "payload_bytes", "redelivered", "exchange",
            "routing_key", "message_count", "properties",
        )}
        for m in body
    ]


def run(api: Api, amqp_port: int) -> list[Step]:
    """The conversation; leaves nothing behind when it completes."""
    tag = uuid.uuid4().hex[:8]
    v = f"mgmt-compat-{tag}"
    mon, plain = f"mgmt-mon-{tag}", f"mgmt-plain-{tag}"
    # a vhost with nothing in it, and a user with the management tag that may use only it
    seen, mgr = f"mgmt-seen-{tag}", f"mgmt-mgr-{tag}"
    # an exchange type no node has seen: RabbitMQ's text differs once it has ("invalid"
    # rather than "unknown exchange type", whether the name exists as an Erlang atom)
    bad_type = f"no-such-type-{tag}"
    names = {v: "<vhost>", mon: "<mon>", plain: "<plain>", bad_type: "<type>",
             seen: "<seen>", mgr: "<mgr>"}
    r = Recorder(api, names)
    V = q(v)
    try:
        _topology(r, api, V, bad_type)
        _messages(r, api, V)
        _dead_letters(r, api, V, v, amqp_port)
        _overview_of_a_vhost(r, api, q(seen), mgr)
        _lists(r, api, V)
        _users(r, api, V, v, mon, plain)
        _policies(r, api, V, mon)
        _definitions(r, api, V)
        _parameters(r, api, V, v, mon)
        _without_stats(r, api, V, amqp_port)
        _node_routes(r, api)
        _teardown(r, api, V, amqp_port)
    finally:
        for user in (mon, plain, mgr):
            api.delete(f"/api/users/{user}")
        api.delete(f"/api/vhosts/{V}")
        api.delete(f"/api/vhosts/{q(seen)}")
    r("vhost gone", api.delete(f"/api/vhosts/{V}"))
    return r.steps


#: What of /api/overview depends on who asks and on ?disable_stats.
OVERVIEW_PARTS = {
    "message_stats", "queue_totals", "object_totals", "churn_rates", "node", "listeners",
    "contexts", "statistics_db_event_queue", "disable_stats",
}


def _overview_of_a_vhost(r: Recorder, api: Api, W: str, mgr: str) -> None:
    """A user with only the management tag sees the sums of the vhosts it may use (here
    one with nothing in it, while the conversation's vhost has seen messages)."""
    api.put(f"/api/vhosts/{W}")
    api.put(f"/api/users/{mgr}", {"password": "pw", "tags": "management"})
    api.put(f"/api/permissions/{W}/{mgr}", {"configure": ".*", "write": ".*", "read": ".*"})
    as_mgr = api.as_user(mgr, "pw")
    # kiltmq has no amq.rabbitmq.trace: the exchanges counted are those listed
    listed = len(as_mgr.get("/api/exchanges").body)

    def totals(b: Any) -> Any:
        return {**b, "exchanges": b["exchanges"] == listed}

    r("overview of one vhost", as_mgr.get("/api/overview"), lambda b: (
        sorted(k for k in b if k in OVERVIEW_PARTS),
        b["message_stats"], b["queue_totals"], totals(b["object_totals"]),
    ))
    r("overview without stats", as_mgr.get("/api/overview?disable_stats=true"), lambda b: (
        sorted(k for k in b if k in OVERVIEW_PARTS), b["disable_stats"],
        totals(b["object_totals"]),
    ))
    r("whole overview without stats", api.get("/api/overview?disable_stats=true"),
      lambda b: (sorted(k for k in b if k in OVERVIEW_PARTS), sorted(b["object_totals"])))
    r("whole overview", api.get("/api/overview"), lambda b: (
        sorted(k for k in b if k in OVERVIEW_PARTS), sorted(b["object_totals"]),
    ))
    api.delete(f"/api/users/{mgr}")
    api.delete(f"/api/vhosts/{W}")


def _topology(r: Recorder, api: Api, V: str, bad_type: str) -> None:
    r("create vhost", api.put(f"/api/vhosts/{V}"))
    r("create vhost again", api.put(f"/api/vhosts/{V}"))
    r("get vhost", api.get(f"/api/vhosts/{V}"), lambda b: keys(b, VHOST_KEYS))
    r("declare queue", api.put(f"/api/queues/{V}/q1", {"durable": True}))
    r("declare queue again", api.put(f"/api/queues/{V}/q1", {"durable": True}))
    r("inequivalent queue", api.put(f"/api/queues/{V}/q1", {"durable": False}))
    r("malformed JSON", api.call("PUT", f"/api/queues/{V}/q2", raw=b'{"durable":'))
    r("queue in unknown vhost", api.put("/api/queues/no-such-vhost-mgmt/q", {}))
    r("unknown queue", api.get(f"/api/queues/{V}/nope"))
    r("get queue", api.get(f"/api/queues/{V}/q1"), lambda b: keys(b, QUEUE_KEYS))
    for name, kind in (("t-raft", "quorum"), ("t-log", "stream")):
        r(f"declare {kind} queue", api.put(f"/api/queues/{V}/{name}", {
            "durable": True, "arguments": {"x-queue-type": kind},
        }))
        r(f"get {kind} queue", api.get(f"/api/queues/{V}/{name}"), lambda b: {
            k: b[k] for k in ("name", "type", "durable", "auto_delete", "arguments")
        })
        r(f"delete {kind} queue", api.delete(f"/api/queues/{V}/{name}"))
    r("durable not a boolean", api.put(f"/api/queues/{V}/bad", {"durable": "maybe"}))
    r("invalid queue argument", api.put(f"/api/queues/{V}/bad",
                                        {"arguments": {"x-max-length": "abc"}}))
    r("not an object", api.call("PUT", f"/api/queues/{V}/bad", raw=b"[1,2]"))
    r("doubly encoded", api.call("PUT", f"/api/queues/{V}/bad", raw=b'"{}"'))
    r("durable as text", api.put(f"/api/queues/{V}/q4", {"durable": "true"}))
    r("declare exchange", api.put(f"/api/exchanges/{V}/x1", {"type": "topic"}))
    r("bad exchange type", api.put(f"/api/exchanges/{V}/x2", {"type": bad_type}))
    r("reserved exchange name", api.put(f"/api/exchanges/{V}/amq.foo", {"type": "direct"}))
    r("get exchange", api.get(f"/api/exchanges/{V}/x1"), lambda b: keys(b, EXCHANGE_KEYS))
    r("default exchange", api.get(f"/api/exchanges/{V}/amq.default"), lambda b: b["name"])
    bind = api.post(f"/api/bindings/{V}/e/x1/q/q1", {"routing_key": "a", "arguments": {}})
    r("bind", bind, lambda _: bind.headers.get("location"))
    bind = api.post(f"/api/bindings/{V}/e/x1/q/q1", {"routing_key": "k", "arguments": {"x": 1}})
    r("bind with arguments", bind, lambda _: bind.headers.get("location", "").split("~")[0])
    r("bind to unknown queue", api.post(f"/api/bindings/{V}/e/x1/q/nope", {}))
    r("bind from the default exchange", api.post(f"/api/bindings/{V}/e/amq.default/q/q1", {}))
    r("bindings between", api.get(f"/api/bindings/{V}/e/x1/q/q1"),
      lambda b: [(keys(i, BINDING_KEYS), i["routing_key"]) for i in b])
    r("one binding", api.get(f"/api/bindings/{V}/e/x1/q/q1/a"), lambda b: keys(b, BINDING_KEYS))
    r("queue bindings", api.get(f"/api/queues/{V}/q1/bindings"),
      lambda b: [(i["source"], i["routing_key"]) for i in b])
    r("exchange bindings", api.get(f"/api/exchanges/{V}/x1/bindings/source"),
      lambda b: [i["routing_key"] for i in b])
    r("declare another exchange", api.put(f"/api/exchanges/{V}/x3", {"type": "fanout"}))
    e2e = api.post(f"/api/bindings/{V}/e/x1/e/x3", {"routing_key": "r.#", "arguments": {}})
    r("bind exchanges", e2e, lambda _: e2e.headers.get("location"))
    r("bindings to an exchange", api.get(f"/api/exchanges/{V}/x3/bindings/destination"),
      lambda b: [(i["source"], i["destination_type"], i["routing_key"]) for i in b])
    r("exchange to exchange", api.get(f"/api/bindings/{V}/e/x1/e/x3"),
      lambda b: [keys(i, BINDING_KEYS) for i in b])
    r("unbind exchanges", api.delete(f"/api/bindings/{V}/e/x1/e/x3/r.%23"))
    r("delete the other exchange", api.delete(f"/api/exchanges/{V}/x3"))


def _messages(r: Recorder, api: Api, V: str) -> None:
    publish = f"/api/exchanges/{V}/x1/publish"
    r("publish", api.post(publish, {
        "properties": {"delivery_mode": 2, "headers": {"h": 1}, "content_type": "text/plain"},
        "routing_key": "a", "payload": "hello", "payload_encoding": "string",
    }), lambda b: b)
    r("publish base64", api.post(publish, {
        "properties": {}, "routing_key": "a", "payload": "/w==", "payload_encoding": "base64",
    }), lambda b: b)
    r("publish unroutable", api.post(publish, {
        "properties": {}, "routing_key": "zzz", "payload": "x", "payload_encoding": "string",
    }), lambda b: b)
    r("publish without encoding", api.post(publish, {
        "properties": {}, "routing_key": "a", "payload": "x",
    }))
    bad = {"routing_key": "a", "payload": "x", "payload_encoding": "string"}
    r("publish unknown property", api.post(publish, {**bad, "properties": {"bogus": 1}}),
      lambda b: b)
    r("publish bad delivery mode",
      api.post(publish, {**bad, "properties": {"delivery_mode": "x"}}))
    r("publish unknown encoding",
      api.post(publish, {**bad, "properties": {}, "payload_encoding": "rot13"}))
    r("publish bad base64", api.post(publish, {
        **bad, "properties": {}, "payload": "!!!", "payload_encoding": "base64",
    }))
    r("publish bad expiration", api.post(publish, {**bad, "properties": {"expiration": "abc"}}))
    r("publish negative expiration",
      api.post(publish, {**bad, "properties": {"expiration": "-5"}}))
    r("publish as someone else",
      api.post(publish, {**bad, "properties": {"user_id": "someone-else"}}))
    r("publish to unknown exchange", api.post(f"/api/exchanges/{V}/nope/publish", {
        "properties": {}, "routing_key": "a", "payload": "x", "payload_encoding": "string",
    }))
    get = f"/api/queues/{V}/q1/get"
    r("get requeue", api.post(get, {"count": 5, "ackmode": "ack_requeue_true",
                                    "encoding": "auto", "truncate": 50000}), _get_items)
    r("get again", api.post(get, {"count": 1, "ackmode": "ack_requeue_false",
                                  "encoding": "base64"}), _get_items)
    r("get without ackmode", api.post(get, {"count": 1}))
    r("get count not a number", api.post(get, {"count": "x", "ackmode": "ack_requeue_false",
                                               "encoding": "auto"}))
    unknown_mode = api.post(get, {"count": 1, "ackmode": "bad", "encoding": "auto"})
    r("get unknown ackmode", unknown_mode, lambda _: unknown_mode.text)
    r("get unknown encoding", api.post(get, {"count": 1, "ackmode": "ack_requeue_false",
                                             "encoding": "utf8"}))
    r("get from unknown queue", api.post(f"/api/queues/{V}/nope/get", {
        "count": 1, "ackmode": "ack_requeue_false", "encoding": "auto",
    }))
    r("delete non-empty queue if empty", api.delete(f"/api/queues/{V}/q1?if-empty=true"))
    r("purge", api.delete(f"/api/queues/{V}/q1/contents"))
    r("purge unknown queue", api.delete(f"/api/queues/{V}/nope/contents"))
    r("get after purge", api.post(get, {"count": 1, "ackmode": "ack_requeue_false",
                                        "encoding": "auto"}), lambda b: b)


def _typed(value: Any) -> Any:
    """``value`` with each number replaced by its JSON type (the times differ)."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return type(value).__name__
    return value


def _get_when_there(api: Api, path: str) -> Reply:
    """Get one message from the queue at ``path``, waiting up to ten seconds for it."""
    deadline = time.monotonic() + 10
    while True:
        got = api.post(path, {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
        if got.status != 200 or got.body or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def _dead_letters(r: Recorder, api: Api, V: str, v: str, amqp_port: int) -> None:
    """A dead-lettered message's ``x-death`` and AMQP timestamps in headers, as got."""
    r("declare dead letter queue", api.put(f"/api/queues/{V}/dead"))
    r("declare expiring queue", api.put(f"/api/queues/{V}/mortal", {"arguments": {
        "x-message-ttl": 0, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead",
    }}))
    r("publish to expire", api.post(f"/api/exchanges/{V}/amq.default/publish", {
        "properties": {"timestamp": 1796596117, "headers": {"h": 1}},
        "routing_key": "mortal", "payload": "gone", "payload_encoding": "string",
    }), lambda b: b)
    r("get dead-lettered", _get_when_there(api, f"/api/queues/{V}/dead/get"),
      lambda b: _typed(_get_items(b)))
    when = datetime(2026, 12, 6, 22, 26, 11, tzinfo=UTC)
    with connect(f"amqp://guest:guest@127.0.0.1:{amqp_port}/{q(v)}") as connection:
        channel = connection.channel()
        channel.basic_publish(b"t", exchange="", routing_key="dead", properties=BasicProperties(
            timestamp=1796596117,
            headers={"when": when, "nested": {"at": when}, "list": [when]},
        ))
    r("get timestamps in headers", _get_when_there(api, f"/api/queues/{V}/dead/get"),
      _get_items)
    r("delete expiring queue", api.delete(f"/api/queues/{V}/mortal"))
    r("delete dead letter queue", api.delete(f"/api/queues/{V}/dead"))


def _history_keys(body: Any) -> Any:
    """The keys of the overview's details with history, and how many samples."""
    found = {}
    for section, name in (("message_stats", "publish_details"),
                          ("queue_totals", "messages_details")):
        details = body[section][name]
        samples = details.get("samples", [])
        found[name] = (sorted(details), len(samples), keys(samples[:1], {"sample", "timestamp"}))
    return found


def _history(r: Recorder, api: Api) -> None:
    ranges = "lengths_age=60&lengths_incr=5&msg_rates_age=60&msg_rates_incr=5"
    r("overview history", api.get(f"/api/overview?{ranges}"), _history_keys)
    r("overview short history", api.get("/api/overview?lengths_age=7&lengths_incr=5"
                                        "&msg_rates_age=2500&msg_rates_incr=5"), _history_keys)
    r("history range not a number", api.get("/api/overview?lengths_age=60.5&lengths_incr=5"),
      _history_keys)
    r("history range too long", api.get("/api/overview?lengths_age=2505&lengths_incr=5"))
    r("history increment zero", api.get("/api/overview?msg_rates_age=60&msg_rates_incr=0"))
    r("history age negative", api.get("/api/overview?lengths_age=-5&lengths_incr=5"))


def _lists(r: Recorder, api: Api, V: str) -> None:
    _history(r, api)
    for name in ("q2", "q3", "other"):
        api.put(f"/api/queues/{V}/{name}", {"durable": False})
    r("page", api.get(f"/api/queues/{V}?page=1&page_size=2&name=q"),
      lambda b: (keys(b, PAGE_KEYS), {k: v for k, v in b.items() if k != "items"},
                 [i["name"] for i in b["items"]]))
    r("page by regex", api.get(f"/api/queues/{V}?page=1&name=%5Eq%5B23%5D&use_regex=true"),
      lambda b: [i["name"] for i in b["items"]])
    r("page zero", api.get(f"/api/queues/{V}?page=0"))
    r("page size over 500", api.get(f"/api/queues/{V}?page=1&page_size=501"))
    r("page not a number", api.get(f"/api/queues/{V}?page=x"))
    r("bad regular expression", api.get(f"/api/queues/{V}?page=1&name=%28&use_regex=true"))
    r("page out of range", api.get(f"/api/queues/{V}?page=9&page_size=2"))
    r("columns", api.get(f"/api/queues/{V}?columns=name,durable"), lambda b: b)
    r("sort reverse", api.get(f"/api/queues/{V}?sort=name&sort_reverse=true&columns=name"),
      lambda b: b)
    # RabbitMQ's amq.rabbitmq.trace (its firehose tracer) has no kiltmq counterpart
    limit = f"/api/vhost-limits/{V}"
    r("set a vhost limit", api.put(f"{limit}/max-connections", {"value": 10}))
    r("vhost limits", api.get(limit), lambda b: b)
    r("unknown vhost limit", api.put(f"{limit}/max-foo", {"value": 10}))
    r("vhost limit without value", api.put(f"{limit}/max-queues", {}))
    r("vhost limit not a number", api.put(f"{limit}/max-queues", {"value": "x"}))
    r("vhost limit in unknown vhost", api.put("/api/vhost-limits/no-such-vhost-mgmt/max-queues",
                                              {"value": 1}))
    r("clear a vhost limit", api.delete(f"{limit}/max-connections"))
    r("no vhost limits", api.get(limit), lambda b: b)
    r("auth settings", api.get("/api/auth"), lambda b: b)
    r("cluster name", api.get("/api/cluster-name"), lambda b: sorted(b))
    r("extensions", api.get("/api/extensions"), lambda b: type(b).__name__)
    r("node health check", api.get("/api/healthchecks/node"), lambda b: b)
    r("exchanges", api.get(f"/api/exchanges/{V}?columns=name,type"),
      lambda b: [x for x in b if not x["name"].startswith("amq.rabbitmq.")])


def _users(r: Recorder, api: Api, V: str, v: str, mon: str, plain: str) -> None:
    r("user without tags key", api.put(f"/api/users/{mon}", {"password": "pw"}))
    r("monitoring user", api.put(f"/api/users/{mon}", {"password": "pw", "tags": "monitoring"}))
    r("plain user", api.put(f"/api/users/{plain}", {"password": "pw", "tags": ""}))
    r("get user", api.get(f"/api/users/{mon}"), lambda b: (keys(b, USER_KEYS), b["tags"]))
    r("bad password hash", api.put(f"/api/users/{plain}", {"password_hash": "abc", "tags": ""}))
    perm = {"configure": "", "write": ".*", "read": ".*"}
    r("permissions", api.put(f"/api/permissions/{V}/{mon}", perm))
    r("permissions again", api.put(f"/api/permissions/{V}/{mon}", perm))
    r("get permissions", api.get(f"/api/permissions/{V}/{mon}"), lambda b: b)
    r("permissions missing keys", api.put(f"/api/permissions/{V}/{mon}", {"configure": ""}))
    r("permissions unknown user", api.put(f"/api/permissions/{V}/nobody-mgmt", perm))
    r("users without permissions", api.get("/api/users/without-permissions"),
      lambda b: sorted(u["name"] for u in b if u["name"] in (mon, plain)))
    r("vhost permissions", api.get(f"/api/vhosts/{V}/permissions"),
      lambda b: sorted(p["user"] for p in b))
    r("user permissions", api.get(f"/api/users/{mon}/permissions"), lambda b: b)
    r("vhost topic permissions", api.get(f"/api/vhosts/{V}/topic-permissions"), lambda b: b)
    r("user topic permissions", api.get(f"/api/users/{mon}/topic-permissions"), lambda b: b)
    topic_permissions(r, api, V, mon)
    as_mon = api.as_user(mon, "pw")
    r("monitor whoami", as_mon.get("/api/whoami"), lambda b: b)
    r("monitor deletes vhost", as_mon.delete(f"/api/vhosts/{V}"))
    r("monitor deletes user", as_mon.delete(f"/api/users/{plain}"))
    r("monitor lists users", as_mon.get("/api/users"))
    r("monitor deletes queue without configure", as_mon.delete(f"/api/queues/{V}/q2"))
    r("vhost still there", api.get(f"/api/vhosts/{V}"), lambda b: b["name"])
    r("queue still there", api.get(f"/api/queues/{V}/q2"), lambda b: b["name"])
    r("monitor sees queues", as_mon.get(f"/api/queues/{V}?columns=name"), lambda b: b)
    r("no management tag", api.as_user(plain, "pw").get("/api/overview"))
    r("wrong password", api.as_user(mon, "wrong").get("/api/overview"))
    r("unknown user", api.as_user("nobody-mgmt", "x").get("/api/overview"))
    no_auth = api.get("/api/overview", auth=False)
    r("no credentials", no_auth, lambda _: no_auth.headers.get("www-authenticate"))
    r("delete permissions", api.delete(f"/api/permissions/{V}/{mon}"))
    r("outsider queue list", api.as_user(mon, "pw").get(f"/api/queues/{V}"))
    del v


POLICY_KEYS = {"vhost", "name", "pattern", "apply-to", "definition", "priority"}


def _policies(r: Recorder, api: Api, V: str, mon: str) -> None:
    policies, operator = f"/api/policies/{V}", f"/api/operator-policies/{V}"
    cap = {"pattern": "^q", "definition": {"max-length": 5}, "apply-to": "queues"}
    r("no policies", api.get(policies), lambda b: b)
    r("set a policy", api.put(f"{policies}/cap", cap))
    r("set it again", api.put(f"{policies}/cap", {**cap, "priority": 2}))
    r("get a policy", api.get(f"{policies}/cap"), lambda b: b)
    r("list policies", api.get(policies), lambda b: [keys(p, POLICY_KEYS) for p in b])
    r("all policies", api.get("/api/policies"),
      lambda b: [p["name"] for p in b if p["vhost"].startswith("mgmt-compat")])
    r("unknown policy", api.get(f"{policies}/nope"))
    r("policies of unknown vhost", api.get("/api/policies/no-such-vhost-mgmt"))
    r("policy in unknown vhost", api.put("/api/policies/no-such-vhost-mgmt/p", cap))
    r("policy without pattern", api.put(f"{policies}/p", {"definition": {"max-length": 1}}))
    r("policy without definition", api.put(f"{policies}/p", {"pattern": "x"}))
    r("unknown policy key", api.put(f"{policies}/p", {"pattern": "x", "definition": {"foo": 1}}))
    r("bad max-length", api.put(f"{policies}/p", {"pattern": "x",
                                                  "definition": {"max-length": "x"}}))
    r("bad pattern", api.put(f"{policies}/p", {"pattern": "(", "definition": {"expires": 1}}))
    r("bad apply-to", api.put(f"{policies}/p", {**cap, "apply-to": "x"}))
    r("bad priority", api.put(f"{policies}/p", {**cap, "priority": "x"}))
    r("exchange policy", api.put(f"{policies}/ae", {
        "pattern": "^x1$", "definition": {"alternate-exchange": "amq.fanout"},
        "apply-to": "exchanges"}))
    r("exchange shows its policy", api.get(f"/api/exchanges/{V}/x1"),
      lambda b: b.get("policy"))
    r("exchange without policy", api.get(f"/api/exchanges/{V}/amq.direct"),
      lambda b: "policy" in b)
    as_mon = api.as_user(mon, "pw")
    api.put(f"/api/permissions/{V}/{mon}", {"configure": ".*", "write": ".*", "read": ".*"})
    r("monitor lists policies", as_mon.get(policies), lambda b: [p["name"] for p in b])
    r("monitor sets a policy", as_mon.put(f"{policies}/m", cap))
    r("monitor clears a policy", as_mon.delete(f"{policies}/cap"))
    r("monitor sets an operator policy", as_mon.put(f"{operator}/m", cap))
    r("monitor policies elsewhere", as_mon.get("/api/policies/%2F"))
    r("policymaker", api.put(f"/api/users/{mon}", {"password": "pw",
                                                    "tags": "policymaker"}))
    r("policymaker sets a policy", as_mon.put(f"{policies}/m", cap))
    r("policymaker clears it", as_mon.delete(f"{policies}/m"))
    r("policymaker sets an operator policy", as_mon.put(f"{operator}/m", cap))
    r("policymaker lists operator policies", as_mon.get(operator), lambda b: b)
    api.delete(f"/api/permissions/{V}/{mon}")
    r("policymaker without permissions", as_mon.put(f"{policies}/m", cap))
    r("set an operator policy", api.put(f"{operator}/op", {
        "pattern": "^q", "definition": {"max-length": 3, "message-ttl": 1000}}))
    r("get an operator policy", api.get(f"{operator}/op"), lambda b: b)
    r("operator policies", api.get(operator), lambda b: [keys(p, POLICY_KEYS) for p in b])
    r("operator policy not allowed key", api.put(f"{operator}/op2", {
        "pattern": "^q", "definition": {"alternate-exchange": "x"}}))
    r("clear operator policy", api.delete(f"{operator}/op"))
    r("clear it again", api.delete(f"{operator}/op"))
    r("clear policy", api.delete(f"{policies}/cap"))
    r("clear missing policy", api.delete(f"{policies}/cap"))
    r("clear exchange policy", api.delete(f"{policies}/ae"))


def _definitions(r: Recorder, api: Api, V: str) -> None:
    path = f"/api/definitions/{V}"
    r("vhost definitions", api.get(path),
      lambda b: (sorted(b), sorted(x["name"] for x in b["queues"]),
                 [(x["name"], x["type"]) for x in b["exchanges"]], b["bindings"]))
    download = api.get(f"{path}?download=some%20file.json")
    r("download", download, lambda _: download.headers.get("content-disposition"))
    r("all definitions", api.get("/api/definitions"), lambda b: sorted(b))
    r("definitions of unknown vhost", api.get("/api/definitions/no-such-vhost-mgmt"))
    queue = {"name": "imported", "durable": True, "auto_delete": False, "arguments": {}}
    r("import into vhost", api.post(path, {"queues": [queue]}))
    r("imported queue", api.get(f"/api/queues/{V}/imported"), lambda b: keys(b, QUEUE_KEYS))
    r("import into unknown vhost",
      api.post("/api/definitions/no-such-vhost-mgmt", {"queues": [queue]}))
    r("import not JSON", api.call("POST", path, raw=b"nope"))
    r("import a list", api.call("POST", path, raw=b"[1]"))
    r("import a bad policy", api.post(path, {"policies": [
        {"name": "p", "pattern": "x", "definition": {"foo": 1}}]}))
    r("delete imported", api.delete(f"/api/queues/{V}/imported"))


FLAG_KEYS = {"name", "desc", "doc_url", "state", "stability", "provided_by"}


def _parameters(r: Recorder, api: Api, V: str, v: str, mon: str) -> None:
    def mine(body: Any) -> Any:
        return [p for p in body if p.get("vhost") == v]

    limits = f"/api/parameters/vhost-limits/{V}"
    # RabbitMQ keeps an empty "limits" parameter once its last limit is cleared
    api.delete(f"{limits}/limits")
    r("no parameters", api.get(f"/api/parameters/vhost-limits/{V}"), lambda b: b)
    r("set limits as a parameter", api.put(f"{limits}/limits", {"value": {"max-queues": 7}}))
    r("set them again", api.put(f"{limits}/limits", {"value": {"max-connections": 9}}))
    r("limits parameter", api.get(f"{limits}/limits"), lambda b: b)
    r("limits shown", api.get(f"/api/vhost-limits/{V}"), lambda b: b)
    r("all parameters", api.get("/api/parameters"), mine)
    r("parameters of a component", api.get("/api/parameters/vhost-limits"), mine)
    r("parameter without value", api.put(f"{limits}/limits", {}))
    r("clear limits parameter", api.delete(f"{limits}/limits"))
    r("clear it again", api.delete(f"{limits}/limits"))
    r("unknown component", api.get("/api/parameters/no-such-component"), lambda b: b)
    r("unknown component in vhost", api.get(f"/api/parameters/no-such-component/{V}"),
      lambda b: b)
    r("unknown component parameter", api.get(f"/api/parameters/no-such-component/{V}/x"))
    r("set unknown component", api.put(f"/api/parameters/no-such-component/{V}/x",
                                       {"value": {"a": 1}}))
    r("parameters of unknown vhost", api.get("/api/parameters/vhost-limits/no-such-vhost-mgmt"))
    op = {"pattern": "^q", "definition": {"max-length": 2}, "priority": 0, "apply-to": "all"}
    r("operator policy as a parameter", api.put(f"/api/parameters/operator_policy/{V}/op",
                                                {"value": op}))
    r("operator policy parameters", api.get(f"/api/parameters/operator_policy/{V}"),
      lambda b: b)
    r("operator policy listed", api.get(f"/api/operator-policies/{V}/op"), lambda b: b)
    r("policies as parameters", api.get(f"/api/parameters/policy/{V}"), lambda b: b)
    r("clear operator policy parameter", api.delete(f"/api/parameters/operator_policy/{V}/op"))
    r("global parameters", api.get("/api/global-parameters"),
      lambda b: type(b).__name__)
    r("unknown global parameter", api.get("/api/global-parameters/no-such-parameter"))
    as_mon = api.as_user(mon, "pw")
    r("policymaker reads parameters", as_mon.get("/api/parameters"), mine)
    r("policymaker reads global parameters", as_mon.get("/api/global-parameters"),
      lambda b: type(b).__name__)
    api.put(f"/api/users/{mon}", {"password": "pw", "tags": "monitoring"})
    r("monitor reads parameters", as_mon.get("/api/parameters"))
    r("monitor reads global parameters", as_mon.get("/api/global-parameters"))
    r("monitor reads feature flags", as_mon.get("/api/feature-flags"))
    r("feature flags", api.get("/api/feature-flags"),
      lambda b: [(f["name"], keys(f, FLAG_KEYS)) for f in b])
    r("churn rates", api.get("/api/overview"), lambda b: sorted(b["churn_rates"]))
    r("monitor sees churn rates", as_mon.get("/api/overview"),
      lambda b: sorted(b.get("churn_rates", {})))
    def of_mon(b: Any) -> Any:
        return [i for i in b if i["user"] == mon] if isinstance(b, list) else b

    r("user limits", api.get("/api/user-limits"), of_mon)
    r("limits of a user", api.get(f"/api/user-limits/{mon}"), lambda b: b)
    r("limits of unknown user", api.get("/api/user-limits/nobody-mgmt"))
    r("limit for unknown user", api.put("/api/user-limits/nobody-mgmt/max-channels",
                                        {"value": 5}))
    user_limit = f"/api/user-limits/{mon}"
    r("set a user limit", api.put(f"{user_limit}/max-connections", {"value": 10}))
    r("set another", api.put(f"{user_limit}/max-channels", {"value": 20}))
    r("user limits shown", api.get("/api/user-limits"), of_mon)
    r("limits of the user shown", api.get(user_limit), lambda b: b)
    r("limits on the user", api.get(f"/api/users/{mon}"), lambda b: b["limits"])
    r("limits in definitions", api.get("/api/definitions"),
      lambda b: [u["limits"] for u in b["users"] if u["name"] == mon])
    r("unknown user limit", api.put(f"{user_limit}/max-queues", {"value": 2}))
    r("user limit not a number", api.put(f"{user_limit}/max-channels", {"value": "x"}))
    r("user limit a fraction", api.put(f"{user_limit}/max-channels", {"value": 1.5}))
    r("user limit without value", api.put(f"{user_limit}/max-channels", {}))
    r("monitor reads user limits", as_mon.get("/api/user-limits"))
    r("monitor sets a user limit", as_mon.put(f"{user_limit}/max-channels", {"value": 1}))
    api.put(f"/api/users/{mon}", {"password": "pw", "tags": "monitoring"})
    r("limits kept by a new password", api.get(user_limit), lambda b: b)
    r("clear a limit not set", api.delete(f"{user_limit}/max-queues"))
    r("clear a user limit", api.delete(f"{user_limit}/max-connections"))
    r("one user limit left", api.get(user_limit), lambda b: b)
    r("clear the other", api.delete(f"{user_limit}/max-channels"))
    r("no user limits left", api.get(user_limit), lambda b: b)
    r("none on the user", api.get(f"/api/users/{mon}"), lambda b: b["limits"])
    r("vhost metadata", api.put(f"/api/vhosts/{V}", {"description": "Shop", "tags": "a,b"}))
    r("vhost shows it", api.get(f"/api/vhosts/{V}?columns=name,description,tags,metadata"),
      lambda b: b)
    r("vhost tags as a list", api.put(f"/api/vhosts/{V}", {"tags": ["c"]}))
    r("vhost shows them", api.get(f"/api/vhosts/{V}?columns=description,tags,metadata"),
      lambda b: b)
    r("vhost metadata cleared", api.put(f"/api/vhosts/{V}", {}))
    r("vhost shows none", api.get(f"/api/vhosts/{V}?columns=description,tags"), lambda b: b)
    doomed = [f"{mon}-a", f"{mon}-b"]
    for name in doomed:
        api.put(f"/api/users/{name}", {"password": "pw", "tags": ""})
    r("bulk delete without users", api.post("/api/users/bulk-delete", {}))
    r("bulk delete unknown", api.post("/api/users/bulk-delete",
                                      {"users": [doomed[0], "nobody-mgmt", doomed[1]]}))
    r("first one gone", api.get(f"/api/users/{doomed[0]}"))
    r("last one kept", api.get(f"/api/users/{doomed[1]}"), lambda b: b["name"])
    r("bulk delete", api.post("/api/users/bulk-delete", {"users": [doomed[1]]}))
    r("gone", api.get(f"/api/users/{doomed[1]}"))


def _without_stats(r: Recorder, api: Api, V: str, amqp_port: int) -> None:
    """?disable_stats=true: what each list and object keeps, and what is refused."""
    ds = "disable_stats=true"
    r("vhost without stats", api.get(f"/api/vhosts/{V}?{ds}"), lambda b: sorted(b))
    r("vhosts without stats", api.get(f"/api/vhosts?{ds}"),
      lambda b: [sorted(i) for i in b if i["name"] == unquote(V)])
    r("nodes without stats", api.get(f"/api/nodes?{ds}"),
      lambda b: [(sorted(n), n["running"], n["type"]) for n in b])
    node = api.get("/api/overview").body["node"]
    r("node without stats", api.get(f"/api/nodes/{q(node)}?{ds}"),
      lambda b: (sorted(b), b["name"] == node))
    r("exchanges without stats", api.get(f"/api/exchanges/{V}?{ds}"),
      lambda b: sorted({(tuple(keys(x, EXCHANGE_KEYS)), "message_stats" in x) for x in b}))
    r("paged exchanges without stats", api.get(f"/api/exchanges/{V}?{ds}&page=1"),
      lambda b: sorted({"message_stats" in x for x in b["items"]}))
    host = api.base.split("//")[1].rsplit(":", 1)[0]
    params = pika.ConnectionParameters(
        host, amqp_port, unquote(V), pika.PlainCredentials(api.user, api.password)
    )
    conn = pika.BlockingConnection(params)
    try:
        conn.channel()
        deadline = time.monotonic() + 10  # RabbitMQ tracks new connections a moment later
        listed = api.get(f"/api/vhosts/{V}/connections?{ds}")
        while listed.status == 200 and not listed.body and time.monotonic() < deadline:
            conn.sleep(0.2)
            listed = api.get(f"/api/vhosts/{V}/connections?{ds}")
        # (RabbitMQ's vhost connection list ignores disable_stats)
        r("vhost connections without stats", listed,
          lambda b: [("client_properties" in c, c["user"], c["vhost"]) for c in b])
        name = listed.body[0]["name"] if listed.status == 200 and listed.body else "none"
        r("all connections without stats", api.get(f"/api/connections?{ds}"),
          lambda b: [sorted(c) for c in b if c["name"] == name])
        r("connection without stats", api.get(f"/api/connections/{q(name)}?{ds}"),
          lambda b: b == {"name": name})
        r("channels without stats", api.get(f"/api/channels?{ds}"))
        r("vhost channels without stats", api.get(f"/api/vhosts/{V}/channels?{ds}"))
        r("channel without stats", api.get(f"/api/channels/{q(name + ' (1)')}?{ds}"))
        r("consumers without stats", api.get(f"/api/consumers?{ds}"))
        r("vhost consumers without stats", api.get(f"/api/consumers/{V}?{ds}"))
    finally:
        conn.close()


#: The keys of RabbitMQ 3.10's node memory breakdown (``rabbit_vm:memory()``).
MEMORY_KEYS = {
    "connection_readers", "connection_writers", "connection_channels", "connection_other",
    "queue_procs", "queue_slave_procs", "quorum_queue_procs", "quorum_queue_dlx_procs",
    "stream_queue_procs", "stream_queue_replica_reader_procs",
    "stream_queue_coordinator_procs", "plugins", "other_proc", "metrics", "mgmt_db",
    "mnesia", "quorum_ets", "other_ets", "binary", "msg_index", "code", "atom",
    "other_system", "allocated_unused", "reserved_unallocated", "strategy", "total",
}


def _node_routes(r: Recorder, api: Api) -> None:
    """The node's health checks, memory breakdown and login attempts."""
    node = q(api.get("/api/overview").body["node"])
    r("node health of the node", api.get(f"/api/healthchecks/node/{node}"), lambda b: b)
    r("node health of another node", api.get("/api/healthchecks/node/nobody@nowhere"))
    for name in ("amqp", "amqp091", "AMQP", "amqp0-9-1", "http", "management"):
        r(f"protocol listener {name}",
          api.get(f"/api/health/checks/protocol-listener/{name}"), lambda b: b)
    r("protocol without listener", api.get("/api/health/checks/protocol-listener/stomp"),
      lambda b: (b["status"], b["reason"], b["missing"], "amqp" in b["protocols"]))
    expiry = "/api/health/checks/certificate-expiration"
    for within in ("1/weeks", "2/DAYS", "-1/days", "1/fortnights", "x/days", "1.5/years"):
        r(f"certificates expiring within {within}", api.get(f"{expiry}/{within}"),
          lambda b: b)
    r("mirror sync critical", api.get("/api/health/checks/node-is-mirror-sync-critical"),
      lambda b: b)

    def memory(b: Any) -> Any:
        shown = b["memory"]
        sizes = [v for k, v in shown.items() if k not in ("strategy", "total")]
        return (sorted(set(shown) - MEMORY_KEYS), shown["strategy"], "rss" in shown["total"],
                all(isinstance(v, int) and v >= 0 for v in sizes))

    r("node memory", api.get(f"/api/nodes/{node}/memory"), memory)
    r("node memory relative", api.get(f"/api/nodes/{node}/memory/relative"), lambda b: (
        sorted(set(b["memory"]) - MEMORY_KEYS), b["memory"]["total"],
        all(0 <= v <= 100 for v in b["memory"].values()),
    ))
    r("memory of another node", api.get("/api/nodes/nobody@nowhere/memory"))
    r("login attempts", api.get(f"/api/auth/attempts/{node}"), lambda b: sorted(
        (a["protocol"], sorted(a), a["auth_attempts"] == a["auth_attempts_failed"]
         + a["auth_attempts_succeeded"]) for a in b if a["protocol"] in ("http", "amqp091")
    ))
    r("login attempts by source", api.get(f"/api/auth/attempts/{node}/source"), lambda b: b)
    r("login attempts of another node", api.get("/api/auth/attempts/nobody@nowhere"))
    definitions = sorted(api.get("/api/definitions").body)
    r("all configuration", api.get("/api/all-configuration"),
      lambda b: sorted(b) == definitions)


def _teardown(r: Recorder, api: Api, V: str, amqp_port: int) -> None:
    r("delete binding", api.delete(f"/api/bindings/{V}/e/x1/q/q1/a"))
    r("delete missing binding", api.delete(f"/api/bindings/{V}/e/x1/q/q1/a"))
    r("delete exchange", api.delete(f"/api/exchanges/{V}/x1"))
    r("delete missing exchange", api.delete(f"/api/exchanges/{V}/x1"))
    r("delete system exchange", api.delete(f"/api/exchanges/{V}/amq.direct"))
    r("delete queue", api.delete(f"/api/queues/{V}/q1"))
    r("delete missing queue", api.delete(f"/api/queues/{V}/q1"))
    r("port listener", api.get(f"/api/health/checks/port-listener/{amqp_port}"),
      lambda b: (b["status"], b["port"] == amqp_port))
    r("bad port", api.get("/api/health/checks/port-listener/abc"))
    r("virtual hosts", api.get("/api/health/checks/virtual-hosts"), lambda b: b)
    r("aliveness", api.get(f"/api/aliveness-test/{V}"), lambda b: b)
    r("aliveness unknown vhost", api.get("/api/aliveness-test/no-such-vhost-mgmt"))
    r("unknown path", api.get("/api/no-such-thing"))
    r("unknown path without credentials", api.get("/api/no-such-thing", auth=False))
    wrong = api.call("POST", "/api/overview", {})
    r("method not allowed", wrong, lambda _: wrong.text)
    r("delete vhost", api.delete(f"/api/vhosts/{V}"))


def differences(theirs: Iterable[Step], ours: Iterable[Step]) -> list[str]:
    return [
        f"{a[0]}: RabbitMQ {a[1]} {a[2]!r}\n{' ' * len(a[0])}  kiltmq   {b[1]} {b[2]!r}"
        for a, b in zip(theirs, ours, strict=True)
        if a != b
    ]
