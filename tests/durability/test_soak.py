"""A few rounds of the kill -9 soak (``tools/soak.py``; ``make soak`` runs 100)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

SOAK = Path(__file__).resolve().parents[2] / "tools" / "soak.py"


def test_a_few_rounds_of_kill_9_lose_nothing_promised(tmp_path: Path) -> None:
    seed = int(os.environ.get("KILTMQ_SOAK_SEED", str(os.getpid())))
    result = subprocess.run(
        [sys.executable, str(SOAK), "--rounds", "4", "--seed", str(seed),
         "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=280,
    )
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, "\n".join(lines[-5:]) + result.stderr[-2000:]
    assert len(lines) == 5 and lines[-1].startswith(f"seed {seed}: 4 rounds of kill -9")
    assert "nothing confirmed lost, no committed ack undone" in lines[-1]
    # the rounds did exercise what they check
    confirmed = int(lines[-1].split(" published, ")[1].split(" confirmed")[0])
    assert confirmed > 500, lines[-1]
