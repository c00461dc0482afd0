"""Message properties from whatever a test passes: kiltmq's, a mapping, or another
client's properties object."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiltmq.protocol.spec import BasicProperties

__all__ = ["message_properties"]


def message_properties(value: Any) -> BasicProperties:
    """``value`` as :class:`BasicProperties`: None (no properties), a
    :class:`BasicProperties`, a mapping of its field names, or an object with the same
    attribute names (``pika.BasicProperties``)."""
    if value is None:
        return BasicProperties()
    if isinstance(value, BasicProperties):
        return value
    if isinstance(value, Mapping):
        return BasicProperties(**value)
    fields: dict[str, Any] = {}
    for name in BasicProperties.FIELDS:
        item = getattr(value, name, None)
        if item is not None:
            fields[name] = int(item) if name in ("delivery_mode", "priority") else item
    return BasicProperties(**fields)
