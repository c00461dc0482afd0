"""The normalized record of a compatibility scenario: what the broker answered, in the
order the scenario read it.

Entries are ``(who, method name, fields)``. Names are normalized when recorded: the
scenario's unique name prefix is removed, and server-generated names (``amq.gen-...``,
``amq.ctag-...``) become ``amq.gen-#1``, ``amq.ctag-#2`` ... numbered in order of first
appearance, so that identity is kept (the same generated name always maps to the same
placeholder). Two transcripts of the same scenario against two brokers can then be
compared for equality.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from kiltmq.protocol import ContentReceived, Method, MethodReceived, ProtocolError
from kiltmq.protocol.codec import decode_field_value

Entry = tuple[str, str, dict[str, Any]]

_GEN = re.compile(r"amq\.(gen|ctag)-[A-Za-z0-9_\-]+")


class Closed:
    """Marker put in every inbox of a connection when its socket reaches EOF."""

    def __repr__(self) -> str:
        return "Closed()"


Item = MethodReceived | ContentReceived | ProtocolError | Closed


class Transcript:
    """The normalized record of one scenario run."""

    def __init__(self, prefix: str, text_rules: Iterable[tuple[str, str]] = ()) -> None:
        self.prefix = prefix
        self.entries: list[Entry] = []
        self._generated: dict[str, str] = {}
        self._text_rules = [(re.compile(p), r) for p, r in text_rules]

    def norm(self, value: Any) -> Any:
        """Normalize names inside ``value`` (strings, bytes, lists, dicts)."""
        if isinstance(value, str):
            value = value.replace(self.prefix, "")
            return _GEN.sub(self._generated_name, value)
        if isinstance(value, bytes):
            return self.norm(value.decode("utf-8", "replace"))
        if isinstance(value, dict):
            return {k: self.norm(v) for k, v in sorted(value.items())}
        if isinstance(value, list | tuple):
            return [self.norm(v) for v in value]
        return value

    def norm_text(self, text: str) -> str:
        text = self.norm(text)
        for pattern, replacement in self._text_rules:
            text = pattern.sub(replacement, text)
        return str(text)

    def _generated_name(self, match: re.Match[str]) -> str:
        name = match.group(0)
        if name not in self._generated:
            self._generated[name] = f"amq.{match.group(1)}-#{len(self._generated) + 1}"
        return self._generated[name]

    def add(self, who: str, what: str, fields: dict[str, Any] | None = None) -> None:
        self.entries.append((who, what, self.norm(fields or {})))

    def add_method(self, who: str, method: Method, extra: dict[str, Any] | None = None) -> None:
        fields = method.as_dict()
        if "reply_text" in fields:
            fields["reply_text"] = self.norm_text(fields["reply_text"])
        if extra:
            fields.update(extra)
        self.add(who, method.NAME, fields)

    def add_item(self, who: str, item: Item) -> None:
        if isinstance(item, Closed):
            self.add(who, "EOF")
        elif isinstance(item, ProtocolError):
            err = item.error
            self.add(who, "protocol-error", {"code": err.reply_code, "text": str(err)})
        elif isinstance(item, ContentReceived):
            props = item.properties()
            extra: dict[str, Any] = {"body": _body(item.body)}
            if props.headers:
                extra["headers"] = _stable_headers(props.headers)
                extra["header_types"] = header_types(item.raw_properties)
            self.add_method(who, item.method, extra)
        else:
            self.add_method(who, item.method)

    def text(self) -> str:
        return "\n".join(f"{who:8} {what} {fields}" for who, what, fields in self.entries)


def _stable_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Headers without the volatile ``time`` of dead-lettering records (``x-death``)."""
    out = dict(headers)
    deaths = out.get("x-death")
    if isinstance(deaths, list):
        out["x-death"] = [
            {k: v for k, v in d.items() if k != "time"} if isinstance(d, dict) else d
            for d in deaths
        ]
    return out


_TYPES_DEPTH = 8


def header_types(raw_properties: bytes) -> dict[str, Any]:
    """The field type codes of the headers in encoded basic properties, nested as the
    values are (``{"x-delivery-count": "l", "x-death": [{"count": "l", ...}]}``): a
    broker that sends a count as ``I`` where RabbitMQ sends ``l`` decodes the same but
    is not the same to a typed client."""
    flags = int.from_bytes(raw_properties[:2], "big")
    offset = 2
    for bit in (0x8000, 0x4000):  # content-type, content-encoding: short strings
        if flags & bit:
            offset += 1 + raw_properties[offset]
    return _table_types(raw_properties, offset)[0] if flags & 0x2000 else {}


def _table_types(buf: bytes, offset: int, depth: int = 0) -> tuple[dict[str, Any], int]:
    end = offset + 4 + int.from_bytes(buf[offset:offset + 4], "big")
    offset += 4
    types: dict[str, Any] = {}
    while offset < end:
        size = buf[offset]
        key = buf[offset + 1:offset + 1 + size].decode("utf-8", "replace")
        types[key], offset = _value_type(buf, offset + 1 + size, depth)
    return types, end


def _value_type(buf: bytes, offset: int, depth: int) -> tuple[Any, int]:
    code = chr(buf[offset])
    if code in "FA" and depth >= _TYPES_DEPTH:  # deeper: the code of the value only
        length = int.from_bytes(buf[offset + 1:offset + 5], "big")
        return code, offset + 5 + length
    if code == "F":
        return _table_types(buf, offset + 1, depth + 1)
    if code == "A":
        end = offset + 5 + int.from_bytes(buf[offset + 1:offset + 5], "big")
        offset += 5
        items = []
        while offset < end:
            item, offset = _value_type(buf, offset, depth + 1)
            items.append(item)
        return items, end
    return code, decode_field_value(buf, offset)[1]


def _body(body: bytes) -> str:
    """Short bodies as text, long ones as their size and digest."""
    if len(body) <= 200:
        return body.decode("utf-8", "replace")
    return f"<{len(body)} bytes, sha1 {hashlib.sha1(body).hexdigest()[:16]}>"
