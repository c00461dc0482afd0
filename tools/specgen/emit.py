"""What the emitted code is made of: a writer of indented lines, the Python type and
default of each wire type, the struct code of each fixed-size one, and tuple literals."""

from __future__ import annotations

from specgen.model import Field

# Fixed-size wire types and their struct codes.
FIXED = {"octet": "B", "short": "H", "long": "I", "longlong": "Q", "timestamp": "Q"}
PY_TYPES = {
    "bit": "bool",
    "octet": "int",
    "short": "int",
    "long": "int",
    "longlong": "int",
    "timestamp": "int",
    "shortstr": "str",
    "longstr": "bytes",
    "table": "FieldTable | None",
}
DEFAULTS = {
    "bit": "False",
    "octet": "0",
    "short": "0",
    "long": "0",
    "longlong": "0",
    "timestamp": "0",
    "shortstr": '""',
    "longstr": 'b""',
    "table": "None",
}


class Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "", indent: int = 0) -> None:
        self.lines.append(("    " * indent + line) if line else "")


def tuple_literal(items: list[str]) -> str:
    inner = ", ".join(f'"{i}"' for i in items)
    return f"({inner},)" if len(items) == 1 else f"({inner})"


def wire_fields_literal(fields: list[Field]) -> str:
    """``((spec name, wire type), ...)`` of ``fields``, in wire order."""
    inner = ", ".join(f'("{f.name}", "{f.type}")' for f in fields)
    return f"({inner},)" if len(fields) == 1 else f"({inner})"
