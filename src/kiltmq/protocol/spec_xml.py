"""The AMQP spec as XML, written from kiltmq's own protocol tables: what txAMQP (and other
clients that load a spec at run time) read.

txAMQP reads the protocol from an XML spec file (``txamqp.spec.load``): the constants
(frame types and frame-end among them), and per class its id, handler and content
properties, and per method its id, ``content`` and ``synchronous`` flags, responses and
fields with their wire types. All of it is in :mod:`kiltmq.protocol.spec` (AMQP 0-9-1)
and :mod:`kiltmq.protocol.spec08` (AMQP 0-8 as RabbitMQ serves it).

The XML carries every table ``tools/gen_spec.py`` reads, fields typed directly rather
than through domains: regenerating ``spec.py`` from :func:`spec_xml` gives ``spec.py``
back, and ``spec08.py`` from :func:`spec08_xml`. ``kiltmq spec`` writes either.
"""

from __future__ import annotations

import keyword
import xml.etree.ElementTree as ET

from kiltmq.protocol import spec, spec08

__all__ = ["spec08_xml", "spec_xml"]


def _py_name(name: str) -> str:
    """The Python name ``spec.py`` gives field ``name`` (as tools/gen_spec.py does)."""
    py = name.replace("-", "_")
    return py + "_" if keyword.iskeyword(py) else py


def _constants(root: ET.Element) -> None:
    """Frame constants, then the reply codes with their soft/hard class."""
    for name, value in vars(spec).items():
        if name.startswith("FRAME_") and isinstance(value, int):
            ET.SubElement(root, "constant", name=name.lower().replace("_", "-"), value=str(value))
    for code in spec.ReplyCode:
        attrs = {"name": code.name.lower().replace("_", "-"), "value": str(int(code))}
        if code in spec.SOFT_ERRORS:
            attrs["class"] = "soft-error"
        elif code in spec.HARD_ERRORS:
            attrs["class"] = "hard-error"
        ET.SubElement(root, "constant", attrs)


def _fields(parent: ET.Element, wire_fields: tuple[tuple[str, str], ...], public: set[str]) -> None:
    for name, wire_type in wire_fields:
        attrs = {"name": name, "type": wire_type}
        if _py_name(name) not in public:
            attrs["reserved"] = "1"
        ET.SubElement(parent, "field", attrs)


def _method(parent: ET.Element, method: type[spec.Method]) -> None:
    attrs = {"name": method.NAME.split(".", 1)[1], "index": str(method.METHOD_ID)}
    if method.SYNCHRONOUS:
        attrs["synchronous"] = "1"
    if method.HAS_CONTENT:
        attrs["content"] = "1"
    element = ET.SubElement(parent, "method", attrs)
    # chassis names the side that implements (receives) the method
    if method.SENT_BY_SERVER:
        ET.SubElement(element, "chassis", name="client", implement="MUST")
    if method.SENT_BY_CLIENT:
        ET.SubElement(element, "chassis", name="server", implement="MUST")
    for response in method.RESPONSES:
        ET.SubElement(element, "response", name=response.split(".", 1)[1])
    _fields(element, method.WIRE_FIELDS, set(method.FIELDS))


def spec_xml() -> str:
    """The spec XML, as text."""
    major, minor, revision = spec.VERSION
    root = ET.Element(
        "amqp", major=str(major), minor=str(minor), revision=str(revision), port=str(spec.PORT)
    )
    _constants(root)
    classes: dict[int, ET.Element] = {}
    for method in spec.METHODS.values():  # in the spec's order
        class_id = method.CLASS_ID
        if class_id not in classes:
            name = spec.CLASS_NAMES[class_id]
            handler = "connection" if name == "connection" else "channel"
            classes[class_id] = ET.SubElement(
                root, "class", name=name, handler=handler, index=str(class_id)
            )
            if name == "basic":
                properties = spec.BasicProperties
                _fields(classes[class_id], properties.WIRE_FIELDS, set(properties.FIELDS))
        _method(classes[class_id], method)
    ET.indent(root)
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def spec08_xml() -> str:
    """The AMQP 0-8 spec XML (with RabbitMQ's additions), as text."""
    major, minor, _revision = spec08.VERSION
    root = ET.Element("amqp", major=str(major), minor=str(minor), port=str(spec08.PORT))
    for name, value, error_class in spec08.CONSTANTS:
        attrs = {"name": name, "value": str(value)}
        if error_class is not None:
            attrs["class"] = error_class
        ET.SubElement(root, "constant", attrs)
    classes: dict[int, ET.Element] = {}
    for class_id, name in spec08.CLASS_NAMES.items():
        handler = "connection" if name == "connection" else "channel"
        element = ET.SubElement(root, "class", name=name, handler=handler, index=str(class_id))
        for field_name, wire_type in spec08.PROPERTIES.get(class_id, ()):
            ET.SubElement(element, "field", name=field_name, type=wire_type)
        classes[class_id] = element
    for index, definition in spec08.DEFINITIONS.items():
        attrs = {"name": definition.name.split(".", 1)[1], "index": str(index & 0xFFFF)}
        if definition.synchronous:
            attrs["synchronous"] = "1"
        if definition.content:
            attrs["content"] = "1"
        element = ET.SubElement(classes[index >> 16], "method", attrs)
        if definition.sent_by_server:
            ET.SubElement(element, "chassis", name="client", implement="MUST")
        if definition.sent_by_client:
            ET.SubElement(element, "chassis", name="server", implement="MUST")
        for response in definition.responses:
            ET.SubElement(element, "response", name=response.split(".", 1)[1])
        for field_name, wire_type in definition.wire_fields:
            ET.SubElement(element, "field", name=field_name, type=wire_type)
    ET.indent(root)
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
