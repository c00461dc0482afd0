"""What ``kiltmq ctl`` prints: aligned tables, the status page, confirmation lines."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["COLUMNS", "QUEUE_COLUMNS", "confirmation", "format_limits", "format_status", "table"]


def _cell(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, header: bool = True) -> str:
    """``rows`` as an aligned text table of ``columns`` (cells separated by two spaces,
    the last column not padded)."""
    lines = [[_cell(row.get(c)) for c in columns] for row in rows]
    if header:
        lines.insert(0, list(columns))
    if not lines:
        return ""
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    out = []
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        cells[-1] = line[-1]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"


_POLICY_COLUMNS = ("vhost", "name", "pattern", "apply-to", "definition", "priority")
#: The columns list_queues can show.
QUEUE_COLUMNS = (
    "name", "type", "messages", "messages_ready", "messages_unacknowledged", "consumers",
    "durable", "auto_delete", "exclusive",
)
#: Columns of the text tables of the list commands.
COLUMNS: dict[str, tuple[str, ...]] = {
    "list_vhosts": ("name",),
    "list_users": ("user", "tags"),
    "list_permissions": ("user", "configure", "write", "read"),
    "list_topic_permissions": ("user", "exchange", "write", "read"),
    "list_user_topic_permissions": ("vhost", "exchange", "write", "read"),
    "list_exchanges": ("name", "type", "durable", "auto_delete", "internal"),
    "list_queues": QUEUE_COLUMNS,
    "list_bindings": (
        "source_name", "source_kind", "destination_name", "destination_kind", "routing_key",
    ),
    "list_connections": ("name", "peer", "user", "vhost", "channels"),
    "list_policies": _POLICY_COLUMNS,
    "list_operator_policies": _POLICY_COLUMNS,
    "list_consumers": (
        "queue_name", "consumer_tag", "connection", "channel", "ack_required",
        "prefetch_count", "exclusive",
    ),
}


def _size(value: int | None) -> str:
    if value is None:
        return "unknown"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"  # pragma: no cover


def _duration(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if days or hours:
        parts.append(f"{hours} h")
    if days or hours or minutes:
        parts.append(f"{minutes} min")
    parts.append(f"{secs} s")
    return " ".join(parts)


def _alarm(status: dict[str, Any], resource: str) -> str:
    alarms = status.get("alarms") or (["memory"] if status.get("memory_alarm") else [])
    return "publishers blocked" if resource in alarms else "none"


def format_status(status: dict[str, Any]) -> str:
    limit = status.get("memory_limit")
    memory = f"{_size(status.get('queued_bytes'))} in queued messages"
    memory += f" (limit {_size(limit)})" if limit else " (no limit)"
    memory += f", process {_size(status.get('process_memory'))}"
    items = [
        ("version", f"kiltmq {status.get('version')} on Python {status.get('python')}"),
        ("pid", status.get("pid")),
        ("uptime", _duration(float(status.get("uptime") or 0))),
        ("listeners", ", ".join(status.get("listeners") or [])),
        ("connections", status.get("connections")),
        ("channels", status.get("channels")),
        ("vhosts", status.get("vhosts")),
        ("queues", status.get("queues")),
        ("messages", status.get("messages")),
        ("memory", memory),
        ("memory alarm", _alarm(status, "memory")),
        ("disk alarm", _alarm(status, "disk")),
        ("data dir", status.get("data_dir") or "none (memory-only)"),
        ("ctl socket", status.get("ctl_socket")),
    ]
    width = max(len(key) for key, _ in items) + 1
    return "".join(f"{(key + ':').ljust(width)} {value}\n" for key, value in items)


def confirmation(command: str, args: argparse.Namespace, result: Any) -> str | None:
    vhost = getattr(args, "vhost", None)
    name = getattr(args, "name", None)
    if command == "add_vhost":
        return f"vhost '{name}' added" if result.get("created") else f"vhost '{name}' exists"
    if command == "delete_vhost":
        return f"vhost '{name}' deleted"
    if command == "add_user":
        return f"user '{name}' added"
    if command == "delete_user":
        closed = result.get("connections_closed", 0)
        return f"user '{name}' deleted" + (f", {closed} connection(s) closed" if closed else "")
    if command == "change_password":
        return f"password of user '{name}' changed"
    if command == "set_user_tags":
        return f"tags of user '{name}' set to [{', '.join(args.tags)}]"
    if command == "set_permissions":
        return f"permissions of user '{args.user}' in vhost '{vhost}' set"
    if command == "clear_permissions":
        return f"permissions of user '{args.user}' in vhost '{vhost}' cleared"
    if command == "set_topic_permissions":
        return (
            f"topic permissions of user '{args.user}' for exchange '{args.exchange}' in "
            f"vhost '{vhost}' set"
        )
    if command == "clear_topic_permissions":
        which = "" if args.exchange is None else f" for exchange '{args.exchange}'"
        return f"topic permissions of user '{args.user}'{which} in vhost '{vhost}' cleared"
    if command == "set_vhost_limits":
        return f"limits of vhost '{vhost}' set to {args.definition}"
    if command == "clear_vhost_limits":
        return f"limits of vhost '{vhost}' cleared"
    if command == "set_user_limits":
        return f"limits of user '{name}' set to {args.definition}"
    if command == "clear_user_limits":
        what = "limits" if args.limit == "all" else f"limit {args.limit}"
        return f"{what} of user '{name}' cleared"
    if command in ("set_policy", "set_operator_policy"):
        kind = "operator policy" if command == "set_operator_policy" else "policy"
        return f"{kind} '{name}' set in vhost '{vhost}'"
    if command in ("clear_policy", "clear_operator_policy"):
        kind = "operator policy" if command == "clear_operator_policy" else "policy"
        return f"{kind} '{name}' cleared in vhost '{vhost}'"
    if command == "import_definitions":
        return f"definitions imported from {'standard input' if args.file == '-' else args.file}"
    if command == "export_definitions" and args.file != "-":
        return f"definitions exported to {args.file}"
    if command == "close_connection":
        return "\n".join(
            f"closed connection {c['peer']}" + (f" ({c['name']})" if c.get("name") else "")
            for c in result
        )
    if command == "purge_queue":
        return f"purged {result['messages']} message(s) from queue '{name}' in vhost '{vhost}'"
    if command == "delete_queue":
        return (
            f"deleted queue '{name}' in vhost '{vhost}' with {result['messages']} message(s)"
        )
    return None


def format_limits(result: list[dict[str, Any]], owner: str, *, every: bool, header: bool) -> str:
    """Limits as ``rabbitmqctl list_vhost_limits`` and ``list_user_limits`` show them:
    compact JSON with sorted keys, after the vhost's or user's name for ``--global``. For
    one vhost nothing is printed without limits; for one user ``{}`` is (as rabbitmqctl)."""
    rows = [(r[owner], json.dumps(r["limits"], separators=(",", ":"), sort_keys=True))
            for r in result]
    if not every:
        return "\n".join(
            limits for _name, limits in rows if limits != "{}" or owner == "user"
        )
    return table([{owner: n, "limits": lim} for n, lim in rows], (owner, "limits"),
                 header=header).rstrip("\n")
