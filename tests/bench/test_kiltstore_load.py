"""The kilt store's load test, run with a handful of orders: every order is placed through
its front door and seen approved (it asserts nothing about speed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The benchmarks package lives at the repository's root, which is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.kiltstore_load import Run, main, percentile, report


def test_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0  # nearest rank of 99 * 0.5
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0


def test_a_missing_or_refused_order_fails_the_run() -> None:
    run = Run("kiltmq", placed={"a": 0.0, "b": 0.0}, approved={"a": 0.5},
              failed={"b": "declined: payment declined"})
    text, ok = report(run, 2)
    assert not ok
    assert "1/2 approved" in text and "1 not approved" in text


def test_a_few_orders_from_each_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--orders", "6", "--no-rabbitmq", "--kiltmq-broker", "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert f"{'embedded':13}      6/6 approved" in out
    assert f"{'kiltmq-broker':13}      6/6 approved" in out
    for source in ("web", "phone", "crm"):
        assert out.count(f"{source:5}     2 orders") == 2
