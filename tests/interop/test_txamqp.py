"""txAMQP on Twisted against kiltmq and RabbitMQ.

The scenarios live in ``txamqp_scenarios.py`` and run in a subprocess with Twisted's
default reactor (one run per broker and spec, all scenarios), so that no reactor is
installed in the pytest process. txAMQP loads the AMQP spec from an XML file at run time:
the tests write one from kiltmq's own protocol tables (``txamqp_spec.py``), for AMQP 0-9-1
and for AMQP 0-8 (with which txAMQP sends the 0-8 header and speaks 0-8, as in the classic
txAMQP tutorial). The 0-8 runs leave out what 0-8 lacks (confirm.select, basic.nack).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .txamqp_spec import write_spec

SCRIPT = Path(__file__).with_name("txamqp_scenarios.py")
SCENARIOS = [
    "consumer_declares_binds_and_consumes",
    "message_waits_for_a_consumer",
    "two_consumers_share_round_robin",
    "fanout_every_consumer_gets_every_message",
    "publisher_confirms",
    "basic_get",
    "reject_requeue_redelivers",
    "channel_error_leaves_connection_usable",
]
SCENARIOS_0_8 = [
    "consumer_declares_binds_and_consumes",
    "two_consumers_share_round_robin",
    "fanout_every_consumer_gets_every_message",
    "channel_error_leaves_connection_usable",
]
RUN_TIMEOUT = 120

Results = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The AMQP spec XML for txAMQP, written from kiltmq.protocol.spec."""
    return write_spec(tmp_path_factory.mktemp("txamqp") / "amqp0-9-1.xml")


@pytest.fixture(scope="module")
def spec08_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The AMQP 0-8 spec XML for txAMQP, written from kiltmq.protocol.spec08."""
    return write_spec(tmp_path_factory.mktemp("txamqp") / "amqp0-8.xml", amqp_0_8=True)


@pytest.fixture(scope="module")
def runs() -> dict[str, Results]:
    """Results of the subprocess, per broker URL (each broker is run once)."""
    return {}


def results_for(
    url: str, spec: Path, runs: dict[str, Results], scenarios: list[str] = SCENARIOS
) -> Results:
    key = f"{url} {spec.name}"
    if key not in runs:
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), url, str(spec), *scenarios],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        lines = proc.stdout.strip().splitlines()
        assert proc.returncode == 0 and lines, (
            f"txAMQP scenarios did not run (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
        runs[key] = json.loads(lines[-1])
    return runs[key]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_txamqp(scenario: str, broker_url: str, spec_path: Path, runs: dict[str, Results]) -> None:
    results = results_for(broker_url, spec_path, runs)
    assert sorted(results) == sorted(SCENARIOS)
    result = results[scenario]
    assert result["ok"], f"{scenario} failed:\n{result['error']}"


@pytest.mark.parametrize("scenario", SCENARIOS_0_8)
def test_txamqp_0_8(
    scenario: str, broker_url: str, spec08_path: Path, runs: dict[str, Results]
) -> None:
    results = results_for(broker_url, spec08_path, runs, SCENARIOS_0_8)
    assert sorted(results) == sorted(SCENARIOS_0_8)
    result = results[scenario]
    assert result["ok"], f"{scenario} (AMQP 0-8) failed:\n{result['error']}"
