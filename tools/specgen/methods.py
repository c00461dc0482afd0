"""A method class emitted: slots, class attributes, ``__init__``, and a straight-line
``encode``/``decode`` in which runs of fixed-size fields and bits share one struct call."""

from __future__ import annotations

import struct
from collections.abc import Callable

from specgen.emit import DEFAULTS, FIXED, PY_TYPES, Writer, tuple_literal, wire_fields_literal
from specgen.model import Field, Method


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
