"""Field values, strings and tables: the AMQP 0-9-1 codec below the method level.

Method arguments and content-header properties are encoded by the generated classes in
``spec.py``; they call the functions here for strings and tables.

Field-table value types follow RabbitMQ (see the errata: the 0-9-1 spec text and RabbitMQ
disagree, and every client follows RabbitMQ)::

    t bool          b int8     B uint8     s int16     u uint16
    I int32         i uint32   l int64     f float32   d float64
    D decimal       S longstr  x byte array (longstr)  A array     T timestamp
    F table         V void     L int64 (read only: py-amqp writes integers beyond 32
                               bits so, and RabbitMQ reads them as l)

Python values map as: ``bool`` -> t, ``int`` -> I (or l when it does not fit 32 bits),
``float`` -> d, ``Decimal`` -> D, ``str`` -> S, ``bytes`` -> x, ``datetime`` -> T,
``dict`` -> F, ``list``/``tuple`` -> A, ``None`` -> V, :class:`Long` -> l (the broker's
own counts, as RabbitMQ), :class:`RawField` -> the value as it came. Decoding gives back
the same Python types (all integer codes decode to ``int``, f and d to ``float``; an L
value encodes back as l). An ``S`` value that is
not valid UTF-8 decodes to ``bytes`` rather than failing: RabbitMQ treats it as binary.

Whatever RabbitMQ accepts decodes, and encodes back to the same bytes:

* a ``T`` value after the year 9999 (``datetime``'s limit) decodes to a
  :class:`Timestamp`, an ``int`` of its seconds that encodes as ``T`` again;
* a field name that is not UTF-8 decodes with ``surrogateescape`` (and encodes back so);
* a table or array nested deeper than :data:`MAX_DEPTH` is checked without recursion and
  kept encoded, as a :class:`DeepValue`: RabbitMQ takes any depth a frame can hold, and
  Python values that deep could not be compared, encoded or printed without hitting the
  recursion limit.

Decoders take ``(buf, offset)`` and return ``(value, new_offset)``. They raise
``ValueError`` (or ``struct.error`` / ``IndexError``) on malformed input, and nothing
else; the frame layer turns those into a 502 SYNTAX_ERROR.
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeAlias

FieldValue: TypeAlias = Any
"""A value that can stand in a field table or array (see the module docstring)."""
FieldTable: TypeAlias = Mapping[str, FieldValue]
"""A field table: string keys (short strings) to field values."""

_S_B = struct.Struct(">B")
_S_b = struct.Struct(">b")
_S_H = struct.Struct(">H")
_S_h = struct.Struct(">h")
_S_I = struct.Struct(">I")
_S_i = struct.Struct(">i")
_S_Q = struct.Struct(">Q")
_S_q = struct.Struct(">q")
_S_f = struct.Struct(">f")
_S_d = struct.Struct(">d")
_S_Bi = struct.Struct(">Bi")
_S_BI = struct.Struct(">BI")

_pack_I = _S_I.pack
_pack_q = _S_q.pack
_pack_i = _S_i.pack
_pack_d = _S_d.pack
_pack_Q = _S_Q.pack
_pack_BI = _S_BI.pack
_pack_Bi = _S_Bi.pack
_unpack_I = _S_I.unpack_from
_unpack_i = _S_i.unpack_from

_EMPTY_TABLE = b"\x00\x00\x00\x00"

MAX_DEPTH = 64
"""Tables and arrays nested deeper than this decode to :class:`DeepValue`."""

_MAX_DATETIME = 253402300799  # 9999-12-31T23:59:59Z, the last second datetime holds


class Long(int):
    """An ``int`` that encodes as ``l`` (64-bit signed) whatever its size, as RabbitMQ
    sends the counts and offsets it writes into headers (``x-delivery-count``,
    ``x-stream-offset``, the ``count`` of ``x-death``); a plain ``int`` encodes as ``I``
    when it fits 32 bits. Decoding gives plain ``int`` back."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Long({int(self)})"


class RawField:
    """A field value kept as it came (``encoded``: type code and value); it encodes back
    to the same bytes. For passing a table's entries on unchanged: a decode and encode
    round trip turns ``b s u i L f`` values and small ``l`` ones into other types."""

    __slots__ = ("encoded",)

    def __init__(self, encoded: bytes) -> None:
        self.encoded = encoded

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawField) and other.encoded == self.encoded

    def __hash__(self) -> int:
        return hash(self.encoded)

    def __repr__(self) -> str:
        return f"RawField({self.encoded!r})"


class Timestamp(int):
    """A ``T`` field value too late for ``datetime``: its seconds since the epoch."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Timestamp({int(self)})"


class DeepValue:
    """A table or array nested deeper than :data:`MAX_DEPTH`, kept as it was encoded
    (``encoded``: type code and value); it encodes back to the same bytes and compares
    by them."""

    __slots__ = ("encoded",)

    def __init__(self, encoded: bytes) -> None:
        self.encoded = encoded

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeepValue) and other.encoded == self.encoded

    def __hash__(self) -> int:
        return hash(self.encoded)

    def __repr__(self) -> str:
        kind = "table" if self.encoded[:1] == b"F" else "array"
        return f"DeepValue({kind}, {len(self.encoded)} bytes)"


OCTETS: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(256))
"""``OCTETS[n]`` is the one-byte ``bytes`` of ``n``: length prefixes and bit octets without a
struct call. Indexing past 255 raises ``IndexError``."""


# -- strings -----------------------------------------------------------------------------


def encode_shortstr(value: str) -> bytes:
    """A short string: one length octet, then at most 255 bytes of UTF-8."""
    data = value.encode()
    try:
        return OCTETS[len(data)] + data
    except IndexError:
        raise ValueError(f"short string too long ({len(data)} bytes, at most 255)") from None


def shortstr_too_long(method: str, **fields: bytes) -> ValueError:
    """The error for a method whose short-string argument encodes to more than 255 bytes."""
    names = ", ".join(f"{k} ({len(v)} bytes)" for k, v in fields.items() if len(v) > 255)
    return ValueError(f"{method}: short string too long, at most 255 bytes: {names}")


def decode_shortstr(buf: bytes, offset: int) -> tuple[str, int]:
    n = buf[offset]
    end = offset + 1 + n
    if end > len(buf):
        raise ValueError("truncated short string")
    return buf[offset + 1 : end].decode(), end


def encode_longstr(value: bytes) -> bytes:
    """A long string: a 32-bit length, then the bytes."""
    return _pack_I(len(value)) + value


def decode_longstr(buf: bytes, offset: int) -> tuple[bytes, int]:
    (n,) = _S_I.unpack_from(buf, offset)
    start = offset + 4
    end = start + n
    if end > len(buf):
        raise ValueError("truncated long string")
    return bytes(buf[start:end]), end


# -- field values ------------------------------------------------------------------------


def _enc_bool(v: bool) -> bytes:
    return b"t\x01" if v else b"t\x00"


def _enc_int(v: int) -> bytes:
    if -0x80000000 <= v <= 0x7FFFFFFF:
        return b"I" + _pack_i(v)
    if -0x8000000000000000 <= v <= 0x7FFFFFFFFFFFFFFF:
        return b"l" + _pack_q(v)
    raise ValueError(f"integer {v} does not fit a 64-bit signed field")


def _enc_long(v: Long) -> bytes:
    if -0x8000000000000000 <= v <= 0x7FFFFFFFFFFFFFFF:
        return b"l" + _pack_q(v)
    raise ValueError(f"integer {v} does not fit a 64-bit signed field")


def _enc_float(v: float) -> bytes:
    return b"d" + _pack_d(v)


def _enc_str(v: str) -> bytes:
    data = v.encode()
    return b"S" + _pack_I(len(data)) + data


def _enc_bytes(v: bytes | bytearray | memoryview) -> bytes:
    data = bytes(v)
    return b"x" + _pack_I(len(data)) + data


def _enc_decimal(v: Decimal) -> bytes:
    sign, digits, exponent = v.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"decimal {v} is not finite")
    value = int("".join(map(str, digits)) or "0")
    if sign:
        value = -value
    scale = -exponent
    if scale < 0:
        value *= 10**-scale
        scale = 0
    if scale > 255 or not -0x80000000 <= value <= 0x7FFFFFFF:
        raise ValueError(f"decimal {v} does not fit an AMQP decimal (scale octet, int32)")
    return b"D" + _S_Bi.pack(scale, value)


def _enc_datetime(v: datetime) -> bytes:
    seconds = calendar.timegm(v.timetuple()) if v.tzinfo is None else int(v.timestamp())
    return b"T" + _pack_Q(seconds)


def _enc_timestamp(v: Timestamp) -> bytes:
    return b"T" + _pack_Q(v)


def _enc_deep(v: DeepValue | RawField) -> bytes:
    return v.encoded


def _enc_table(v: FieldTable) -> bytes:
    return b"F" + encode_table(v)


def _enc_array(v: list[Any] | tuple[Any, ...]) -> bytes:
    return b"A" + encode_array(v)


def _enc_none(v: None) -> bytes:
    return b"V"


_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    bool: _enc_bool,
    int: _enc_int,
    float: _enc_float,
    str: _enc_str,
    bytes: _enc_bytes,
    bytearray: _enc_bytes,
    memoryview: _enc_bytes,
    Decimal: _enc_decimal,
    datetime: _enc_datetime,
    Timestamp: _enc_timestamp,
    Long: _enc_long,
    DeepValue: _enc_deep,
    RawField: _enc_deep,
    dict: _enc_table,
    list: _enc_array,
    tuple: _enc_array,
    type(None): _enc_none,
}


def encode_field_value(value: FieldValue) -> bytes:
    """Type code plus encoded value."""
    enc = _ENCODERS.get(type(value))
    if enc is None:
        # subclasses (IntEnum, OrderedDict, ...) take their base's encoding
        for base, candidate in _ENCODERS.items():
            if isinstance(value, base) and base is not type(None):
                enc = candidate
                break
        else:
            if isinstance(value, Mapping):
                enc = _enc_table
            else:
                raise TypeError(f"cannot encode {type(value).__name__} in a field table")
    return enc(value)


def encode_table(table: FieldTable | None) -> bytes:
    """A field table with its 32-bit length prefix. ``None`` encodes as an empty table."""
    if not table:
        return _EMPTY_TABLE
    parts: list[bytes] = []
    append = parts.append
    for key, value in table.items():
        try:
            k = key.encode()
        except UnicodeEncodeError:  # a name decoded with surrogateescape
            k = key.encode("utf-8", "surrogateescape")
        try:
            append(OCTETS[len(k)] + k)
        except IndexError:
            raise ValueError(f"field name too long ({len(k)} bytes, at most 255)") from None
        # the common types inline; everything else through the dispatch table
        t = type(value)
        if t is str:
            v = value.encode()
            append(_pack_BI(83, len(v)))  # S
            append(v)
        elif t is int and -0x80000000 <= value <= 0x7FFFFFFF:
            append(_pack_Bi(73, value))  # I
        elif t is bool:
            append(b"t\x01" if value else b"t\x00")
        else:
            append(encode_field_value(value))
    payload = b"".join(parts)
    return _pack_I(len(payload)) + payload


def encode_array(values: list[Any] | tuple[Any, ...]) -> bytes:
    """A field array with its 32-bit length prefix."""
    payload = b"".join([encode_field_value(v) for v in values])
    return _pack_I(len(payload)) + payload


def _fixed(s: struct.Struct) -> Callable[[bytes, int], tuple[Any, int]]:
    size = s.size
    unpack_from = s.unpack_from

    def dec(buf: bytes, offset: int) -> tuple[Any, int]:
        return unpack_from(buf, offset)[0], offset + size

    return dec


def _dec_bool(buf: bytes, offset: int) -> tuple[bool, int]:
    return buf[offset] != 0, offset + 1


def _dec_decimal(buf: bytes, offset: int) -> tuple[Decimal, int]:
    scale, value = _S_Bi.unpack_from(buf, offset)
    return Decimal(value).scaleb(-scale), offset + 5


def _dec_longstr_text(buf: bytes, offset: int) -> tuple[str | bytes, int]:
    data, offset = decode_longstr(buf, offset)
    try:
        return data.decode(), offset
    except UnicodeDecodeError:
        return data, offset


def _dec_timestamp(buf: bytes, offset: int) -> tuple[datetime | Timestamp, int]:
    (seconds,) = _S_Q.unpack_from(buf, offset)
    if seconds > _MAX_DATETIME:
        return Timestamp(seconds), offset + 8
    return datetime.fromtimestamp(seconds, UTC), offset + 8


def _dec_void(buf: bytes, offset: int) -> tuple[None, int]:
    return None, offset


_DECODERS: dict[int, Callable[[bytes, int], tuple[Any, int]]] = {
    ord("t"): _dec_bool,
    ord("b"): _fixed(_S_b),
    ord("B"): _fixed(_S_B),
    ord("s"): _fixed(_S_h),
    ord("u"): _fixed(_S_H),
    ord("I"): _fixed(_S_i),
    ord("i"): _fixed(_S_I),
    ord("l"): _fixed(_S_q),
    ord("L"): _fixed(_S_q),
    ord("f"): _fixed(_S_f),
    ord("d"): _fixed(_S_d),
    ord("D"): _dec_decimal,
    ord("S"): _dec_longstr_text,
    ord("x"): decode_longstr,
    ord("T"): _dec_timestamp,
    ord("V"): _dec_void,
}


def decode_field_value(buf: bytes, offset: int, depth: int = 0) -> tuple[FieldValue, int]:
    """The field value at ``offset`` (its type code first). ``depth`` counts the tables
    and arrays around it."""
    code = buf[offset]
    dec = _DECODERS.get(code)
    if dec is not None:
        return dec(buf, offset + 1)
    if code == 70 or code == 65:  # F, A
        if depth >= MAX_DEPTH:
            end = _skip_value(buf, offset)
            return DeepValue(bytes(buf[offset:end])), end
        if code == 70:
            return decode_table(buf, offset + 1, depth + 1)
        return decode_array(buf, offset + 1, depth + 1)
    raise ValueError(f"unknown field value type {chr(code)!r}")


def decode_table(buf: bytes, offset: int, depth: int = 0) -> tuple[dict[str, FieldValue], int]:
    """The table at ``offset`` (its length first); ``depth`` as for decode_field_value."""
    (n,) = _unpack_I(buf, offset)
    offset += 4
    end = offset + n
    if end > len(buf):
        raise ValueError("truncated field table")
    table: dict[str, FieldValue] = {}
    while offset < end:
        kend = offset + 1 + buf[offset]
        try:
            key = buf[offset + 1 : kend].decode()
        except UnicodeDecodeError:  # RabbitMQ takes any bytes
            key = buf[offset + 1 : kend].decode("utf-8", "surrogateescape")
        code = buf[kend]
        offset = kend + 1
        # the common types inline; a value running past ``end`` is caught below
        if code == 83:  # S
            start = offset + 4
            offset = start + _unpack_I(buf, offset)[0]
            try:
                table[key] = buf[start:offset].decode()
            except UnicodeDecodeError:
                table[key] = bytes(buf[start:offset])
        elif code == 73:  # I
            table[key] = _unpack_i(buf, offset)[0]
            offset += 4
        elif code == 116:  # t
            table[key] = buf[offset] != 0
            offset += 1
        else:
            table[key], offset = decode_field_value(buf, offset - 1, depth)
    if offset != end:
        raise ValueError("field table length does not match its contents")
    return table, end


def decode_array(buf: bytes, offset: int, depth: int = 0) -> tuple[list[FieldValue], int]:
    """The array at ``offset`` (its length first); ``depth`` as for decode_field_value."""
    (n,) = _S_I.unpack_from(buf, offset)
    offset += 4
    end = offset + n
    if end > len(buf):
        raise ValueError("truncated field array")
    values: list[FieldValue] = []
    while offset < end:
        value, offset = decode_field_value(buf, offset, depth)
        values.append(value)
    if offset != end:
        raise ValueError("field array length does not match its contents")
    return values, end


# Encoded sizes of the fixed-width field value types, by type code.
_WIDTHS = dict(zip(b"tbBsuIilLfdDTV", (1, 1, 1, 2, 2, 4, 4, 8, 8, 4, 8, 5, 8, 0), strict=True))
# The same for every octet: -2 for a long string (S, x), -1 for the rest (F, A, unknown).
_WIDTH_OF = tuple(_WIDTHS.get(code, -2 if code in b"Sx" else -1) for code in range(256))


def skip_table(buf: bytes, offset: int) -> int:
    """The end of the field table at ``offset`` (its length first), checked exactly as
    :func:`decode_table` checks it (the same inputs raise), but without building a dict,
    keys or values: for a table that only has to be valid."""
    (n,) = _unpack_I(buf, offset)
    pos = offset + 4
    end: int = pos + n
    if end > len(buf):
        raise ValueError("truncated field table")
    widths = _WIDTH_OF
    while pos < end:
        pos += 1 + buf[pos]  # the field name
        code = buf[pos]
        width = widths[code]
        if width >= 0:
            pos += 1 + width
        elif width == -2:
            pos += 5 + _unpack_I(buf, pos + 1)[0]
        elif code == 65 and pos + 5 <= end:  # A: an array of plain values is walked here
            stop = pos + 5 + _unpack_I(buf, pos + 1)[0]
            at = pos + 5
            if stop <= end:
                while at < stop:
                    width = widths[buf[at]]
                    if width >= 0:
                        at += 1 + width
                    elif width == -2:
                        at += 5 + _unpack_I(buf, at + 1)[0]
                    else:
                        break
            # anything else (nested containers, unknown types, bad lengths): the full check
            pos = stop if at == stop else _skip_value(buf, pos)
        else:  # a table (checked without recursion), or an unknown type
            pos = _skip_value(buf, pos)
    if pos != end:
        raise ValueError("field table length does not match its contents")
    return end


def _skip_value(buf: bytes, offset: int) -> int:
    """The end of the field value at ``offset`` (type code first), checked as the
    decoders would, without recursion: open tables and arrays wait on a stack."""
    n = len(buf)
    ends: list[tuple[int, bool]] = []  # each open container's end, and if it is a table
    pos = offset
    while True:
        code = buf[pos]
        pos += 1
        width = _WIDTHS.get(code)
        if width is not None:
            pos += width
        elif code == 83 or code == 120:  # S, x
            pos += 4 + _unpack_I(buf, pos)[0]
        elif code == 70 or code == 65:  # F, A
            end = pos + 4 + _unpack_I(buf, pos)[0]
            if end > n:
                raise ValueError("truncated field table" if code == 70 else "truncated field array")
            ends.append((end, code == 70))
            pos += 4
        else:
            raise ValueError(f"unknown field value type {chr(code)!r}")
        while ends:
            end, table = ends[-1]
            if pos < end:
                if table:
                    pos += 1 + buf[pos]  # the field name
                break
            if pos != end:
                raise ValueError("field table length does not match its contents")
            ends.pop()
        else:
            if pos > n:
                raise ValueError("truncated field value")
            return pos


def raw_fields(buf: bytes, offset: int) -> dict[str, RawField]:
    """The entries of the field table at ``offset`` (its length first), each value kept
    encoded as a :class:`RawField`; names decode as :func:`decode_table` decodes them."""
    (n,) = _unpack_I(buf, offset)
    pos = offset + 4
    end = pos + n
    if end > len(buf):
        raise ValueError("truncated field table")
    fields: dict[str, RawField] = {}
    while pos < end:
        size = buf[pos]
        name = bytes(buf[pos + 1:pos + 1 + size]).decode("utf-8", "surrogateescape")
        pos += 1 + size
        value_end = _skip_value(buf, pos)
        fields[name] = RawField(bytes(buf[pos:value_end]))
        pos = value_end
    if pos != end:
        raise ValueError("field table overruns its length")
    return fields
