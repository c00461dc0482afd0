"""spec.py is generated: regenerating it from the XML must give the committed module."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "tools" / "gen_spec.py"
XML = REPO.parent / "shared" / "spec" / "amqp0-9-1.stripped.extended.xml"
COMMITTED = REPO / "src" / "kiltmq" / "protocol" / "spec.py"


def test_committed_spec_matches_generator(tmp_path: Path) -> None:
    if not XML.exists():
        pytest.skip(f"AMQP spec XML not found at {XML} (the shared spec folder is absent)")
    out = tmp_path / "spec.py"
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), str(XML), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"tools/gen_spec.py failed:\n{proc.stderr}"
    generated = out.read_text()
    committed = COMMITTED.read_text()
    if generated != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                generated.splitlines(keepends=True),
                "committed spec.py",
                "regenerated spec.py",
                n=2,
            )
        )
        pytest.fail(
            "src/kiltmq/protocol/spec.py is out of date; run `python tools/gen_spec.py`.\n"
            + diff[:5000]
        )


def test_check_mode_reports_current_module() -> None:
    if not XML.exists():
        pytest.skip(f"AMQP spec XML not found at {XML} (the shared spec folder is absent)")
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), str(XML), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_check_mode_detects_a_stale_module(tmp_path: Path) -> None:
    if not XML.exists():
        pytest.skip(f"AMQP spec XML not found at {XML} (the shared spec folder is absent)")
    stale = tmp_path / "spec.py"
    stale.write_text(COMMITTED.read_text().replace("FRAME_END = 206", "FRAME_END = 207"))
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), str(XML), "--check", "--output", str(stale)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "out of date" in proc.stderr
