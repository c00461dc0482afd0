"""Broker benchmarks: the same scenarios against kiltmq and RabbitMQ, side by side.

``kiltmq bench`` (or ``python -m benchmarks``) runs them; :func:`run` does it from Python::

    from kiltmq.bench import Options, run
    report = run(Options(seconds=1, only=("e2e-ack/celery", "publish/*")))

The load generator (:mod:`kiltmq.bench.loadclient`) is the raw AMQP client on the sans-IO
protocol core (:mod:`kiltmq.bench.rawclient`, also what the compatibility and protocol tests
drive) made fast; producer and consumers run in their own processes, and the broker in
another, so each one's CPU time is measured apart (:mod:`kiltmq.bench.procstat`).
"""

from kiltmq.bench.options import Options
from kiltmq.bench.results import Report, Result
from kiltmq.bench.runner import run
from kiltmq.bench.scenarios import SCENARIOS, Scenario
from kiltmq.bench.targets import Target

__all__ = ["SCENARIOS", "Options", "Report", "Result", "Scenario", "Target", "run"]
