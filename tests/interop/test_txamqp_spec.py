"""The spec XML written for txAMQP (:mod:`kiltmq.protocol.spec_xml`) carries kiltmq's
protocol tables whole, and txAMQP reads it as it reads the published spec."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import txamqp.spec

from kiltmq.protocol import spec, spec08

from .txamqp_spec import write_spec

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "tools" / "gen_spec.py"
COMMITTED = REPO / "src" / "kiltmq" / "protocol" / "spec.py"
SHARED_XML = REPO.parent / "shared" / "spec" / "amqp0-9-1.stripped.extended.xml"
COMMITTED_08 = REPO / "src" / "kiltmq" / "protocol" / "spec08.py"


@pytest.fixture(scope="module")
def xml_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_spec(tmp_path_factory.mktemp("spec") / "amqp0-9-1.xml")


def test_regenerating_spec_py_from_the_xml_gives_it_back(xml_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "spec.py"
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), str(xml_path), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == COMMITTED.read_text()


def test_txamqp_loads_every_method_and_constant(xml_path: Path) -> None:
    loaded = txamqp.spec.load(str(xml_path))
    assert (loaded.major, loaded.minor) == (0, 9)
    for method in spec.METHODS.values():
        class_name, method_name = method.NAME.split(".")
        theirs = loaded.classes.byname[class_name].methods.byname[method_name]
        assert theirs.klass.id == method.CLASS_ID
        assert theirs.id == method.METHOD_ID
        assert [(f.name, f.type) for f in theirs.fields] == list(method.WIRE_FIELDS)
    assert loaded.constants.byname["frame-end"].id == spec.FRAME_END
    assert loaded.constants.byname["frame-heartbeat"].id == spec.FRAME_HEARTBEAT
    properties = loaded.classes.byname["basic"].fields
    assert [f.name for f in properties][:4] == [
        "content-type",
        "content-encoding",
        "headers",
        "delivery-mode",
    ]


def _tables(loaded: Any) -> dict[str, Any]:
    """What txAMQP uses of a loaded spec, comparable across files."""
    tables: dict[str, Any] = {
        "version": (loaded.major, loaded.minor),
        "constants": sorted((c.name, c.id, c.klass) for c in loaded.constants),
    }
    for cls in loaded.classes:
        tables[cls.name] = (
            cls.id,
            cls.handler,
            [(f.name, f.type) for f in cls.fields],
            sorted(
                (
                    m.name,
                    m.id,
                    m.content,
                    m.synchronous,
                    [r.name for r in m.responses],
                    [(f.name, f.type) for f in m.fields],
                )
                for m in cls.methods
            ),
        )
    return tables


def test_txamqp_reads_it_as_the_published_spec(xml_path: Path) -> None:
    """A developer check: it needs the published XML in ../shared/spec."""
    if not SHARED_XML.exists():
        pytest.skip(f"AMQP spec XML not found at {SHARED_XML} (the shared spec folder is absent)")
    ours = _tables(txamqp.spec.load(str(xml_path)))
    published = _tables(txamqp.spec.load(str(SHARED_XML)))
    # The last property: the XML's placeholder name, the one RabbitMQ and clients use.
    id_, handler, properties, methods = published["basic"]
    published["basic"] = (id_, handler, [*properties[:-1], ("cluster-id", "shortstr")], methods)
    assert ours == published


@pytest.fixture(scope="module")
def xml08_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_spec(tmp_path_factory.mktemp("spec") / "amqp0-8.xml", amqp_0_8=True)


def test_regenerating_spec08_py_from_the_xml_gives_it_back(
    xml_path: Path, xml08_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "spec08.py"
    proc = subprocess.run(
        [
            sys.executable,
            str(GENERATOR),
            "--dialect",
            "0-8",
            str(xml08_path),
            "--base",
            str(xml_path),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == COMMITTED_08.read_text()


def test_txamqp_loads_the_0_8_spec(xml08_path: Path) -> None:
    loaded = txamqp.spec.load(str(xml08_path))
    assert (loaded.major, loaded.minor) == (8, 0)
    for index, definition in spec08.DEFINITIONS.items():
        class_name, method_name = definition.name.split(".")
        theirs = loaded.classes.byname[class_name].methods.byname[method_name]
        assert (theirs.klass.id, theirs.id) == (index >> 16, index & 0xFFFF)
        assert [(f.name, f.type) for f in theirs.fields] == list(definition.wire_fields)
    close = loaded.classes.byname["connection"].methods.byname["close"]
    assert close.id == 60
    assert list(loaded.classes.byname["channel"].methods.byname["open-ok"].fields) == []
