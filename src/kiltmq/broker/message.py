"""The message as the broker keeps it: immutable, shared by every queue it lands in.

A published message is kept as it arrived: the exchange and routing key it was published
with, its content-header properties still encoded (``raw_properties``, flags word first)
and its body. What every delivery needs is computed once: the content-header frame
payload (``header_payload``) and the encoded exchange/routing-key tail of basic.deliver.
Properties are decoded only when someone needs them (the headers exchange, per-message
TTL, dead-lettering) and then only once. Whether the message is persistent
(delivery-mode 2) is read straight from the raw bytes.
"""

from __future__ import annotations

import itertools
import struct

from kiltmq.protocol.codec import FieldTable, encode_shortstr
from kiltmq.protocol.spec import BasicProperties

__all__ = ["Message", "delivery_mode"]

_S_HHQ = struct.Struct(">HHQ")
_S_I = struct.Struct(">I")
_pack_header = _S_HHQ.pack

# Property flag bits of class basic, in wire order.
FLAG_CONTENT_TYPE = 0x8000
FLAG_CONTENT_ENCODING = 0x4000
FLAG_HEADERS = 0x2000
FLAG_DELIVERY_MODE = 0x1000
FLAG_EXPIRATION = 0x0100
FLAG_USER_ID = 0x0010

_ids = itertools.count(1)


def delivery_mode(raw: bytes) -> int:
    """The delivery-mode property read from encoded properties without decoding them
    (0 when absent or unreadable)."""
    if len(raw) < 2:
        return 0
    flags = (raw[0] << 8) | raw[1]
    if not flags & FLAG_DELIVERY_MODE:
        return 0
    pos = 2
    try:
        if flags & FLAG_CONTENT_TYPE:
            pos += 1 + raw[pos]
        if flags & FLAG_CONTENT_ENCODING:
            pos += 1 + raw[pos]
        if flags & FLAG_HEADERS:
            pos += 4 + _S_I.unpack_from(raw, pos)[0]
        return raw[pos]
    except (IndexError, struct.error):
        return 0


class Message:
    """One published message. Treat as immutable: the same object sits in many queues.

    ``id`` is unique within the process (a store may use it as the message's key).
    """

    __slots__ = (
        "id",
        "exchange",
        "routing_key",
        "raw_properties",
        "body",
        "header_payload",
        "flags",
        "persistent",
        "size",
        "deliver_tail",
        "_properties",
    )

    def __init__(
        self,
        exchange: str,
        routing_key: str,
        raw_properties: bytes,
        body: bytes,
        deliver_tail: bytes | None = None,
    ) -> None:
        self.id = next(_ids)
        self.exchange = exchange
        self.routing_key = routing_key
        self.raw_properties = raw_properties
        self.body = body
        self.header_payload = _pack_header(60, 0, len(body)) + raw_properties
        flags = (raw_properties[0] << 8) | raw_properties[1] if len(raw_properties) >= 2 else 0
        self.flags = flags
        self.persistent = bool(flags & FLAG_DELIVERY_MODE) and delivery_mode(raw_properties) == 2
        self.size = len(body)
        #: Exchange and routing key encoded as the tail of basic.deliver / basic.get-ok.
        self.deliver_tail = (
            deliver_tail
            if deliver_tail is not None
            else encode_shortstr(exchange) + encode_shortstr(routing_key)
        )
        self._properties: BasicProperties | None = None

    @classmethod
    def build(
        cls,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: BasicProperties | None = None,
    ) -> Message:
        """A message from decoded properties (dead-lettering, tests, a store's recovery)."""
        raw = properties.encode() if properties is not None else b"\x00\x00"
        message = cls(exchange, routing_key, raw, body)
        message._properties = properties
        return message

    @property
    def properties(self) -> BasicProperties:
        """The decoded properties (decoded on first use; raises ValueError/struct.error if
        the publisher sent malformed ones)."""
        props = self._properties
        if props is None:
            props = self._properties = BasicProperties.decode(self.raw_properties)
        return props

    @property
    def headers(self) -> FieldTable | None:
        if not self.flags & FLAG_HEADERS:
            return None
        return self.properties.headers

    def expiration_ms(self) -> int | None:
        """The per-message TTL from the expiration property, in milliseconds (None when
        absent; ValueError when it is not a non-negative integer string)."""
        if not self.flags & FLAG_EXPIRATION:
            return None
        text = self.properties.expiration
        if text is None:
            return None
        value = int(text)
        if value < 0:
            raise ValueError(f"negative expiration {text!r}")
        return value

    def user_id(self) -> str | None:
        if not self.flags & FLAG_USER_ID:
            return None
        return self.properties.user_id

    def __repr__(self) -> str:
        return (
            f"Message(id={self.id}, exchange={self.exchange!r}, routing_key={self.routing_key!r},"
            f" size={self.size})"
        )

