"""``kiltmq spec``: the spec XML for txAMQP, on standard output or in a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import txamqp.spec

from kiltmq.cli.main import main
from kiltmq.protocol.spec_xml import spec08_xml, spec_xml


def test_writes_the_0_9_1_spec_to_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec"]) == 0
    assert capsys.readouterr().out == spec_xml()


@pytest.mark.parametrize(("version", "major", "minor"), [("0-8", 8, 0), ("0-9-1", 0, 9)])
def test_writes_a_file_txamqp_loads(version: str, major: int, minor: int, tmp_path: Path) -> None:
    path = tmp_path / f"amqp{version}.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "kiltmq", "spec", "--amqp", version, "-o", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert path.read_text(encoding="utf-8") == (spec08_xml() if version == "0-8" else spec_xml())
    loaded = txamqp.spec.load(str(path))
    assert (loaded.major, loaded.minor) == (major, minor)
    publish = loaded.classes.byname["basic"].methods.byname["publish"]
    assert (publish.klass.id, publish.id) == (60, 40)


def test_an_unwritable_file_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing" / "amqp0-8.xml"
    assert main(["spec", "--amqp", "0-8", "-o", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"kiltmq spec: cannot write {target}:")
    assert not target.exists()


def test_an_unknown_version_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["spec", "--amqp", "1-0"])
    assert exit_info.value.code == 2
    assert "invalid choice: '1-0'" in capsys.readouterr().err
