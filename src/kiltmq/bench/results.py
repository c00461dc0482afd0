"""The figures of one scenario against one broker, and of a whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kiltmq.bench.options import Options
from kiltmq.bench.scenarios import SCENARIOS
from kiltmq.bench.targets import Target

__all__ = ["Report", "Result"]


@dataclass
class Result:
    """One scenario against one broker."""

    target: str
    scenario: str
    window: float = 0.0  # seconds measured
    messages: int = 0  # counted in the window (deliveries, or enqueued for publish-only)
    published_in_window: int = 0
    broker_cpu: float | None = None  # CPU seconds in the window
    generator_cpu: float = 0.0
    generator_busiest: float = 0.0  # largest share of one core used by a generator process
    generator_parts: dict[str, float] = field(default_factory=dict)  # CPU s by process
    machine_busy: float = 0.0  # CPU seconds the whole machine was busy in the window
    published: int = 0  # in the whole run
    expected: int = 0  # deliveries (or queued messages) the published ones should give
    accounted: int = 0  # deliveries (or queued messages) seen at the end
    latencies_ns: list[int] = field(default_factory=list, repr=False)
    broker_rss: int | None = None  # bytes, at the end of the window
    memory_per: float | None = None  # memory scenarios: RSS growth per message or connection
    memory_settled: bool = True  # memory scenarios: the RSS settled before both readings
    nacked: int = 0  # publisher confirms that were nacks (durable scenarios)
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.window if self.window else 0.0

    @property
    def publish_rate(self) -> float:
        return self.published_in_window / self.window if self.window else 0.0

    @property
    def broker_us_per_msg(self) -> float | None:
        if self.broker_cpu is None or not self.messages:
            return None
        return self.broker_cpu * 1e6 / self.messages

    @property
    def broker_cores(self) -> float | None:
        if self.broker_cpu is None or not self.window:
            return None
        return self.broker_cpu / self.window

    @property
    def other_cores(self) -> float | None:
        """Cores used by everything but the broker and the generator during the window."""
        if self.broker_cpu is None or not self.window:
            return None
        rest = self.machine_busy - self.broker_cpu - self.generator_cpu
        return max(0.0, rest) / self.window

    @property
    def generator_us_per_msg(self) -> float | None:
        return self.generator_cpu * 1e6 / self.messages if self.messages else None

    @property
    def accounted_ok(self) -> bool:
        return (
            self.error is None
            and self.published > 0
            and self.accounted == self.expected
            and not self.nacked
        )

    def latency_ms(self, fraction: float) -> float | None:
        if not self.latencies_ns:
            return None
        ordered = sorted(self.latencies_ns)
        index = min(len(ordered) - 1, int(fraction * len(ordered)))
        return ordered[index] / 1e6


@dataclass
class Report:
    options: Options
    targets: list[Target]
    results: list[Result]
    started: datetime
    machine: dict[str, str]

    def runs(self, target: str, scenario: str) -> list[Result]:
        return [r for r in self.results if r.target == target and r.scenario == scenario]

    def result(self, target: str, scenario: str) -> Result | None:
        """The run to show: the median of the successful runs (with --repeat) by rate, by
        memory for the memory scenarios, and by broker CPU per message for the fixed-rate
        scenarios, whose rates are all the same."""
        runs = self.runs(target, scenario)
        known = SCENARIOS.get(scenario)
        fixed_rate = known is not None and known.latency

        def key(r: Result) -> float:
            if r.memory_per is not None:
                return r.memory_per
            if fixed_rate:
                cpu = r.broker_us_per_msg
                return float("inf") if cpu is None else cpu
            return r.rate

        good = sorted((r for r in runs if r.error is None), key=key)
        if good:
            return good[(len(good) - 1) // 2]
        return runs[0] if runs else None
