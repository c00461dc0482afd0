"""``BasicProperties`` emitted: a flags word then the present properties, with a
straight-line ``encode``/``decode``."""

from __future__ import annotations

import struct

from specgen.emit import FIXED, PY_TYPES, Writer, tuple_literal, wire_fields_literal
from specgen.model import Field


def gen_properties(w: Writer, props: list[Field], structs: dict[str, str]) -> None:
    w()
    w()
    w("class BasicProperties:")
    w('"""Content-header properties of class basic (all optional: ``None`` = absent)."""', 1)
    w()
    w(f"__slots__ = {tuple_literal([p.py for p in props])}", 1)
    w(f"FIELDS: ClassVar[tuple[str, ...]] = {tuple_literal([p.py for p in props])}", 1)
    w(f"WIRE_FIELDS: ClassVar[tuple[tuple[str, str], ...]] = {wire_fields_literal(props)}", 1)
    for p in props:
        w(f"{p.py}: {PY_TYPES[p.type].replace(' | None', '')} | None", 1)
    w()
    w("def __init__(", 1)
    w("self,", 2)
    for p in props:
        w(f"{p.py}: {PY_TYPES[p.type].replace(' | None', '')} | None = None,", 2)
    w(") -> None:", 1)
    for p in props:
        w(f"self.{p.py} = {p.py}", 2)
    w()
    gen_properties_encode(w, props, structs)
    gen_properties_decode(w, props, structs)
    w("def __eq__(self, other: object) -> bool:", 1)
    w("if not isinstance(other, BasicProperties):", 2)
    w("return NotImplemented", 3)
    w("return all(getattr(self, n) == getattr(other, n) for n in self.FIELDS)", 2)
    w()
    w("__hash__ = None  # type: ignore[assignment]", 1)
    w()
    w("def __repr__(self) -> str:", 1)
    w('args = ", ".join(', 2)
    w('f"{n}={getattr(self, n)!r}" for n in self.FIELDS if getattr(self, n) is not None', 3)
    w(")", 2)
    w('return f"BasicProperties({args})"', 2)


# Properties decoded one by one; when none of the rest is present (the common case) they
# are all set to None at once.
COMMON_PROPERTIES = 5  # content-type, content-encoding, headers, delivery-mode, priority


def gen_properties_encode(w: Writer, props: list[Field], structs: dict[str, str]) -> None:
    w("def encode(self) -> bytes:", 1)
    w('"""Property flags word(s) followed by the present properties."""', 2)
    w("flags = 0", 2)
    w('parts: list[bytes] = [b""]', 2)
    w("try:", 2)
    for i, p in enumerate(props):
        bit = 1 << (15 - i)
        w(f"_{p.py} = self.{p.py}", 3)
        w(f"if _{p.py} is not None:", 3)
        w(f"flags |= 0x{bit:04X}", 4)
        if p.type == "shortstr":
            w("try:", 4)
            w(f"_d = _{p.py}.encode()", 5)
            w("except UnicodeEncodeError:  # decoded from bytes that were not UTF-8", 4)
            w(f'_d = _{p.py}.encode("utf-8", "surrogateescape")', 5)
            w("parts += (OCTETS[len(_d)], _d)", 4)
        elif p.type == "longstr":
            w(f"parts.append(encode_longstr(_{p.py}))", 4)
        elif p.type == "table":
            w(f"parts.append(encode_table(_{p.py}))", 4)
        else:
            s = f"_S_{FIXED[p.type]}"
            structs[">" + FIXED[p.type]] = s
            w(f"parts.append({s}.pack(_{p.py}))", 4)
    w("except IndexError:", 2)
    names = tuple_literal([p.py for p in props if p.type == "shortstr"])
    w("too_long = {", 3)
    w(f"n: str(getattr(self, n)).encode() for n in {names} if getattr(self, n) is not None", 4)
    w("}", 3)
    w('raise shortstr_too_long("content header properties", **too_long) from None', 3)
    w("parts[0] = _S_H.pack(flags)", 2)
    w('return b"".join(parts)', 2)
    w()


def gen_properties_decode(w: Writer, props: list[Field], structs: dict[str, str]) -> None:
    w("@classmethod", 1)
    w("def decode(cls, buf: bytes, offset: int = 0) -> BasicProperties:", 1)
    w('"""Decode properties that start at ``offset`` with the flags word."""', 2)
    w("self = cls.__new__(cls)", 2)
    w("flags = (buf[offset] << 8) | buf[offset + 1]", 2)
    w("offset += 2", 2)
    w("if flags & 1:  # continuation: further flag words (none are defined for basic)", 2)
    w("more = flags", 3)
    w("while more & 1:", 3)
    w("more = (buf[offset] << 8) | buf[offset + 1]", 4)
    w("offset += 2", 4)

    def one(i: int, p: Field, indent: int) -> None:
        w(f"if flags & 0x{1 << (15 - i):04X}:", indent)
        if p.type == "shortstr":
            w("_n = buf[offset]", indent + 1)
            w("offset += 1", indent + 1)
            w("try:", indent + 1)
            w(f"self.{p.py} = buf[offset : offset + _n].decode()", indent + 2)
            w("except UnicodeDecodeError:  # RabbitMQ passes any bytes on", indent + 1)
            w(
                f'self.{p.py} = buf[offset : offset + _n].decode("utf-8", "surrogateescape")',
                indent + 2,
            )
            w("offset += _n", indent + 1)
        elif p.type == "longstr":
            w(f"self.{p.py}, offset = decode_longstr(buf, offset)", indent + 1)
        elif p.type == "table":
            w(f"self.{p.py}, offset = decode_table(buf, offset)", indent + 1)
        elif p.type == "octet":
            w(f"self.{p.py} = buf[offset]", indent + 1)
            w("offset += 1", indent + 1)
        else:
            s = f"_S_{FIXED[p.type]}"
            structs[">" + FIXED[p.type]] = s
            w(f"(self.{p.py},) = {s}.unpack_from(buf, offset)", indent + 1)
            w(f"offset += {struct.calcsize('>' + FIXED[p.type])}", indent + 1)
        w("else:", indent)
        w(f"self.{p.py} = None", indent + 1)

    for i, p in enumerate(props[:COMMON_PROPERTIES]):
        one(i, p, 2)
    rest = props[COMMON_PROPERTIES:]
    if rest:
        mask = sum(1 << (15 - i) for i in range(COMMON_PROPERTIES, len(props)))
        w(f"if flags & 0x{mask:04X}:", 2)
        for i, p in enumerate(rest, COMMON_PROPERTIES):
            one(i, p, 3)
        w("else:", 2)
        for p in rest:
            w(f"self.{p.py} = None", 3)
    w("if offset > len(buf):", 2)
    w('raise ValueError("truncated content header properties")', 3)
    w("return self", 2)
    w()
