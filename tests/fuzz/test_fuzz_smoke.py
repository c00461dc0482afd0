"""The fuzzer (``make fuzz``), run for a few thousand frames so that it keeps working: it
starts a broker, sends mutated streams before and after login, checks the broker between
them and finds nothing wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


def _fuzz(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    return subprocess.run(
        [sys.executable, "-m", "fuzz", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


def test_a_short_run_finds_nothing(tmp_path: Path) -> None:
    proc = _fuzz(
        "--frames", "3000", "--check-every", "1000", "--concurrency", "4", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    frames = int(summary.split()[0])
    assert frames >= 3000
    assert "mutated before login" in summary
    assert "0 findings" in summary
    log = (tmp_path / "broker-1.log").read_text()
    assert "Traceback" not in log and " ERROR " not in log


def test_a_saved_input_replays(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from fuzz.runner import encode_parts
    finally:
        sys.path.remove(str(ROOT))
    saved = tmp_path / "case.bin"
    # a protocol header, then a start-ok frame cut short, then nothing
    saved.write_bytes(encode_parts([b"AMQP\x00\x00\x09\x01", b"\x01\x00\x00\x00\x00\x00\x09", b""]))
    proc = _fuzz("--replay", str(saved), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "round trip afterwards: ok" in proc.stdout
