"""Definitions files for ``kiltmq ctl export_definitions`` and ``import_definitions``:
RabbitMQ's JSON in a file, or on standard input and output for ``-``."""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["DefinitionsFileError", "read_definitions", "write_definitions"]


class DefinitionsFileError(Exception):
    """The file cannot be read, written or parsed; the message is one line."""


def read_definitions(path: str) -> Any:
    """The JSON in file ``path`` (``-``: standard input)."""
    where = "standard input" if path == "-" else path
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as file:
                text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise DefinitionsFileError(f"cannot read {where}: {reason}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DefinitionsFileError(f"{where} is not JSON: {exc}") from None


def write_definitions(path: str, definitions: Any) -> None:
    """Write ``definitions`` as compact JSON, as RabbitMQ does, to ``path`` (``-``:
    standard output)."""
    text = json.dumps(definitions, separators=(",", ":")) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise DefinitionsFileError(f"cannot write {path}: {exc.strerror or exc}") from None
