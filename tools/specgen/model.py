"""The AMQP XML read into a model: constants, methods with their fields, and the content
properties of each class, with every field's domain resolved to its wire type. Names are
hyphenated (the 0-8 XML writes "auto delete" where 0-9-1 writes "auto-delete")."""

from __future__ import annotations

import keyword
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

# Property names where the XML has a placeholder name but RabbitMQ and every client use
# the historic one.
PROPERTY_RENAMES = {"reserved": "cluster-id"}

# Methods whose <chassis> the XML gets wrong, with the side that implements (receives) them.
# RabbitMQ's XML marks connection.update-secret as received by the client, but the client
# sends it and the server answers update-secret-ok (as rabbit_reader and every client do).
CHASSIS_ERRATA = {
    "connection.update-secret": ["server"],
    "connection.update-secret-ok": ["client"],
}


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


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def hyphenated(name: str | None) -> str:
    return str(name).replace(" ", "-")


@dataclass
class Spec:
    """What the generator needs from the XML."""

    major: str | None
    minor: str | None
    revision: str | None
    port: str | None
    constants: list[tuple[str, int, str | None]]  # (name, value, error class)
    methods: list[Method]
    properties: list[Field]  # of class basic
    # (class id, name, content properties) of every class, in the XML's order
    classes: list[tuple[int, str, list[Field]]] = field(default_factory=list)


def parse(xml_path: Path) -> Spec:
    root = ET.parse(xml_path).getroot()
    domains = {d.get("name"): d.get("type") for d in root.findall("domain")}

    def wire_type(el: ET.Element) -> str:
        t = el.get("type") or domains[el.get("domain")]
        while t in domains and domains[t] != t:
            t = domains[t]
        assert t is not None
        return t

    constants = [
        (
            hyphenated(c.get("name")),
            int(str(c.get("value"))),
            None if c.get("class") is None else hyphenated(c.get("class")),
        )
        for c in root.findall("constant")
    ]
    methods: list[Method] = []
    properties: list[Field] = []
    classes: list[tuple[int, str, list[Field]]] = []
    for cls in root.findall("class"):
        cls_name = hyphenated(cls.get("name"))
        cls_id = int(str(cls.get("index")))
        class_properties = []
        for f in cls.findall("field"):
            name = hyphenated(f.get("name"))
            class_properties.append(Field(PROPERTY_RENAMES.get(name, name), wire_type(f), False))
        classes.append((cls_id, cls_name, class_properties))
        if cls_name == "basic":
            properties = class_properties
        for m in cls.findall("method"):
            method = Method(
                cls_name=cls_name,
                cls_id=cls_id,
                name=hyphenated(m.get("name")),
                id=int(str(m.get("index"))),
                synchronous=m.get("synchronous") == "1",
                content=m.get("content") == "1",
                chassis=[str(c.get("name")) for c in m.findall("chassis")],
                responses=[hyphenated(r.get("name")) for r in m.findall("response")],
            )
            method.chassis = CHASSIS_ERRATA.get(method.dotted, method.chassis)
            for f in m.findall("field"):
                method.fields.append(
                    Field(hyphenated(f.get("name")), wire_type(f), f.get("reserved") == "1")
                )
            methods.append(method)
    return Spec(
        root.get("major"),
        root.get("minor"),
        root.get("revision"),
        root.get("port"),
        constants,
        methods,
        properties,
        classes,
    )
