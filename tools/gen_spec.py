"""Generate ``src/kiltmq/protocol/spec.py`` from the AMQP 0-9-1 XML specification.

Usage::

    python tools/gen_spec.py [path/to/amqp0-9-1.stripped.extended.xml] [--check]

The XML (with RabbitMQ's extensions: confirm.select, exchange.bind, basic.nack and the
server-sent basic.ack/nack/cancel) is read from ``../shared/spec`` by default. The output
is plain, straight-line Python: one class per method with ``__slots__``, a specialised
``encode`` and ``decode`` per method, and the content-header property class. Straight-line
code is what makes the codec fast without a C extension: no per-field dispatch at run time.

With ``--check`` nothing is written; the exit status says whether the committed module is
current.
"""

from __future__ import annotations

import argparse
import keyword
import struct
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_XML = ROOT.parent / "shared" / "spec" / "amqp0-9-1.stripped.extended.xml"
OUTPUT = ROOT / "src" / "kiltmq" / "protocol" / "spec.py"

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
# Property names where the XML has a placeholder name but RabbitMQ and every client use
# the historic one.
PROPERTY_RENAMES = {"reserved": "cluster-id"}


@dataclass
class Field:
    name: str  # spec name, e.g. "routing-key"
    type: str  # wire type, e.g. "shortstr"
    reserved: bool

    @property
    def py(self) -> str:
        name = self.name.replace("-", "_")
        return name + "_" if keyword.iskeyword(name) else name


@dataclass
class Method:
    cls_name: str
    cls_id: int
    name: str
    id: int
    synchronous: bool
    content: bool
    chassis: list[str]
    responses: list[str]
    fields: list[Field] = field(default_factory=list)

    @property
    def py(self) -> str:
        return camel(self.cls_name) + camel(self.name)

    @property
    def dotted(self) -> str:
        return f"{self.cls_name}.{self.name}"


def const_name(name: str) -> str:
    return name.replace("-", "_").upper()


def tuple_literal(items: list[str]) -> str:
    inner = ", ".join(f'"{i}"' for i in items)
    return f"({inner},)" if len(items) == 1 else f"({inner})"


def wire_fields_literal(fields: list[Field]) -> str:
    """``((spec name, wire type), ...)`` of ``fields``, in wire order."""
    inner = ", ".join(f'("{f.name}", "{f.type}")' for f in fields)
    return f"({inner},)" if len(fields) == 1 else f"({inner})"


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def parse(xml_path: Path) -> tuple[list[tuple[str, int, str | None]], list[Method], list[Field]]:
    root = ET.parse(xml_path).getroot()
    domains = {d.get("name"): d.get("type") for d in root.findall("domain")}

    def wire_type(el: ET.Element) -> str:
        t = el.get("type") or domains[el.get("domain")]
        while t in domains and domains[t] != t:
            t = domains[t]
        assert t is not None
        return t

    constants = [
        (str(c.get("name")), int(str(c.get("value"))), c.get("class"))
        for c in root.findall("constant")
    ]
    methods: list[Method] = []
    properties: list[Field] = []
    for cls in root.findall("class"):
        cls_name = str(cls.get("name"))
        cls_id = int(str(cls.get("index")))
        if cls_name == "basic":
            for f in cls.findall("field"):
                name = str(f.get("name"))
                properties.append(Field(PROPERTY_RENAMES.get(name, name), wire_type(f), False))
        for m in cls.findall("method"):
            method = Method(
                cls_name=cls_name,
                cls_id=cls_id,
                name=str(m.get("name")),
                id=int(str(m.get("index"))),
                synchronous=m.get("synchronous") == "1",
                content=m.get("content") == "1",
                chassis=[str(c.get("name")) for c in m.findall("chassis")],
                responses=[str(r.get("name")) for r in m.findall("response")],
            )
            for f in m.findall("field"):
                method.fields.append(
                    Field(str(f.get("name")), wire_type(f), f.get("reserved") == "1")
                )
            methods.append(method)
    return constants, methods, properties


class Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "", indent: int = 0) -> None:
        self.lines.append(("    " * indent + line) if line else "")


def group_fields(fields: list[Field]) -> list[list[Field]]:
    """Split fields into runs that encode together: fixed-size fields and bits share one
    struct call; strings and tables stand alone."""
    groups: list[list[Field]] = []
    run: list[Field] = []
    for f in fields:
        if f.type in FIXED or f.type == "bit":
            run.append(f)
        else:
            if run:
                groups.append(run)
                run = []
            groups.append([f])
    if run:
        groups.append(run)
    return groups


def fixed_format(run: list[Field]) -> tuple[str, list[list[Field] | Field]]:
    """The struct format for a run of fixed fields; consecutive bits share octets."""
    fmt = ""
    items: list[list[Field] | Field] = []
    bits: list[Field] = []
    for f in run:
        if f.type == "bit":
            if len(bits) == 8:
                fmt += "B"
                items.append(bits)
                bits = []
            bits.append(f)
            continue
        if bits:
            fmt += "B"
            items.append(bits)
            bits = []
        fmt += FIXED[f.type]
        items.append(f)
    if bits:
        fmt += "B"
        items.append(bits)
    return fmt, items


def gen_method(w: Writer, m: Method, structs: dict[str, str]) -> None:
    def struct_name(fmt: str) -> str:
        if fmt not in structs:
            structs[fmt] = "_S_" + fmt.lstrip(">")
        return structs[fmt]

    public = [f for f in m.fields if not f.reserved]
    reserved = [f for f in m.fields if f.reserved]
    ordered = public + reserved
    w()
    w()
    w(f"class {m.py}(Method):")
    w(f'"""``{m.dotted}`` ({m.cls_id}, {m.id})."""', 1)
    w()
    w(f"__slots__ = {tuple_literal([f.py for f in ordered])}", 1)
    w(f"CLASS_ID: ClassVar[int] = {m.cls_id}", 1)
    w(f"METHOD_ID: ClassVar[int] = {m.id}", 1)
    w(f"INDEX: ClassVar[int] = 0x{(m.cls_id << 16) | m.id:08X}", 1)
    w(f'NAME: ClassVar[str] = "{m.dotted}"', 1)
    w(f"SYNCHRONOUS: ClassVar[bool] = {m.synchronous}", 1)
    w(f"HAS_CONTENT: ClassVar[bool] = {m.content}", 1)
    w(f"SENT_BY_CLIENT: ClassVar[bool] = {'server' in m.chassis}", 1)
    w(f"SENT_BY_SERVER: ClassVar[bool] = {'client' in m.chassis}", 1)
    responses = tuple_literal([f"{m.cls_name}.{r}" for r in m.responses])
    w(f"RESPONSES: ClassVar[tuple[str, ...]] = {responses}", 1)
    w(f"FIELDS: ClassVar[tuple[str, ...]] = {tuple_literal([f.py for f in public])}", 1)
    w(f"WIRE_FIELDS: ClassVar[tuple[tuple[str, str], ...]] = {wire_fields_literal(m.fields)}", 1)
    for f in ordered:
        w(f"{f.py}: {PY_TYPES[f.type]}", 1)
    w()
    # __init__
    if ordered:
        w("def __init__(", 1)
        w("self,", 2)
        for f in ordered:
            w(f"{f.py}: {PY_TYPES[f.type]} = {DEFAULTS[f.type]},", 2)
        w(") -> None:", 1)
        for f in ordered:
            w(f"self.{f.py} = {f.py}", 2)
    else:
        w("def __init__(self) -> None:", 1)
        w("pass", 2)
    w()
    gen_method_encode(w, m, struct_name)
    gen_method_decode(w, m, struct_name)


def gen_method_encode(w: Writer, m: Method, struct_name: Callable[[str], str]) -> None:
    """``encode()``: one ``b"".join`` of struct-packed fixed runs (the first one together
    with the class and method ids), short strings inline (length octet from ``OCTETS``),
    tables and long strings through the codec. Short strings are encoded to UTF-8 first; a
    length past 255 makes ``OCTETS`` raise ``IndexError``, turned into ``ValueError``."""
    w("def encode(self) -> bytes:", 1)
    w('"""The method frame payload: class id, method id and arguments."""', 2)
    if not m.fields:
        ids = "".join(f"\\x{b:02x}" for b in struct.pack(">HH", m.cls_id, m.id))
        w(f'return b"{ids}"  # class {m.cls_id}, method {m.id}', 2)
        w()
        return
    shortstrs = [f for f in m.fields if f.type == "shortstr"]
    for f in shortstrs:
        w(f"_{f.py} = self.{f.py}.encode()", 2)
    parts: list[str] = []
    head_fmt = "HH"
    groups = group_fields(m.fields)
    args = [str(m.cls_id), str(m.id)]
    if groups[0][0].type in FIXED or groups[0][0].type == "bit":
        fmt, items = fixed_format(groups.pop(0))
        head_fmt += fmt
        args += [_encode_item(it) for it in items]
    parts.append(f"{struct_name('>' + head_fmt)}.pack({', '.join(args)})")
    for g in groups:
        f = g[0]
        if f.type == "shortstr":
            parts += [f"OCTETS[len(_{f.py})]", f"_{f.py}"]
        elif f.type == "longstr":
            parts.append(f"encode_longstr(self.{f.py})")
        elif f.type == "table":
            parts.append(f"encode_table(self.{f.py})")
        else:
            fmt, items = fixed_format(g)
            if fmt == "B" and isinstance(items[0], list):  # one octet of bits
                parts.append(f"OCTETS[{_encode_item(items[0])}]")
            else:
                packed = ", ".join(_encode_item(it) for it in items)
                parts.append(f"{struct_name('>' + fmt)}.pack({packed})")
    indent = 2
    if shortstrs:
        w("try:", 2)
        indent = 3
    if len(parts) == 1:
        w(f"return {parts[0]}", indent)
    else:
        w('return b"".join((', indent)
        for part in parts:
            w(f"{part},", indent + 1)
        w("))", indent)
    if shortstrs:
        w("except IndexError:", 2)
        fields = ", ".join(f"{f.py}=_{f.py}" for f in shortstrs)
        w(f'raise shortstr_too_long("{m.dotted}", {fields}) from None', 3)
    w()


def gen_method_decode(w: Writer, m: Method, struct_name: Callable[[str], str]) -> None:
    """``decode()``: fixed runs with one ``unpack_from`` (a lone octet by indexing), short
    strings inline. A truncated payload raises ``IndexError`` or ``struct.error`` on the
    way, or fails the final length check (a short string sliced short)."""
    w("@classmethod", 1)
    w(f"def decode(cls, buf: bytes, offset: int = 4) -> {m.py}:", 1)
    w('"""Decode arguments from a method frame payload (after the two ids)."""', 2)
    w("self = cls.__new__(cls)", 2)
    for g in group_fields(m.fields):
        f = g[0]
        if f.type == "shortstr":
            w("_n = buf[offset]", 2)
            w("offset += 1", 2)
            w(f"self.{f.py} = buf[offset : offset + _n].decode()", 2)
            w("offset += _n", 2)
        elif f.type == "longstr":
            w(f"self.{f.py}, offset = decode_longstr(buf, offset)", 2)
        elif f.type == "table":
            w(f"self.{f.py}, offset = decode_table(buf, offset)", 2)
        else:
            fmt, items = fixed_format(g)
            names = [
                f"_b{i}" if isinstance(it, list) else f"self.{it.py}" for i, it in enumerate(items)
            ]
            if fmt == "B":
                w(f"{names[0]} = buf[offset]", 2)
            else:
                target = f"({names[0]},)" if len(names) == 1 else ", ".join(names)
                w(f"{target} = {struct_name('>' + fmt)}.unpack_from(buf, offset)", 2)
            w(f"offset += {struct.calcsize('>' + fmt)}", 2)
            for i, it in enumerate(items):
                if isinstance(it, list):
                    for bit, bf in enumerate(it):
                        w(f"self.{bf.py} = (_b{i} & {1 << bit}) != 0", 2)
    w("if offset > len(buf):", 2)
    w(f'raise ValueError("truncated {m.dotted}")', 3)
    w("return self", 2)


def _encode_item(it: list[Field] | Field) -> str:
    if isinstance(it, list):
        # bool << n is int; bools add up as bits
        return " | ".join(
            f"bool(self.{f.py})" if i == 0 else f"(bool(self.{f.py}) << {i})"
            for i, f in enumerate(it)
        )
    return f"self.{it.py}"


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
            w(f"_d = _{p.py}.encode()", 4)
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
            w(f"self.{p.py} = buf[offset : offset + _n].decode()", indent + 1)
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


def generate(xml_path: Path) -> str:
    constants, methods, props = parse(xml_path)
    body = Writer()
    structs: dict[str, str] = {">H": "_S_H"}
    for m in methods:
        gen_method(body, m, structs)
    gen_properties(body, props, structs)

    w = Writer()
    w("# Generated by tools/gen_spec.py from amqp0-9-1.stripped.extended.xml. DO NOT EDIT.")
    w("# Regenerate with: python tools/gen_spec.py")
    w('"""AMQP 0-9-1 protocol tables: constants, reply codes, methods and properties.')
    w()
    w("Every method is a class with ``__slots__``, its wire identity as class attributes")
    w("(``CLASS_ID``, ``METHOD_ID``, ``INDEX``, ``NAME``, ``SYNCHRONOUS``, ``HAS_CONTENT``,")
    w("``RESPONSES``), a specialised ``encode()`` giving the method frame payload and a")
    w("``decode()`` classmethod. ``METHODS`` maps ``INDEX`` (class id << 16 | method id) to the")
    w("class. Reserved fields are kept (named ``reserved_N``) and default to zero/empty.")
    w("``WIRE_FIELDS`` lists every field (reserved ones too) in wire order as (spec name, wire")
    w('type); ``BasicProperties.WIRE_FIELDS`` the same for the properties."""')
    w()
    w("from __future__ import annotations")
    w()
    w("import struct")
    w("from enum import IntEnum")
    w("from typing import Any, ClassVar")
    w()
    w("from kiltmq.protocol.codec import (")
    w("OCTETS,", 1)
    w("FieldTable,", 1)
    w("decode_longstr,", 1)
    w("decode_table,", 1)
    w("encode_longstr,", 1)
    w("encode_table,", 1)
    w("shortstr_too_long,", 1)
    w(")")
    w()
    root = ET.parse(xml_path).getroot()
    w(f"VERSION = ({root.get('major')}, {root.get('minor')}, {root.get('revision')})")
    w(f"PORT = {root.get('port')}")
    w('PROTOCOL_HEADER = b"AMQP\\x00\\x00\\x09\\x01"')
    for name, value, cls in constants:
        if cls is None:
            w(f"{const_name(name)} = {value}")
    w()
    w()
    w("class ReplyCode(IntEnum):")
    w('"""Reply codes of connection.close, channel.close and basic.return."""', 1)
    w()
    w("REPLY_SUCCESS = 200", 1)
    for name, value, cls in constants:
        if cls is not None:
            w(f"{const_name(name)} = {value}", 1)
    w()
    w()
    w("# Reply codes that close only the channel (soft) or the whole connection (hard).")
    soft = [n for n, _, c in constants if c == "soft-error"]
    hard = [n for n, _, c in constants if c == "hard-error"]
    w("SOFT_ERRORS = frozenset({")
    for n in soft:
        w(f"ReplyCode.{const_name(n)},", 1)
    w("})")
    w("HARD_ERRORS = frozenset({")
    for n in hard:
        w(f"ReplyCode.{const_name(n)},", 1)
    w("})")
    w()
    w()
    w("class Method:")
    w('"""Base of every method class."""', 1)
    w()
    w("__slots__ = ()", 1)
    w("CLASS_ID: ClassVar[int]", 1)
    w("METHOD_ID: ClassVar[int]", 1)
    w("INDEX: ClassVar[int]", 1)
    w("NAME: ClassVar[str]", 1)
    w("SYNCHRONOUS: ClassVar[bool]", 1)
    w("HAS_CONTENT: ClassVar[bool]", 1)
    w("SENT_BY_CLIENT: ClassVar[bool]", 1)
    w("SENT_BY_SERVER: ClassVar[bool]", 1)
    w("RESPONSES: ClassVar[tuple[str, ...]]", 1)
    w("FIELDS: ClassVar[tuple[str, ...]]", 1)
    w("WIRE_FIELDS: ClassVar[tuple[tuple[str, str], ...]]", 1)
    w()
    w("def encode(self) -> bytes:", 1)
    w("raise NotImplementedError", 2)
    w()
    w("@classmethod", 1)
    w("def decode(cls, buf: bytes, offset: int = 4) -> Method:", 1)
    w("raise NotImplementedError", 2)
    w()
    w("def as_dict(self) -> dict[str, Any]:", 1)
    w('"""The public (non-reserved) arguments as a dict."""', 2)
    w("return {name: getattr(self, name) for name in self.FIELDS}", 2)
    w()
    w("def __eq__(self, other: object) -> bool:", 1)
    w("if type(other) is not type(self):", 2)
    w("return NotImplemented", 3)
    w("slots: tuple[str, ...] = self.__slots__", 2)
    w("return all(getattr(self, n) == getattr(other, n) for n in slots)", 2)
    w()
    w("__hash__ = None  # type: ignore[assignment]", 1)
    w()
    w("def __repr__(self) -> str:", 1)
    w('args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.FIELDS)', 2)
    w('return f"{type(self).__name__}({args})"', 2)
    w()
    w()
    for fmt, name in sorted(structs.items(), key=lambda kv: kv[1]):
        w(f'{name} = struct.Struct("{fmt}")')
    w.lines.extend(body.lines)
    w()
    w()
    w("METHODS: dict[int, type[Method]] = {")
    for m in methods:
        w(f"0x{(m.cls_id << 16) | m.id:08X}: {m.py},", 1)
    w("}")
    w('"""Method classes by ``INDEX`` (class id << 16 | method id)."""')
    w()
    w("METHODS_BY_NAME: dict[str, type[Method]] = {m.NAME: m for m in METHODS.values()}")
    w()
    classes = sorted({(m.cls_name, m.cls_id) for m in methods}, key=lambda c: c[1])
    w("CLASS_NAMES: dict[int, str] = {")
    for name, cid in classes:
        w(f'{cid}: "{name}",', 1)
    w("}")
    return "\n".join(w.lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("xml", nargs="?", type=Path, default=DEFAULT_XML)
    parser.add_argument("--check", action="store_true", help="only check the module is current")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if not args.xml.exists():
        print(f"gen_spec: spec file not found: {args.xml}", file=sys.stderr)
        return 2
    text = generate(args.xml)
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"gen_spec: {args.output} is out of date; run tools/gen_spec.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
