"""Broker benchmarks: the same scenarios against kiltmq and RabbitMQ, side by side.

``kiltmq bench`` (or ``python -m benchmarks``) runs them; :func:`run` does it from Python::

    from kiltmq.bench import Options, run
    report = run(Options(seconds=1, only=("a", "b")))

The load generator (:mod:`kiltmq.bench.client`) is a small, fast AMQP client on the
sans-IO protocol core; producer and consumers run in their own processes, and the broker
in another, so each one's CPU time is measured apart (:mod:`kiltmq.bench.procstat`).
"""

from kiltmq.bench.runner import Options, Report, Result, Target, run
from kiltmq.bench.scenarios import SCENARIOS, Scenario

__all__ = ["SCENARIOS", "Options", "Report", "Result", "Scenario", "Target", "run"]
