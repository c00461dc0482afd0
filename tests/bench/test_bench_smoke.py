"""The broker benchmark harness, run for a fraction of a second per scenario.

Checks that it produces sane figures and that every published message is accounted for;
it asserts nothing about speed. A scenario of each kind (the CLI test runs publish only).
"""

from __future__ import annotations

import os

import pytest

from kiltmq.bench import SCENARIOS, Options, Report, run
from kiltmq.bench.procstat import cpu_seconds
from kiltmq.bench.report import render, warnings
from kiltmq.cli.main import main as cli_main

QUICK = (
    "memory-queue/celery",
    "memory-connection",
    "e2e-ack/celery",
    "durable-confirm/4k",
    "fanout-100/100b",
    "topic-10k/100b",
    "latency-10k/100b",
)


# RabbitMQ takes seconds to make 10,000 bindings.
QUICK_RABBITMQ = tuple(k for k in QUICK if not k.startswith(("topic", "memory-queue")))


def _options(only: tuple[str, ...] = QUICK, **kwargs: object) -> Options:
    return Options(
        seconds=0.3,
        warmup=0.2,
        drain_timeout=20,
        only=only,
        memory_messages=2000,
        memory_connections=20,
        memory_settle=2.0,
        **kwargs,  # type: ignore[arg-type]
    )


def _check(report: Report, target: str, only: tuple[str, ...] = QUICK) -> None:
    assert [t.error for t in report.targets] == [None]
    assert [r.scenario for r in report.results] == list(only)
    for r in report.results:
        assert r.target == target
        assert r.error is None, (r.scenario, r.error)
        assert r.window > 0
        assert r.published > 0
        assert r.accounted == r.expected, (r.scenario, r.published, r.expected, r.accounted)
        if SCENARIOS[r.scenario].kind == "flow":
            # (a broker may still be starting up a scenario in so short a window)
            assert r.messages >= 0
            assert r.broker_cpu is not None and r.broker_cpu >= 0
            assert r.generator_cpu >= 0
            assert r.broker_rss is not None and r.broker_rss > 0
        else:
            assert r.memory_per is not None, r.scenario
    fanout = report.result(target, "fanout-100/100b")
    assert fanout is not None and fanout.expected == 100 * fanout.published
    durable = report.result(target, "durable-confirm/4k")
    assert durable is not None and durable.nacked == 0
    latency = report.result(target, "latency-10k/100b")
    assert latency is not None and latency.latencies_ns
    p50, p99 = latency.latency_ms(0.5), latency.latency_ms(0.99)
    assert p50 is not None and p99 is not None and 0 < p50 <= p99
    assert sum(r.messages for r in report.results if SCENARIOS[r.scenario].kind == "flow") > 0
    text = render(report)
    for key in only:
        assert key in text
    markdown = render(report, markdown=True)
    assert markdown.count("\n| e2e-ack/celery") == 2  # summary and details
    assert markdown.count("\n| memory-connection") == 2  # memory table and details
    assert not [w for w in warnings(report) if "failed" in w or "should give" in w]


def test_quick_run_against_kiltmq() -> None:
    report = run(_options(rabbitmq=False))
    _check(report, "kiltmq")


@pytest.mark.rabbitmq
def test_quick_run_against_rabbitmq(rabbitmq_url: str) -> None:
    # (tests/bench/test_memory_brokers.py runs a memory scenario on a fresh node)
    report = run(
        _options(QUICK_RABBITMQ, kiltmq=False, rabbitmq_url=rabbitmq_url, rabbitmq_fresh=False)
    )
    _check(report, "RabbitMQ", QUICK_RABBITMQ)


def test_cpu_seconds_of_this_process() -> None:
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(300_000))
    assert cpu_seconds(os.getpid()) >= before >= 0


def test_cli_rejects_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", "--only", "a,z"]) == 2
    assert "unknown scenario(s) z" in capsys.readouterr().err


def test_cli_markdown_against_kiltmq_with_management(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--no-rabbitmq", "--only", "c,*/64k", "--seconds", "0.3", "--warmup", "0.1"]
    assert cli_main([*argv, "--management", "--no-uvloop", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| scenario | kiltmq msg/s | kiltmq CPU µs/msg |" in out
    assert "| publish/100b kiltmq |" in out
    assert "| durable-confirm/64k kiltmq |" in out
    assert "on asyncio" in out
    assert "kiltmq with its management API" in out
