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


def _body(body: bytes) -> str:
    """Short bodies as text, long ones as their size and digest."""
    if len(body) <= 200:
        return body.decode("utf-8", "replace")
    return f"<{len(body)} bytes, sha1 {hashlib.sha1(body).hexdigest()[:16]}>"
