"""The commands of the control socket (:mod:`kiltmq.broker.control`): each takes the
request's arguments, acts through :class:`~kiltmq.broker.admin.Admin` on the broker's loop,
and returns a JSON value, or raises :class:`~kiltmq.broker.admin.AdminError`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from kiltmq.broker.admin import Admin, AdminError
from kiltmq.broker.definitions import json_value

__all__ = ["COMMANDS", "Handler"]

#: A command: the broker's admin and the request's arguments to its JSON result.
Handler = Callable[[Admin, dict[str, Any]], Any]


def _str(args: dict[str, Any], name: str, default: str | None = None) -> str:
    value = args.get(name, default)
    if not isinstance(value, str):
        raise AdminError(f"argument '{name}' must be a string")
    return value


def _bool(args: dict[str, Any], name: str) -> bool:
    value = args.get(name, False)
    if not isinstance(value, bool):
        raise AdminError(f"argument '{name}' must be true or false")
    return value


def _vhost(args: dict[str, Any]) -> str:
    return _str(args, "vhost", "/")


def _status(admin: Admin, args: dict[str, Any]) -> Any:
    return asdict(admin.status())


def _list_vhosts(admin: Admin, args: dict[str, Any]) -> Any:
    return [{"name": name} for name in admin.vhost_names()]


def _add_vhost(admin: Admin, args: dict[str, Any]) -> Any:
    return {"created": admin.add_vhost(_str(args, "name"))}


def _delete_vhost(admin: Admin, args: dict[str, Any]) -> Any:
    admin.delete_vhost(_str(args, "name"))
    return None


def _list_users(admin: Admin, args: dict[str, Any]) -> Any:
    return [{"user": u.name, "tags": list(u.tags)} for u in admin.users()]


def _add_user(admin: Admin, args: dict[str, Any]) -> Any:
    tags = args.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise AdminError("argument 'tags' must be a list of strings")
    admin.add_user(_str(args, "name"), _str(args, "password"), tags)
    return None


def _delete_user(admin: Admin, args: dict[str, Any]) -> Any:
    closed = admin.delete_user(_str(args, "name"))
    return {"connections_closed": len(closed)}


def _set_user_tags(admin: Admin, args: dict[str, Any]) -> Any:
    tags = args.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise AdminError("argument 'tags' must be a list of strings")
    user = admin.user(_str(args, "name"))
    admin.put_user(user.name, user.password_hash, tags)
    return None


def _change_password(admin: Admin, args: dict[str, Any]) -> Any:
    admin.change_password(_str(args, "name"), _str(args, "password"))
    return None


def _set_permissions(admin: Admin, args: dict[str, Any]) -> Any:
    admin.set_permissions(
        _str(args, "user"),
        _vhost(args),
        _str(args, "configure"),
        _str(args, "write"),
        _str(args, "read"),
    )
    return None


def _clear_permissions(admin: Admin, args: dict[str, Any]) -> Any:
    admin.clear_permissions(_str(args, "user"), _vhost(args))
    return None


def _list_permissions(admin: Admin, args: dict[str, Any]) -> Any:
    return [
        {"user": p.user, "configure": p.configure, "write": p.write, "read": p.read}
        for p in admin.permissions(_vhost(args))
    ]


def _set_topic_permissions(admin: Admin, args: dict[str, Any]) -> Any:
    admin.set_topic_permissions(
        _str(args, "user"),
        _vhost(args),
        _str(args, "exchange"),
        _str(args, "write"),
        _str(args, "read"),
    )
    return None


def _clear_topic_permissions(admin: Admin, args: dict[str, Any]) -> Any:
    exchange = args.get("exchange")
    admin.clear_topic_permissions(
        _str(args, "user"), _vhost(args), None if exchange is None else _str(args, "exchange")
    )
    return None


def _list_topic_permissions(admin: Admin, args: dict[str, Any]) -> Any:
    vhost = _vhost(args)
    admin.vhost(vhost)
    return [
        {"user": t.user, "exchange": t.exchange, "write": t.write, "read": t.read}
        for t in admin.topic_permissions(vhost=vhost)
    ]


def _list_user_topic_permissions(admin: Admin, args: dict[str, Any]) -> Any:
    user = admin.user(_str(args, "name"))
    return [
        {"vhost": t.vhost, "exchange": t.exchange, "write": t.write, "read": t.read}
        for t in admin.topic_permissions(user=user.name)
    ]


def _set_vhost_limits(admin: Admin, args: dict[str, Any]) -> Any:
    definition = args.get("definition")
    if not isinstance(definition, (str, dict)):
        raise AdminError("argument 'definition' must be a JSON object or its text")
    admin.set_vhost_limits(_vhost(args), definition)
    return None


def _clear_vhost_limits(admin: Admin, args: dict[str, Any]) -> Any:
    admin.set_vhost_limits(_vhost(args), {})
    return None


def _list_vhost_limits(admin: Admin, args: dict[str, Any]) -> Any:
    vhost = None if _bool(args, "global") else _vhost(args)
    return [{"vhost": name, "limits": limits} for name, limits in admin.vhost_limits(vhost)]


def _set_user_limits(admin: Admin, args: dict[str, Any]) -> Any:
    definition = args.get("definition")
    if not isinstance(definition, (str, dict)):
        raise AdminError("argument 'definition' must be a JSON object or its text")
    admin.set_user_limits(_str(args, "name"), definition)
    return None


def _clear_user_limits(admin: Admin, args: dict[str, Any]) -> Any:
    admin.clear_user_limits(_str(args, "name"), _str(args, "limit", "all"))
    return None


def _list_user_limits(admin: Admin, args: dict[str, Any]) -> Any:
    user = None if _bool(args, "global") else _str(args, "user", "guest")
    return [{"user": name, "limits": limits} for name, limits in admin.user_limits(user)]


def _list_exchanges(admin: Admin, args: dict[str, Any]) -> Any:
    columns = "name type durable auto_delete internal arguments"
    return _rows(admin.exchanges(_vhost(args)), columns)


def _list_queues(admin: Admin, args: dict[str, Any]) -> Any:
    columns = (
        "name type messages messages_ready=ready messages_unacknowledged=unacked consumers "
        "durable auto_delete exclusive arguments"
    )
    return _rows(admin.queues(_vhost(args)), columns)


def _list_bindings(admin: Admin, args: dict[str, Any]) -> Any:
    return [
        {
            "source_name": b.source,
            "source_kind": "exchange",
            "destination_name": b.destination,
            "destination_kind": b.destination_type,
            "routing_key": b.routing_key,
            "arguments": json_value(b.arguments),
        }
        for b in admin.bindings(_vhost(args))
    ]


def _list_connections(admin: Admin, args: dict[str, Any]) -> Any:
    vhost = args.get("vhost")
    if vhost is not None:
        vhost = _str(args, "vhost")
        admin.vhost(vhost)
    columns = "name peer user vhost channels product"
    return _rows(admin.connections(vhost=vhost), columns)


def _list_consumers(admin: Admin, args: dict[str, Any]) -> Any:
    return [
        {
            "queue_name": c.queue,
            "consumer_tag": c.tag,
            "connection": c.connection.peer,
            "channel": c.channel,
            "ack_required": not c.no_ack,
            "prefetch_count": c.prefetch,
            "exclusive": c.exclusive,
            "arguments": json_value(c.arguments),
        }
        for c in admin.consumers(_vhost(args))
    ]


def _close_connection(admin: Admin, args: dict[str, Any]) -> Any:
    which = _str(args, "connection")
    reason = _str(args, "reason", "closed via kiltmq ctl")
    connections = admin.open_connections(name_or_peer=which)
    if not connections:
        raise AdminError(f"no such connection '{which}'")
    closed = admin.close_connections(connections, f"CONNECTION_FORCED - {reason}")
    return [{"name": c.name, "peer": c.peer} for c in closed]


def _purge_queue(admin: Admin, args: dict[str, Any]) -> Any:
    return {"messages": admin.purge_queue(_vhost(args), _str(args, "name"))}


def _delete_queue(admin: Admin, args: dict[str, Any]) -> Any:
    count = admin.delete_queue(
        _vhost(args),
        _str(args, "name"),
        if_unused=_bool(args, "if_unused"),
        if_empty=_bool(args, "if_empty"),
    )
    return {"messages": count}


def _set_policy(admin: Admin, args: dict[str, Any], operator: bool = False) -> Any:
    policy = admin.set_policy(
        _vhost(args), _str(args, "name"), _str(args, "pattern"), args.get("definition"),
        priority=args.get("priority", 0), apply_to=args.get("apply_to", "all"),
        operator=operator,
    )
    return policy.as_json()


def _clear_policy(admin: Admin, args: dict[str, Any], operator: bool = False) -> Any:
    admin.clear_policy(_vhost(args), _str(args, "name"), operator=operator)
    return None


def _list_policies(admin: Admin, args: dict[str, Any], operator: bool = False) -> Any:
    return [p.as_json() for p in admin.policies(_vhost(args), operator=operator)]


def _export_definitions(admin: Admin, args: dict[str, Any]) -> Any:
    vhost = args.get("vhost")
    return admin.export_definitions(None if vhost is None else _str(args, "vhost"))


def _import_definitions(admin: Admin, args: dict[str, Any]) -> Any:
    vhost = args.get("vhost")
    admin.import_definitions(
        args.get("definitions"), None if vhost is None else _str(args, "vhost")
    )
    return None


#: Command name -> (handler, whether it changes what the store keeps).
COMMANDS: dict[str, tuple[Handler, bool]] = {
    "status": (_status, False),
    "list_vhosts": (_list_vhosts, False),
    "add_vhost": (_add_vhost, True),
    "delete_vhost": (_delete_vhost, True),
    "list_users": (_list_users, False),
    "add_user": (_add_user, True),
    "delete_user": (_delete_user, True),
    "change_password": (_change_password, True),
    "set_user_tags": (_set_user_tags, True),
    "set_permissions": (_set_permissions, True),
    "clear_permissions": (_clear_permissions, True),
    "list_permissions": (_list_permissions, False),
    "set_topic_permissions": (_set_topic_permissions, True),
    "clear_topic_permissions": (_clear_topic_permissions, True),
    "list_topic_permissions": (_list_topic_permissions, False),
    "list_user_topic_permissions": (_list_user_topic_permissions, False),
    "set_vhost_limits": (_set_vhost_limits, True),
    "clear_vhost_limits": (_clear_vhost_limits, True),
    "list_vhost_limits": (_list_vhost_limits, False),
    "set_user_limits": (_set_user_limits, True),
    "clear_user_limits": (_clear_user_limits, True),
    "list_user_limits": (_list_user_limits, False),
    "list_exchanges": (_list_exchanges, False),
    "list_queues": (_list_queues, False),
    "list_bindings": (_list_bindings, False),
    "list_connections": (_list_connections, False),
    "list_consumers": (_list_consumers, False),
    "close_connection": (_close_connection, False),
    "purge_queue": (_purge_queue, True),
    "delete_queue": (_delete_queue, True),
    "set_policy": (_set_policy, True),
    "clear_policy": (_clear_policy, True),
    "list_policies": (_list_policies, False),
    "set_operator_policy": (lambda a, r: _set_policy(a, r, True), True),
    "clear_operator_policy": (lambda a, r: _clear_policy(a, r, True), True),
    "list_operator_policies": (lambda a, r: _list_policies(a, r, True), False),
    "export_definitions": (_export_definitions, False),
    "import_definitions": (_import_definitions, True),
}


def _rows(snapshots: Iterable[Any], columns: str) -> list[dict[str, Any]]:
    """Each of ``snapshots`` as a JSON object with the space-separated ``columns``: a
    column ``key`` is the snapshot's attribute of that name, ``key=name`` its attribute
    ``name`` (field tables made plain)."""
    pairs = [column.partition("=")[::2] for column in columns.split()]
    return [{key: json_value(getattr(s, name or key)) for key, name in pairs} for s in snapshots]
