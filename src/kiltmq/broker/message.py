"""The message as the broker keeps it: immutable, shared by every queue it lands in.

A published message is kept as it arrived: the exchange and routing key it was published
with, its content-header properties still encoded (``raw_properties``, flags word first)
and its body. What every delivery needs is kept ready: the raw properties and the
encoded exchange/routing-key tail of basic.deliver.
Publishing checks the properties by skipping through them (a headers table is walked, not
built). The few properties the broker itself reads (reply-to, expiration, user-id,
priority, delivery-mode) are read straight from the raw bytes; all of them are decoded
only when someone needs them all (the headers exchange, dead-lettering) and then only once.
"""

from __future__ import annotations

import itertools
import struct
from typing import Any, ClassVar

from kiltmq.protocol.codec import FieldTable, encode_shortstr, raw_fields, skip_table
from kiltmq.protocol.frames import CONTENT_HEADER
from kiltmq.protocol.spec import BasicProperties

__all__ = ["Message", "delivery_mode"]

_S_I = struct.Struct(">I")
_pack_header = CONTENT_HEADER.pack

# Property flag bits of class basic, in wire order.
FLAG_CONTENT_TYPE = 0x8000
FLAG_CONTENT_ENCODING = 0x4000
FLAG_HEADERS = 0x2000
FLAG_DELIVERY_MODE = 0x1000
FLAG_PRIORITY = 0x0800
FLAG_REPLY_TO = 0x0200
FLAG_EXPIRATION = 0x0100
FLAG_USER_ID = 0x0010

_ids = itertools.count(1)

# Property layout of class basic after the flags word: (flag bit, size), where size is a
# fixed width in bytes, 0 for a short string and -1 for a field table.
_LAYOUT = (
    (0x8000, 0), (0x4000, 0), (0x2000, -1), (0x1000, 1), (0x0800, 1), (0x0400, 0),
    (0x0200, 0), (0x0100, 0), (0x0080, 0), (0x0040, 8), (0x0020, 0), (0x0010, 0),
    (0x0008, 0), (0x0004, 0),
)
_STEPS: dict[int, tuple[int, ...]] = {}
# The attribute of BasicProperties for each short-string property's flag bit.
_SHORTSTR_NAMES = {
    0x8000: "content_type", 0x4000: "content_encoding", 0x0400: "correlation_id",
    0x0200: "reply_to", 0x0100: "expiration", 0x0080: "message_id", 0x0020: "type",
    0x0010: "user_id", 0x0008: "app_id", 0x0004: "cluster_id",
}


def _steps(flags: int) -> tuple[int, ...]:
    steps = _STEPS.get(flags)
    if steps is None:
        steps = _STEPS[flags] = tuple(size for bit, size in _LAYOUT if flags & bit)
    return steps


def check_properties(raw: bytes) -> None:
    """Raise ValueError (or IndexError, struct.error) unless ``raw`` is a basic property
    list that :meth:`BasicProperties.decode` decodes: the same inputs are refused, but the
    fields, a headers table too, are skipped rather than decoded (the publish path)."""
    n = len(raw)
    if n < 2:
        raise ValueError("no property flags")
    flags = (raw[0] << 8) | raw[1]
    pos = 2
    if flags & 1:  # continuation: further flag words (none are defined for basic)
        more = flags
        while more & 1:
            more = (raw[pos] << 8) | raw[pos + 1]
            pos += 2
    for size in _steps(flags):
        if size > 0:
            pos += size
        elif size == 0:
            if pos < n:
                pos += 1 + raw[pos]
            else:
                raise ValueError("truncated properties")
        else:
            pos = skip_table(raw, pos)
    if pos > n:
        raise ValueError("truncated properties")


def _field_offset(raw: bytes, flags: int, bit: int) -> int:
    """Where the property ``bit`` (present in ``flags``) starts in ``raw``, which
    :func:`check_properties` accepted."""
    pos = 2
    if flags & 1:
        more = flags
        while more & 1:
            more = (raw[pos] << 8) | raw[pos + 1]
            pos += 2
    for field, size in _LAYOUT:
        if field == bit:
            return pos
        if flags & field:
            if size > 0:
                pos += size
            elif size == 0:
                pos += 1 + raw[pos]
            else:
                pos += 4 + _S_I.unpack_from(raw, pos)[0]
    raise ValueError(f"no property flag {bit:#06x}")


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

    ``id`` of a published message is unique within the process. A message a store
    creates (a :class:`PagedMessage` stand-in, or one read back with :meth:`restored`)
    carries the store's key for it instead, which a store keeps apart from those ids.
    """

    __slots__ = (
        "id",
        "exchange",
        "routing_key",
        "raw_properties",
        "body",
        "flags",
        "persistent",
        "size",
        "deliver_tail",
        "_properties",
    )

    #: True for a :class:`PagedMessage`, whose body is in the store only.
    paged: ClassVar[bool] = False

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

    @classmethod
    def restored(
        cls,
        key: int,
        exchange: str,
        routing_key: str,
        raw_properties: bytes,
        body: bytes,
        deliver_tail: bytes | None = None,
    ) -> Message:
        """A message read back from a store, which knows it by ``key`` (its id)."""
        message = cls(exchange, routing_key, raw_properties, body, deliver_tail)
        message.id = key
        return message

    @property
    def header_payload(self) -> bytes:
        """The payload of this message's content-header frame: class basic, weight 0, the
        body size and the raw properties (built when asked for; deliveries write these
        fields straight into their frames)."""
        return _pack_header(60, 0, self.size) + self.raw_properties

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

    def check(self) -> None:
        """Raise ValueError (or IndexError, struct.error) if the properties do not decode.

        RabbitMQ decodes every published message's properties; here they are only
        skipped through (:func:`check_properties`), which refuses the same inputs; an
        empty property list (the flags word 0) needs no walk at all.
        """
        if self.flags or len(self.raw_properties) < 2:
            check_properties(self.raw_properties)

    def shortstr(self, bit: int) -> str | None:
        """The short-string property of flag ``bit`` (e.g. :data:`FLAG_REPLY_TO`), read
        from the raw properties without decoding the others (None when absent)."""
        flags = self.flags
        if not flags & bit:
            return None
        props = self._properties
        if props is not None:
            return getattr(props, _SHORTSTR_NAMES[bit])  # type: ignore[no-any-return]
        raw = self.raw_properties
        pos = _field_offset(raw, flags, bit)
        end = pos + 1 + raw[pos]
        if end > len(raw):
            raise ValueError("truncated properties")
        try:
            return raw[pos + 1 : end].decode()
        except UnicodeDecodeError:  # as BasicProperties.decode: any bytes pass
            return raw[pos + 1 : end].decode("utf-8", "surrogateescape")

    def priority(self) -> int | None:
        """The priority property (None when absent), read from the raw properties."""
        flags = self.flags
        if not flags & FLAG_PRIORITY:
            return None
        raw = self.raw_properties
        return raw[_field_offset(raw, flags, FLAG_PRIORITY)]

    def expiration_ms(self) -> int | None:
        """The per-message TTL from the expiration property, in milliseconds (None when
        absent; ValueError when it is not a non-negative integer string)."""
        text = self.shortstr(FLAG_EXPIRATION)
        if text is None:
            return None
        value = int(text)
        if value < 0:
            raise ValueError(f"negative expiration {text!r}")
        return value

    def user_id(self) -> str | None:
        return self.shortstr(FLAG_USER_ID)

    def __repr__(self) -> str:
        return (
            f"Message(id={self.id}, exchange={self.exchange!r}, routing_key={self.routing_key!r},"
            f" size={self.size})"
        )



class PagedMessage(Message):
    """Stand-in for a persistent message whose body is in the store only.

    Only ``id`` (the store's key for it), ``size``, ``flags``, ``persistent`` and the encoded
    properties are kept (so ``properties``, ``headers`` and ``expiration_ms()`` work);
    reading the body, exchange or routing key raises AttributeError. The store's ``load``
    turns it back into a full message.
    """

    __slots__ = ()
    paged: ClassVar[bool] = True

    @classmethod
    def stub(cls, key: int, size: int, raw_properties: bytes) -> PagedMessage:
        """A stand-in for the message the store keeps under ``key`` (its id)."""
        shared = _SHARED_PROPERTIES.get(raw_properties)
        if shared is None:
            flags = (raw_properties[0] << 8) | raw_properties[1] if len(raw_properties) >= 2 else 0
            shared = (raw_properties, flags)
            if len(raw_properties) <= 64 and len(_SHARED_PROPERTIES) < 4096:
                _SHARED_PROPERTIES[raw_properties] = shared
        stub = cls.__new__(cls)
        stub.id = key
        stub.size = size
        stub.raw_properties, stub.flags = shared
        stub.persistent = True
        stub._properties = None
        return stub

    def __repr__(self) -> str:
        return f"PagedMessage(id={self.id}, size={self.size})"


# Most messages carry one of a few small property sets (often just delivery-mode 2):
# stand-ins share one bytes object and one flags int per set instead of one each.
_SHARED_PROPERTIES: dict[bytes, tuple[bytes, int]] = {}


def kept_headers(raw_properties: bytes) -> dict[str, Any]:
    """The headers of encoded basic properties, each value kept as it came
    (:class:`~kiltmq.protocol.codec.RawField`): headers the broker passes on after
    adding its own go out with the field types the publisher gave them, as RabbitMQ's
    do (a decode and encode would turn a small ``l`` into ``I``, ``f`` into ``d`` ...)."""
    flags = (raw_properties[0] << 8) | raw_properties[1]
    if not flags & FLAG_HEADERS:
        return {}
    if flags & 1:  # further flag words (none are defined for basic): decode them
        return dict(BasicProperties.decode(raw_properties).headers or {})
    pos = 2
    for bit in (FLAG_CONTENT_TYPE, FLAG_CONTENT_ENCODING):
        if flags & bit:
            pos += 1 + raw_properties[pos]
    return dict(raw_fields(raw_properties, pos))
