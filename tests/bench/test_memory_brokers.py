"""Which broker the memory scenarios measure: a fresh RabbitMQ node when one can be started
here (or the running one, and the report says why), and when the resident memory counts as
settled."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from kiltmq.bench import Options, memory, procstat, rabbitmq_node, run, targets
from kiltmq.bench.options import add_arguments, options_from_args
from kiltmq.bench.report import render

ONLY = ("memory-connection",)


def _options(rabbitmq_url: str, **kwargs: object) -> Options:
    return Options(
        only=ONLY,
        kiltmq=False,
        rabbitmq_url=rabbitmq_url,
        memory_connections=10,
        memory_settle=1.0,
        **kwargs,  # type: ignore[arg-type]
    )


def _parse(*argv: str) -> Options:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return options_from_args(parser.parse_args(list(argv)))


def test_fresh_is_the_default_and_can_be_turned_off() -> None:
    assert _parse().rabbitmq_fresh is True
    assert _parse("--rabbitmq-fresh").rabbitmq_fresh is True
    assert _parse("--no-rabbitmq-fresh").rabbitmq_fresh is False


@pytest.mark.rabbitmq
def test_no_rabbitmq_fresh_measures_the_running_node(rabbitmq_url: str) -> None:
    with targets.open_targets(_options(rabbitmq_url, rabbitmq_fresh=False)) as found:
        (target,) = found
    assert target.fresh is None
    assert target.memory_note.startswith("the running node (--no-rabbitmq-fresh)")


@pytest.mark.rabbitmq
def test_without_rabbitmq_server_the_running_node_is_measured_and_the_report_says_so(
    rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rabbitmq_node, "SERVER", "/nonexistent/rabbitmq-server")
    report = run(_options(rabbitmq_url))
    (target,) = report.targets
    assert target.fresh is None and target.error is None
    (result,) = report.results
    assert result.error is None and result.accounted == 10
    assert result.memory_per is not None
    assert (
        "RabbitMQ measured on the running node (/nonexistent/rabbitmq-server is not installed)"
        in render(report)
    )


@pytest.mark.rabbitmq
@pytest.mark.skipif(rabbitmq_node.unavailable() is not None, reason="no RabbitMQ node can start")
def test_a_memory_run_gets_a_fresh_node_stopped_by_pid_afterwards(
    rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes: list[rabbitmq_node.Node] = []
    start = rabbitmq_node.rabbitmq_node

    @contextlib.contextmanager
    def recorded(*, management: bool = False) -> Iterator[rabbitmq_node.Node]:
        with start(management=management) as node:
            nodes.append(node)
            yield node

    monkeypatch.setattr(targets, "rabbitmq_node", recorded)
    report = run(_options(rabbitmq_url))
    (result,) = report.results
    assert result.error is None and result.accounted == 10
    assert result.memory_per is not None
    assert "RabbitMQ measured on a fresh node per memory run." in render(report)
    (node,) = nodes
    assert node.error is None and node.name.startswith(f"kiltbench-{os.getpid()}-")
    assert node.pid is not None and node.pid != procstat.find_rabbitmq_pid(5672)
    assert not os.path.exists(f"/proc/{node.pid}")  # stopped
    assert node.directory and not os.path.exists(node.directory)  # and its files deleted


def test_settled_rss_of_an_idle_process() -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        rss, settled = asyncio.run(memory.settled_rss(idle.pid, 30))
        assert settled and rss is not None
        assert abs(procstat.rss_bytes(idle.pid) - rss) <= memory.SETTLE_TOLERANCE
        # Read once without waiting: not known to be settled.
        rss, settled = asyncio.run(memory.settled_rss(idle.pid, 0))
        assert rss is not None and rss > 0 and not settled
    finally:
        idle.kill()
        idle.wait()
    assert asyncio.run(memory.settled_rss(idle.pid, 5)) == (None, False)
