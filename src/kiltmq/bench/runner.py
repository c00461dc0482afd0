"""Run the broker scenarios against kiltmq and RabbitMQ, interleaved, and report.

For each scenario, each repeat and each broker, :func:`~kiltmq.bench.scenario_run.run_scenario`
measures one run (see :mod:`kiltmq.bench.scenario_run`); :func:`run` collects them in a
:class:`~kiltmq.bench.results.Report` and :func:`main` prints it (``kiltmq bench``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from datetime import UTC, datetime
from typing import Any

from kiltmq.bench.options import DEFAULT_RABBITMQ_URL, Options, add_arguments, options_from_args
from kiltmq.bench.report import render
from kiltmq.bench.results import Report, Result
from kiltmq.bench.scenario_run import run_scenario
from kiltmq.bench.scenarios import SCENARIOS, Scenario, select
from kiltmq.bench.targets import Target, open_targets

__all__ = [
    "DEFAULT_RABBITMQ_URL",
    "Options",
    "Report",
    "Result",
    "Target",
    "add_arguments",
    "main",
    "options_from_args",
    "run",
]


def _machine(targets: list[Target]) -> dict[str, str]:
    info = {
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    for target in targets:
        if target.version:
            info[target.name] = target.version + (f" on {target.loop}" if target.loop else "")
    return info


def _run_one(target: Target, scenario: Scenario, options: Options) -> Result:
    """One run. A memory run gets a fresh broker of its own when the target can start one
    (a kiltmq broker the benchmark started; a local RabbitMQ, see
    :mod:`kiltmq.bench.rabbitmq_node`): a process keeps memory it freed for reuse, or gives
    it back late, so after other scenarios its memory would not grow by what the messages
    or connections take."""
    if scenario.kind == "flow" or target.fresh is None:
        return run_scenario(target, scenario, options)
    with target.fresh() as fresh:
        if fresh.error is not None:
            return Result(target.name, scenario.key, error=fresh.error)
        return run_scenario(fresh, scenario, options)


def run(options: Options, log: Any = None) -> Report:
    """Run the selected scenarios against the selected brokers, interleaved. ``options.only``
    may name scenarios as ``--only`` does (keys, old keys, patterns)."""
    options = dataclasses.replace(options, only=select(options.only))
    started = datetime.now(UTC)
    results: list[Result] = []
    with open_targets(options) as targets:
        machine = _machine(targets)
        for key in options.only:
            scenario = SCENARIOS[key]
            for repeat in range(options.repeat):
                for target in targets:
                    if target.error is not None:
                        continue
                    if log is not None:
                        nth = f" (run {repeat + 1}/{options.repeat})" if options.repeat > 1 else ""
                        print(
                            f"  ({key}) {target.name}: {scenario.title}{nth}", file=log, flush=True
                        )
                    result = _run_one(target, scenario, options)
                    results.append(result)
                    if log is not None and result.error:
                        print(f"      error: {result.error}", file=log, flush=True)
                    time.sleep(0.2)
    return Report(options, targets, results, started, machine)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; print the report; exit status."""
    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"kiltmq broker benchmark: scenarios {','.join(options.only)}, "
        f"{options.warmup:g} s warm-up + {options.seconds:g} s each",
        file=sys.stderr,
        flush=True,
    )
    rep = run(options, log=sys.stderr)
    print(render(rep, markdown=args.markdown))
    # An unreachable RabbitMQ only leaves its column empty (with a warning); kiltmq failing
    # to start, or any scenario failing, is an error.
    failed = any(t.error and t.name == "kiltmq" for t in rep.targets) or any(
        r.error or not r.accounted_ok for r in rep.results
    )
    return 1 if failed or not rep.results else 0
