"""Definitions export and import in the JSON of RabbitMQ 3.10's ``/api/definitions``
(and ``rabbitmqctl export_definitions``): users with their password hashes and limits,
vhosts, permissions, topic permissions, parameters (vhost limits, operator policies,
shovels), policies, queues, exchanges and bindings; for the whole broker or one vhost.
Imported shovels start once the queues, exchanges and bindings of the import are there.

A RabbitMQ export loads here and one of ours loads into RabbitMQ: password hashes are
RabbitMQ's (``rabbit_password_hashing_sha256``; SHA-512 and MD5 hashes load too), user
tags come out as a list and go in as a list or a comma-separated string. Exclusive
queues, the default exchange, ``amq.*`` exchanges and the default exchange's implicit
bindings are not exported. An import adds and replaces, it never deletes: a queue or
exchange that exists already stays as it is. Global parameters are accepted and not
kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from kiltmq.broker.admin_error import AdminError
from kiltmq.broker.auth import AuthDB, User, hash_password, hashing_algorithm
from kiltmq.broker.policy import Policy
from kiltmq.broker.policy_admin import PolicyInvalid
from kiltmq.broker.queue import Queue
from kiltmq.broker.shovel import KIND as SHOVEL
from kiltmq.broker.shovel import Shovel, Shovels
from kiltmq.broker.shovel_parameter import ShovelInvalid
from kiltmq.broker.snapshots import TopicPermissionInfo
from kiltmq.broker.store import Store
from kiltmq.broker.user_limits import UserLimitError, parse_user_limits
from kiltmq.broker.vhost import VirtualHost
from kiltmq.broker.vhost_metadata import VhostMetadata
from kiltmq.protocol.errors import AMQPError
from kiltmq.version import __version__

__all__ = ["RABBIT_VERSION", "DefinitionsAdmin", "DefinitionsBroker", "json_value"]

#: The RabbitMQ release whose definitions format this is (``rabbit_version``).
RABBIT_VERSION = "3.10.8"
_SECTIONS = (
    "users", "vhosts", "permissions", "topic_permissions", "parameters",
    "global_parameters", "policies", "queues", "exchanges", "bindings",
)


class DefinitionsBroker(Protocol):
    """What :class:`DefinitionsAdmin` needs of the broker."""

    @property
    def vhosts(self) -> Mapping[str, VirtualHost]: ...

    @property
    def auth(self) -> AuthDB: ...

    @property
    def store(self) -> Store: ...

    @property
    def shovels(self) -> Shovels: ...


class _Admin(Protocol):
    """What :class:`DefinitionsAdmin` uses of the rest of the admin interface."""

    @property
    def broker(self) -> DefinitionsBroker: ...

    def vhost(self, name: str) -> VirtualHost: ...

    def add_vhost(self, name: str, *, users: Iterable[str] | None = None) -> bool: ...

    def set_permissions(
        self, user: str, vhost: str, configure: str, write: str, read: str
    ) -> None: ...

    def set_vhost_limits(self, vhost: str, limits: str | Mapping[str, Any]) -> None: ...

    def topic_permissions(
        self, vhost: str | None = None, user: str | None = None
    ) -> list[TopicPermissionInfo]: ...

    def set_topic_permissions(
        self, user: str, vhost: str, exchange: str, write: str, read: str
    ) -> bool: ...

    def set_policy(
        self, vhost: str, name: str, pattern: Any, definition: Any, *,
        priority: Any = 0, apply_to: Any = "all", operator: bool = False,
    ) -> Policy: ...


def _scalar(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def json_value(value: Any) -> Any:
    """A field table value as JSON carries it (bytes as text, other odd types as their
    ``str``); without recursion, as tables may nest deeper than Python's stack."""
    root: list[Any] = [None]
    todo: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while todo:
        item, parent, key = todo.pop()
        if isinstance(item, dict):
            copy: Any = dict.fromkeys(str(k) for k in item)
            todo.extend((v, copy, str(k)) for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            copy = [None] * len(item)
            todo.extend((v, copy, i) for i, v in enumerate(item))
        else:
            copy = _scalar(item)
        parent[key] = copy
    return root[0]


def _policy_parameter(policy: Policy) -> dict[str, Any]:
    return {
        "value": {
            "pattern": policy.pattern,
            "definition": dict(policy.definition),
            "priority": policy.priority,
            "apply-to": policy.apply_to,
        },
        "vhost": policy.vhost,
        "component": "operator_policy",
        "name": policy.name,
    }


def _vhost_content(
    host: VirtualHost, with_vhost: bool, shovels: list[Shovel]
) -> dict[str, list[dict[str, Any]]]:
    """The parameters (``shovels`` of the vhost too), policies, queues, exchanges and
    bindings of one vhost."""
    where = {"vhost": host.name} if with_vhost else {}
    parameters: list[dict[str, Any]] = [
        _policy_parameter(p) for _n, p in sorted(host.policies.operator_policies.items())
    ]
    if host.limits:
        parameters.append({
            "value": dict(host.limits), "vhost": host.name, "component": "vhost-limits",
            "name": "limits",
        })
    parameters.extend(
        {"value": json_value(dict(s.value)), "vhost": host.name, "component": SHOVEL,
         "name": s.name}
        for s in sorted(shovels, key=lambda s: s.name)
    )
    queues = [
        {"name": q.name, **where, "durable": q.durable, "auto_delete": q.auto_delete,
         "arguments": json_value(q.arguments)}
        for _n, q in sorted(host.queues.items()) if not q.exclusive
    ]
    exchanges = [
        {"name": x.name, **where, "type": x.TYPE, "durable": x.durable,
         "auto_delete": x.auto_delete, "internal": x.internal,
         "arguments": json_value(x.arguments)}
        for _n, x in sorted(host.exchanges.items()) if x.name and not x.name.startswith("amq.")
    ]
    bindings = [
        {"source": b.source.name, **where, "destination": b.destination.name,
         "destination_type": b.destination_type, "routing_key": b.routing_key,
         "arguments": json_value(b.arguments)}
        for _n, x in sorted(host.exchanges.items()) if x is not host.default_exchange
        for b in x.bindings.values()
        if not getattr(b.destination, "exclusive", False)
    ]
    bindings.sort(key=lambda b: (b["source"], b["destination_type"], b["destination"],
                                 b["routing_key"]))
    return {
        "parameters": parameters,
        "policies": [p.as_json() for _n, p in sorted(host.policies.policies.items())],
        "queues": queues,
        "exchanges": exchanges,
        "bindings": bindings,
    }


def _list(data: Mapping[str, Any], section: str) -> list[Mapping[str, Any]]:
    items = data.get(section) or []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise AdminError(f"definitions: '{section}' must be a list of objects")
    return items


def _text(item: Mapping[str, Any], key: str, section: str, default: str | None = None) -> str:
    value = item.get(key, default)
    if not isinstance(value, str):
        raise AdminError(f"definitions: each of '{section}' needs a string '{key}'")
    return value


def _user(item: Mapping[str, Any]) -> User:
    user = _user_login(item)
    limits = item.get("limits") or {}
    try:
        user.limits = parse_user_limits(limits if limits != [] else {})
    except UserLimitError as error:
        raise AdminError(f"definitions: the limits of user '{user.name}': {error}") from None
    return user


def _user_login(item: Mapping[str, Any]) -> User:
    name = _text(item, "name", "users")
    if not name:
        raise AdminError("definitions: a user name cannot be empty")
    tags = item.get("tags", [])
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise AdminError(f"definitions: the tags of user '{name}' must be a list or a string")
    password = item.get("password")
    if isinstance(password, str) and "password_hash" not in item:
        return User(name, hash_password(password), frozenset(tags))
    password_hash = item.get("password_hash") or ""
    if not isinstance(password_hash, str):
        raise AdminError(f"definitions: the password_hash of user '{name}' must be a string")
    if not password_hash:
        return User(name, None, frozenset(tags))
    algorithm = hashing_algorithm(password_hash)
    declared = item.get("hashing_algorithm", algorithm)
    if algorithm is None or declared != algorithm:
        raise AdminError(
            f"definitions: user '{name}' has a password hash kiltmq cannot use "
            f"({declared or 'unknown hashing algorithm'})"
        )
    return User(name, password_hash, frozenset(tags))


class DefinitionsAdmin:
    """Definitions methods of :class:`~kiltmq.broker.admin.Admin` (a mixin)."""

    def export_definitions(self: _Admin, vhost: str | None = None) -> dict[str, Any]:
        """Everything (``vhost`` None) or one vhost's content, as RabbitMQ 3.10's
        ``GET /api/definitions`` (``/api/definitions/<vhost>``) answers."""
        shovels = self.broker.shovels
        if vhost is not None:
            content = _vhost_content(self.vhost(vhost), False, shovels.all(vhost))
            return {"rabbit_version": RABBIT_VERSION, **content}
        broker = self.broker
        auth = broker.auth
        cluster_name = getattr(broker, "cluster_name", None)
        users = [
            {
                "name": u.name,
                "password_hash": u.password_hash or "",
                "hashing_algorithm": (
                    hashing_algorithm(u.password_hash) if u.password_hash else None
                ) or "rabbit_password_hashing_sha256",
                "tags": sorted(u.tags),
                "limits": dict(u.limits),
            }
            for _n, u in sorted(auth.users.items())
        ]
        permissions = [
            {"user": u, "vhost": v, "configure": p.configure, "write": p.write, "read": p.read}
            for (u, v), p in sorted(auth.permissions.items(), key=lambda i: (i[0][1], i[0][0]))
        ]
        merged: dict[str, list[dict[str, Any]]] = {
            "parameters": [], "policies": [], "queues": [], "exchanges": [], "bindings": [],
        }
        for _name, host in sorted(broker.vhosts.items()):
            for section, items in _vhost_content(host, True, shovels.all(host.name)).items():
                merged[section].extend(items)
        return {
            "rabbit_version": RABBIT_VERSION,
            "rabbitmq_version": RABBIT_VERSION,
            "product_name": "kiltmq",
            "product_version": __version__,
            "users": users,
            "vhosts": [{"name": name} for name in sorted(broker.vhosts)],
            "permissions": permissions,
            "topic_permissions": [
                {"user": t.user, "vhost": t.vhost, "exchange": t.exchange,
                 "write": t.write, "read": t.read}
                for t in self.topic_permissions()
            ],
            "parameters": merged["parameters"],
            "global_parameters": (
                [{"name": "cluster_name", "value": cluster_name}] if cluster_name else []
            ),
            "policies": merged["policies"],
            "queues": merged["queues"],
            "exchanges": merged["exchanges"],
            "bindings": merged["bindings"],
        }

    def import_definitions(self: _Admin, data: Any, vhost: str | None = None) -> None:
        """Load definitions as exported by RabbitMQ 3.10 or :meth:`export_definitions`
        (a JSON object): for the whole broker, or (``vhost`` given) the parameters,
        policies, queues, exchanges and bindings of one vhost, whatever vhost they name.
        AdminError says what could not be loaded (what came before it stays loaded)."""
        if not isinstance(data, Mapping):
            raise AdminError("definitions must be a JSON object")
        sections = {s: _list(data, s) for s in _SECTIONS}
        if vhost is not None:
            self.vhost(vhost)
        else:
            broker = self.broker
            for user in [_user(item) for item in sections["users"]]:
                old = broker.auth.users.get(user.name)
                if old is not None:  # limits not named stay, as RabbitMQ's
                    user.limits = {**old.limits, **user.limits}
                broker.auth.add_user(user)
                broker.store.user_added(user)
            for item in sections["vhosts"]:
                name = _text(item, "name", "vhosts")
                self.add_vhost(name, users=[])
                _set_metadata(self.vhost(name), item)
            for item in sections["permissions"]:
                self.set_permissions(
                    _text(item, "user", "permissions"),
                    _text(item, "vhost", "permissions"),
                    _text(item, "configure", "permissions"),
                    _text(item, "write", "permissions"),
                    _text(item, "read", "permissions"),
                )
            for item in sections["topic_permissions"]:
                self.set_topic_permissions(
                    _text(item, "user", "topic_permissions"),
                    _text(item, "vhost", "topic_permissions"),
                    _text(item, "exchange", "topic_permissions"),
                    _text(item, "write", "topic_permissions"),
                    _text(item, "read", "topic_permissions"),
                )

        def where(item: Mapping[str, Any], section: str) -> str:
            return vhost if vhost is not None else _text(item, "vhost", section, "/")

        shovels: list[tuple[str, str, Any]] = []
        for item in sections["parameters"]:
            component = _text(item, "component", "parameters")
            target = where(item, "parameters")
            value = item.get("value")
            if component == "vhost-limits":
                if value == []:  # RabbitMQ's export of cleared limits (an empty proplist)
                    value = {}
                if not isinstance(value, Mapping):
                    raise AdminError("definitions: vhost limits must be a JSON object")
                self.set_vhost_limits(target, value)
            elif component == "operator_policy":
                _set_policy(self, target, _text(item, "name", "parameters"), value, True)
            elif component == SHOVEL:  # started once the queues are there
                self.vhost(target)
                shovels.append((target, _text(item, "name", "parameters"), value))
            else:
                raise AdminError(f"definitions: component {component} not found")
        for item in sections["policies"]:
            _set_policy(self, where(item, "policies"), _text(item, "name", "policies"), item,
                        False)
        for item in sections["queues"]:
            _declare_queue(self.vhost(where(item, "queues")), item)
        for item in sections["exchanges"]:
            _declare_exchange(self.vhost(where(item, "exchanges")), item)
        for item in sections["bindings"]:
            _bind(self.vhost(where(item, "bindings")), item)
        for target, name, value in shovels:
            _add_shovel(self, target, name, value)


def _add_shovel(admin: _Admin, vhost: str, name: str, value: Any) -> None:
    """Start a shovel of the definitions (listed terminated if a queue is missing)."""
    broker = admin.broker

    def find(where: str, queue: str) -> Queue | None:
        host = broker.vhosts.get(where)
        return None if host is None else host.queues.get(queue)

    try:
        broker.shovels.add(vhost, name, value, find)
    except ShovelInvalid as error:
        raise AdminError(f"definitions: shovel '{name}' in vhost '{vhost}': {error}") from None


def _set_metadata(host: VirtualHost, item: Mapping[str, Any]) -> None:
    """The description and tags of a later RabbitMQ's export (3.10's has none)."""
    meta = item.get("metadata")
    meta = meta if isinstance(meta, Mapping) else item
    description, tags = meta.get("description"), meta.get("tags")
    if description is None and tags is None:
        return
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    if not isinstance(description or "", str) or not isinstance(tags or [], list):
        raise AdminError(f"definitions: the metadata of vhost '{host.name}' is not valid")
    queue_type = item.get("default_queue_type")
    host.set_metadata(VhostMetadata.of(
        description or "", [str(t) for t in tags or []],
        queue_type if isinstance(queue_type, str) else None,
    ))


def _set_policy(admin: _Admin, vhost: str, name: str, value: Any, operator: bool) -> None:
    if not isinstance(value, Mapping):
        raise AdminError(f"definitions: policy '{name}' must be a JSON object")
    try:
        admin.set_policy(
            vhost, name, value.get("pattern"), value.get("definition"),
            priority=value.get("priority", 0), apply_to=value.get("apply-to", "all"),
            operator=operator,
        )
    except PolicyInvalid as error:
        error.reason = f"{error.reason} ({vhost}/{name})"  # which one, as RabbitMQ says
        raise


def _arguments(item: Mapping[str, Any], section: str) -> dict[str, Any]:
    arguments = item.get("arguments") or {}
    if not isinstance(arguments, Mapping):
        raise AdminError(f"definitions: the arguments in '{section}' must be objects")
    return dict(arguments)


def _declare_queue(host: VirtualHost, item: Mapping[str, Any]) -> None:
    name = _text(item, "name", "queues")
    if name in host.queues:
        return
    try:
        host.declare_queue(
            name,
            durable=item.get("durable", True) is True,
            auto_delete=item.get("auto_delete", False) is True,
            arguments=_arguments(item, "queues"),
        )
    except AMQPError as error:
        raise AdminError(error.reply_text) from None


def _declare_exchange(host: VirtualHost, item: Mapping[str, Any]) -> None:
    name = _text(item, "name", "exchanges")
    if name in host.exchanges or name.startswith("amq."):
        return
    try:
        host.declare_exchange(
            name,
            _text(item, "type", "exchanges"),
            durable=item.get("durable", True) is True,
            auto_delete=item.get("auto_delete", False) is True,
            internal=item.get("internal", False) is True,
            arguments=_arguments(item, "exchanges"),
        )
    except AMQPError as error:
        raise AdminError(error.reply_text) from None


def _bind(host: VirtualHost, item: Mapping[str, Any]) -> None:
    source_name = _text(item, "source", "bindings")
    if not source_name:
        return  # the default exchange binds every queue by itself
    source = host.exchanges.get(source_name)
    if source is None:
        raise AdminError(f"definitions: no exchange '{source_name}' in vhost '{host.name}'")
    destination_name = _text(item, "destination", "bindings")
    kind = _text(item, "destination_type", "bindings", "queue")
    destination = (host.exchanges if kind == "exchange" else host.queues).get(destination_name)
    if destination is None:
        raise AdminError(
            f"definitions: no {kind} '{destination_name}' in vhost '{host.name}'"
        )
    try:
        host.bind(source, destination, _text(item, "routing_key", "bindings", ""),
                  _arguments(item, "bindings"))
    except AMQPError as error:
        raise AdminError(error.reply_text) from None
