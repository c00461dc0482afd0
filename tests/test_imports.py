"""The broker and the client meet only on the wire: importing one does not load the
other, and the package root loads its client names only when they are used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import kiltmq

SRC = str(Path(kiltmq.__file__).resolve().parents[1])


def _loaded(code: str) -> list[str]:
    """The kiltmq modules loaded once ``code`` ran in a fresh interpreter."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    script = f"{code}\nimport sys\nprint(*(m for m in sys.modules if m.startswith('kiltmq')))"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_broker_does_not_import_the_client() -> None:
    loaded = _loaded("import kiltmq.broker\nfrom kiltmq.broker import Broker")
    assert "kiltmq.broker.broker" in loaded
    assert not [m for m in loaded if m == "kiltmq.client" or m.startswith("kiltmq.client.")]


def test_the_client_does_not_import_the_broker() -> None:
    loaded = _loaded("import kiltmq.client")
    assert "kiltmq.client" in loaded
    assert not [m for m in loaded if m == "kiltmq.broker" or m.startswith("kiltmq.broker.")]


def test_the_package_root_imports_the_client_on_first_use() -> None:
    assert set(_loaded("import kiltmq")) == {"kiltmq", "kiltmq.version"}
    loaded = _loaded("from kiltmq import connect, Connection, NotFound, BasicProperties")
    assert "kiltmq.client" in loaded


def test_the_package_root_names() -> None:
    from kiltmq.client import Connection, connect
    from kiltmq.protocol.errors import NotFound
    from kiltmq.protocol.spec import BasicProperties

    assert kiltmq.connect is connect
    assert kiltmq.Connection is Connection
    assert kiltmq.NotFound is NotFound
    assert kiltmq.BasicProperties is BasicProperties
    assert set(kiltmq.__all__) <= set(dir(kiltmq))
    assert isinstance(kiltmq.__version__, str)
    with pytest.raises(AttributeError, match="no_such_name"):
        kiltmq.no_such_name  # noqa: B018


def test_a_subcommand_named_first_loads_its_own_module_only() -> None:
    # `kiltmq ctl --socket ...` (a short-lived process, run often) loads neither the
    # broker nor the client
    loaded = _loaded(
        "from kiltmq.cli.main import main\n"
        "assert main(['ctl', '--socket', '/nonexistent/ctl.sock', 'status']) == 69"
    )
    assert "kiltmq.cli.ctl" in loaded
    assert not [m for m in loaded if m.startswith(("kiltmq.broker", "kiltmq.client"))]
    assert "kiltmq.cli.broker" not in loaded
    # with no subcommand first, every one is there for --help
    loaded = _loaded("from kiltmq.cli.main import build_parser\nbuild_parser()")
    assert {"kiltmq.cli.ctl", "kiltmq.cli.broker", "kiltmq.cli.spec"} <= set(loaded)
