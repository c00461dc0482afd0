"""The broker benchmark harness, run for a fraction of a second per scenario.

Checks that it produces sane figures and that every published message is accounted for;
it asserts nothing about speed.
"""

from __future__ import annotations

import os

import pytest

from kiltmq.bench import SCENARIOS, Options, Report, run
from kiltmq.bench.procstat import cpu_seconds
from kiltmq.bench.report import render, warnings
from kiltmq.cli.main import main as cli_main


def _check(report: Report, target: str) -> None:
    assert [t.error for t in report.targets] == [None]
    assert [r.scenario for r in report.results] == list(SCENARIOS)
    for r in report.results:
        assert r.target == target
        assert r.error is None, r.error
        assert r.window > 0
        assert r.messages > 0, r.scenario
        assert r.published > 0
        assert r.accounted == r.expected, (r.scenario, r.published, r.expected, r.accounted)
        assert r.broker_cpu is not None and r.broker_cpu >= 0
        assert r.generator_us_per_msg is not None
    d = report.result(target, "d")
    assert d is not None and d.expected == 4 * d.published
    e = report.result(target, "e")
    assert e is not None and e.latencies_ns
    p50, p99 = e.latency_ms(0.5), e.latency_ms(0.99)
    assert p50 is not None and p99 is not None and 0 < p50 <= p99
    text = render(report)
    for scenario in SCENARIOS.values():
        assert scenario.title in text
    assert render(report, markdown=True).count("\n| (a)") == 2  # summary and details
    assert not [w for w in warnings(report) if "failed" in w or "should give" in w]


def test_quick_run_against_kiltmq() -> None:
    report = run(Options(seconds=0.5, warmup=0.2, drain_timeout=20, rabbitmq=False))
    _check(report, "kiltmq")


@pytest.mark.rabbitmq
def test_quick_run_against_rabbitmq(rabbitmq_url: str) -> None:
    report = run(
        Options(seconds=0.5, warmup=0.2, drain_timeout=20, kiltmq=False, rabbitmq_url=rabbitmq_url)
    )
    _check(report, "RabbitMQ")


def test_cpu_seconds_of_this_process() -> None:
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(300_000))
    assert cpu_seconds(os.getpid()) >= before >= 0


def test_cli_rejects_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", "--only", "a,z"]) == 2
    assert "unknown scenario(s) z" in capsys.readouterr().err


def test_cli_markdown_against_kiltmq(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--no-rabbitmq", "--only", "b", "--seconds", "0.3", "--warmup", "0.1"]
    assert cli_main([*argv, "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| scenario | kiltmq msg/s | kiltmq CPU µs/msg |" in out
    assert "| (b) kiltmq |" in out
