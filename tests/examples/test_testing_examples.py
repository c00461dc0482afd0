"""The example tests of examples/testing/ pass, run as an application's test suite runs
them: by pytest in a fresh session, with kiltmq's plugin and nothing else configured."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "testing"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("test_*.py")))
def test_example_passes(pytester: pytest.Pytester, name: str) -> None:
    shutil.copy(EXAMPLES / name, pytester.path / name)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest", name)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1
    assert not outcomes.get("failed") and not outcomes.get("errors")
