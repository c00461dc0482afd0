"""spec08.py is generated: regenerating it from the 0-8 XML (and the 0-9-1 XML whose
classes it shares) must give the committed module."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "tools" / "gen_spec.py"
SHARED = REPO.parent / "shared" / "spec"
XML = SHARED / "amqp0-8.stripped.xml"
BASE = SHARED / "amqp0-9-1.stripped.extended.xml"
COMMITTED = REPO / "src" / "kiltmq" / "protocol" / "spec08.py"


def _generator(*args: str) -> subprocess.CompletedProcess[str]:
    if not (XML.exists() and BASE.exists()):
        pytest.skip(f"AMQP spec XML not found in {SHARED} (the shared spec folder is absent)")
    return subprocess.run(
        [sys.executable, str(GENERATOR), "--dialect", "0-8", str(XML), "--base", str(BASE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_committed_spec08_matches_generator(tmp_path: Path) -> None:
    out = tmp_path / "spec08.py"
    proc = _generator("--output", str(out))
    assert proc.returncode == 0, f"tools/gen_spec.py failed:\n{proc.stderr}"
    generated, committed = out.read_text(), COMMITTED.read_text()
    if generated != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                generated.splitlines(keepends=True),
                "committed spec08.py",
                "regenerated spec08.py",
                n=2,
            )
        )
        pytest.fail(
            "src/kiltmq/protocol/spec08.py is out of date; run "
            "`python tools/gen_spec.py --dialect 0-8`.\n" + diff[:5000]
        )


def test_check_mode_detects_a_stale_module(tmp_path: Path) -> None:
    stale = tmp_path / "spec08.py"
    stale.write_text(COMMITTED.read_text().replace("PORT = 5672", "PORT = 5673"))
    proc = _generator("--check", "--output", str(stale))
    assert proc.returncode == 1
    assert "out of date" in proc.stderr
    assert _generator("--check").returncode == 0
