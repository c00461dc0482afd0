"""The aligned text tables ``kiltmq ctl`` prints."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["table"]


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
