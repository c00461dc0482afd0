"""txAMQP on Twisted against kiltmq and RabbitMQ.

The scenarios live in ``txamqp_scenarios.py`` and run in a subprocess with Twisted's
default reactor (one run per broker, all scenarios), so that no reactor is installed in the
pytest process. txAMQP loads the AMQP spec from an XML file at run time: the tests write
one from kiltmq's own protocol tables (``txamqp_spec.py``).
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
RUN_TIMEOUT = 120

Results = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The AMQP spec XML for txAMQP, written from kiltmq.protocol.spec."""
    return write_spec(tmp_path_factory.mktemp("txamqp") / "amqp0-9-1.xml")


@pytest.fixture(scope="module")
def runs() -> dict[str, Results]:
    """Results of the subprocess, per broker URL (each broker is run once)."""
    return {}


def results_for(url: str, spec: Path, runs: dict[str, Results]) -> Results:
    if url not in runs:
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), url, str(spec)],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        lines = proc.stdout.strip().splitlines()
        assert proc.returncode == 0 and lines, (
            f"txAMQP scenarios did not run (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
        runs[url] = json.loads(lines[-1])
    return runs[url]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_txamqp(scenario: str, broker_url: str, spec_path: Path, runs: dict[str, Results]) -> None:
    results = results_for(broker_url, spec_path, runs)
    assert sorted(results) == sorted(SCENARIOS)
    result = results[scenario]
    assert result["ok"], f"{scenario} failed:\n{result['error']}"
