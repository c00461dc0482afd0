"""How ``kiltmq ctl`` prints vhost and user limits, as ``rabbitmqctl list_vhost_limits``
and ``list_user_limits`` do: compact JSON with sorted keys, after the vhost's or user's
name in a table for ``--global``."""

from __future__ import annotations

import json
from typing import Any

from kiltmq.cli.table import table

__all__ = ["format_limits"]


def format_limits(result: list[dict[str, Any]], owner: str, *, every: bool, header: bool) -> str:
    """Rows of ``{owner: name, "limits": {...}}`` as text. For one vhost nothing is
    printed without limits; for one user ``{}`` is (as rabbitmqctl)."""
    rows = [(r[owner], json.dumps(r["limits"], separators=(",", ":"), sort_keys=True))
            for r in result]
    if not every:
        return "\n".join(
            limits for _name, limits in rows if limits != "{}" or owner == "user"
        )
    return table([{owner: n, "limits": lim} for n, lim in rows], (owner, "limits"),
                 header=header).rstrip("\n")
