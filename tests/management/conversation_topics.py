"""The topic permission steps of the management conversation (see
:mod:`.conversation`): set, list, refuse bad input, enforce on the API's publish and
binding, and delete."""

from __future__ import annotations

from typing import Any

from .api import Api


def _ours(user: str) -> Any:
    """A summary of a topic permission list: the ones of ``user`` only (a shared
    RabbitMQ may hold others), by exchange."""
    return lambda b: _listed([p for p in b if p.get("user") == user])


def _listed(body: Any) -> Any:
    """A topic permission list by exchange (RabbitMQ lists them in its table's order,
    which follows no key; kiltmq by vhost, user and exchange)."""
    return sorted(body, key=lambda p: p["exchange"])


def topic_permissions(r: Any, api: Api, V: str, mon: str) -> None:
    """``mon`` must exist, with permissions in ``V`` to write and read everything."""
    pair = f"/api/topic-permissions/{V}/{mon}"
    rule = {"exchange": "amq.topic", "write": "^a\\.|^u\\.{username}$", "read": "^r\\."}
    r("no topic permissions of a pair", api.get(pair))
    r("delete topic permissions of a pair without any", api.delete(pair))
    r("first topic permission", api.put(pair, rule))
    r("second topic permission", api.put(pair, {**rule, "exchange": "other", "write": ""}))
    r("topic permission again", api.put(pair, rule))
    r("topic permissions of a pair", api.get(pair), _listed)
    r("topic permissions of a pair by exchange", api.get(f"{pair}/amq.topic"), _listed)
    r("topic permissions of a pair, unknown exchange", api.get(f"{pair}/nothing"), _listed)
    r("all topic permissions", api.get("/api/topic-permissions"), _ours(mon))
    r("vhost topic permissions again", api.get(f"/api/vhosts/{V}/topic-permissions"),
      _listed)
    r("user topic permissions again", api.get(f"/api/users/{mon}/topic-permissions"),
      _listed)
    for key in ("exchange", "write", "read"):
        r(f"topic permission without {key}",
          api.put(pair, {k: v for k, v in rule.items() if k != key}))
    r("topic permission with an unclosed group", api.put(pair, {**rule, "write": "("}))
    r("topic permission with an unclosed class", api.put(pair, {**rule, "read": "[a"}))
    r("topic permission of an unknown user",
      api.put(f"/api/topic-permissions/{V}/nobody-mgmt", rule))
    r("topic permission in an unknown vhost",
      api.put(f"/api/topic-permissions/no-such-vhost-mgmt/{mon}", rule))
    r("topic permission of an unknown user without keys",
      api.put(f"/api/topic-permissions/{V}/nobody-mgmt", {"write": "("}))
    r("topic permissions of an unknown user", api.get(f"/api/topic-permissions/{V}/nobody-mgmt"))
    r("topic permissions of an unknown vhost",
      api.get("/api/vhosts/no-such-vhost-mgmt/topic-permissions"))
    r("topic permissions of an unknown user's list",
      api.get("/api/users/nobody-mgmt/topic-permissions"))
    as_mon = api.as_user(mon, "pw")
    r("monitor lists topic permissions", as_mon.get("/api/topic-permissions"))
    r("monitor sets a topic permission", as_mon.put(pair, rule))
    publish = f"/api/exchanges/{V}/amq.topic/publish"
    message = {"properties": {}, "payload": "x", "payload_encoding": "string"}
    for label, key in (("a.b", "a.b"), ("b.a", "b.a"), ("u.<mon>", f"u.{mon}")):
        r(f"monitor publishes with a topic permission ({label})",
          as_mon.post(publish, {**message, "routing_key": key}), lambda b: b)
    binding = f"/api/bindings/{V}/e/amq.topic/q/q2"
    for key in ("r.x", "x.r"):
        r(f"monitor binds with a topic permission ({key})",
          as_mon.post(binding, {"routing_key": key}), lambda b: b)
    r("topic permission for one exchange deleted", api.delete(f"{pair}/other"))
    r("topic permission for an exchange without one deleted", api.delete(f"{pair}/nothing"))
    r("topic permissions left", api.get(pair), _listed)
    r("topic permissions deleted", api.delete(pair))
    r("topic permissions gone", api.get(pair))
    r("topic permission in a new pair", api.put(pair, rule))
