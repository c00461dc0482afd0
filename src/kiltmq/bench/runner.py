"""Run the broker scenarios against kiltmq and RabbitMQ and collect the figures.

For each scenario and each broker the orchestrator (this process):

1. declares the scenario's queues (and fanout exchange) on a control connection;
2. starts the consumer process and waits until every consumer is registered, then the
   producer process, which connects and waits for the go flag;
3. lets it run for a warm-up, then measures for ``seconds``: messages counted by the
   consumers (for the publish-only scenario: growth of the queue's message count, read
   with a passive queue.declare), the broker's CPU time and the generator processes'
   CPU time from /proc/<pid>/stat;
4. stops the producer, waits until every published message has been delivered (or
   sits in the queue, for publish-only) and checks the counts agree;
5. deletes the queues and the exchange.

Flat-out producers keep at most ``max_in_flight`` messages published but not yet
consumed, so what is measured is the rate the broker sustains end to end rather than a
queue filling up; the publish-only scenario has no such bound (TCP back-pressure only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from typing import Any, cast

from kiltmq.bench import procstat
from kiltmq.bench.loadclient import LoadClient, connect
from kiltmq.bench.scenarios import (
    SCENARIOS,
    Plan,
    Scenario,
    Shared,
    Slot,
    consumer_main,
    producer_main,
)
from kiltmq.bench.url import parse_url
from kiltmq.protocol import spec

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

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass
class Options:
    seconds: float = 5.0
    warmup: float = 1.0
    only: tuple[str, ...] = tuple(SCENARIOS)
    kiltmq: bool = True
    kiltmq_url: str | None = None  # None: start a kiltmq broker process
    kiltmq_pid: int | None = None
    rabbitmq: bool = True
    rabbitmq_url: str = DEFAULT_RABBITMQ_URL
    rabbitmq_pid: int | None = None
    max_in_flight: int = 10000
    repeat: int = 1  # runs per scenario and broker; the tables show the median
    drain_timeout: float = 30.0
    uvloop: bool = False
    verbose: bool = False


@dataclass
class Target:
    """A broker under test."""

    name: str
    url: str
    pid: int | None = None
    version: str = ""
    error: str | None = None


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
        return self.error is None and self.published > 0 and self.accounted == self.expected

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
        """The run to show: the median by rate of the successful runs (with --repeat)."""
        runs = self.runs(target, scenario)
        good = sorted((r for r in runs if r.error is None), key=lambda r: r.rate)
        if good:
            return good[(len(good) - 1) // 2]
        return runs[0] if runs else None


# -- brokers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _kiltmq_process(options: Options) -> Iterator[Target]:
    """Start ``python -m kiltmq.bench._broker_proc`` and yield it as a target."""
    cmd = [sys.executable, "-m", "kiltmq.bench._broker_proc", "--port", "0"]
    if options.uvloop:
        cmd.append("--uvloop")
    # Output goes to a file: a pipe nobody reads would block a chatty broker.
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        target = Target("kiltmq", "", proc.pid)
        try:
            deadline = time.monotonic() + 15
            while not target.url:
                log.seek(0)
                lines = log.read().splitlines()
                urls = [line.strip() for line in lines if line.startswith("amqp://")]
                if urls:
                    target.url = urls[0]
                elif proc.poll() is not None or time.monotonic() > deadline:
                    last = lines[-1:] or ["no URL printed within 15 s"]
                    target.error = f"kiltmq broker did not start: {last[0]}"
                    break
                else:
                    time.sleep(0.02)
            yield target
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _local(url: str) -> bool:
    return parse_url(url).host in ("127.0.0.1", "localhost", "::1")


@contextlib.contextmanager
def _targets(options: Options) -> Iterator[list[Target]]:
    with contextlib.ExitStack() as stack:
        targets: list[Target] = []
        if options.kiltmq:
            if options.kiltmq_url:
                pid = options.kiltmq_pid
                if pid is None and _local(options.kiltmq_url):
                    pid = procstat.find_listener_pid(parse_url(options.kiltmq_url).port)
                targets.append(Target("kiltmq", options.kiltmq_url, pid))
            else:
                targets.append(stack.enter_context(_kiltmq_process(options)))
        if options.rabbitmq:
            pid = options.rabbitmq_pid
            if pid is None and _local(options.rabbitmq_url):
                pid = procstat.find_rabbitmq_pid(parse_url(options.rabbitmq_url).port)
            targets.append(Target("RabbitMQ", options.rabbitmq_url, pid))
        for target in targets:
            if target.error is None:
                try:
                    target.version = asyncio.run(_server_version(target.url))
                except Exception as exc:
                    target.error = f"cannot connect to {target.url}: {exc or type(exc).__name__}"
        yield targets


async def _server_version(url: str) -> str:
    client = await connect(url, timeout=5)
    try:
        return client.server_version()
    finally:
        await client.close()


# -- one scenario against one broker -------------------------------------------------------------


@dataclass
class _Snapshot:
    at: float
    broker_cpu: float | None
    machine_busy: float
    generator_cpu: dict[int, float]
    consumed: int
    published: int


class _Run:
    def __init__(self, target: Target, scenario: Scenario, options: Options) -> None:
        self.target = target
        self.scenario = scenario
        self.options = options
        tag = f"{os.getpid()}.{int(time.time() * 1000) % 100000}"
        self.exchange = f"kiltmq.bench.{scenario.key}.{tag}" if scenario.fanout else ""
        self.queues = tuple(
            f"kiltmq.bench.{scenario.key}.{tag}.{i}" for i in range(scenario.queues)
        )
        self.result = Result(target.name, scenario.key)
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["kiltmq.bench.scenarios"])
        self.ctx = ctx
        self.shared = cast(Shared, ctx.RawArray("q", Slot.size()))
        self.processes: list[tuple[BaseProcess, Any]] = []
        self.reports: dict[str, dict[str, Any]] = {}

    def _plan(self) -> Plan:
        return Plan(
            url=self.target.url,
            scenario=self.scenario,
            exchange=self.exchange,
            routing_key="" if self.scenario.fanout else self.queues[0],
            queues=self.queues,
            max_in_flight=self.options.max_in_flight,
        )

    def _start(self, name: str, target: Any) -> BaseProcess:
        receiver, sender = self.ctx.Pipe(duplex=False)
        process = self.ctx.Process(
            target=target, name=name, args=(self._plan(), self.shared, sender)
        )
        process.daemon = True
        process.start()
        sender.close()
        self.processes.append((process, receiver))
        return process

    def _consumed(self) -> int:
        return sum(self.shared[Slot.CONSUMED + i] for i in range(len(self.queues)))

    async def _depth(self, ctl: LoadClient) -> int:
        total = 0
        for queue in self.queues:
            ok = await ctl.request(
                1, spec.QueueDeclare(queue=queue, passive=True), spec.QueueDeclareOk
            )
            total += ok.message_count
        return total

    async def _snapshot(self, ctl: LoadClient) -> _Snapshot:
        consumed = self._consumed() if self.scenario.consumers else await self._depth(ctl)
        return _Snapshot(
            at=time.monotonic(),
            broker_cpu=procstat.cpu_seconds_or_none(self.target.pid),
            machine_busy=procstat.machine_busy_seconds(),
            generator_cpu={
                p.pid: procstat.cpu_seconds_or_none(p.pid) or 0.0
                for p, _ in self.processes
                if p.pid is not None
            },
            consumed=consumed,
            published=self.shared[Slot.PUBLISHED],
        )

    async def _wait(self, what: str, condition: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for process, receiver in self.processes:
                if not process.is_alive():
                    report = self._report(process, receiver)
                    if report.get("error"):
                        raise RuntimeError(report["error"])
                    if process.name != "producer" or not self.shared[Slot.STOP_PRODUCER]:
                        raise RuntimeError(f"the {process.name} exited while {what}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s {what}")
            await asyncio.sleep(0.005)

    async def run(self) -> Result:
        result = self.result
        scenario = self.scenario
        shared = self.shared
        ctl = await connect(self.target.url)
        try:
            await ctl.open_channel(1)
            await self._declare(ctl)
            try:
                await self._measure(ctl)
            finally:
                shared[Slot.STOP_PRODUCER] = 1
                shared[Slot.STOP_CONSUMERS] = 1
                self._collect()
                if ctl.error is None:
                    await self._delete(ctl)
        except BaseException as exc:
            result.error = result.error or f"{type(exc).__name__}: {exc}"
            if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
                raise
        finally:
            await ctl.close()
            if ctl.error is not None and result.error is None:
                result.error = f"control connection: {ctl.error}"
        if scenario.latency:
            result.latencies_ns.sort()
        return result

    async def _declare(self, ctl: LoadClient) -> None:
        if self.exchange:
            await ctl.request(
                1,
                spec.ExchangeDeclare(exchange=self.exchange, type="fanout"),
                spec.ExchangeDeclareOk,
            )
        for queue in self.queues:
            await ctl.request(1, spec.QueueDeclare(queue=queue), spec.QueueDeclareOk)
            if self.exchange:
                await ctl.request(
                    1, spec.QueueBind(queue=queue, exchange=self.exchange), spec.QueueBindOk
                )

    async def _delete(self, ctl: LoadClient) -> None:
        for queue in self.queues:
            await ctl.request(1, spec.QueueDelete(queue=queue), spec.QueueDeleteOk)
        if self.exchange:
            await ctl.request(1, spec.ExchangeDelete(exchange=self.exchange), spec.ExchangeDeleteOk)

    async def _measure(self, ctl: LoadClient) -> None:
        scenario, shared, result, options = self.scenario, self.shared, self.result, self.options
        n = len(self.queues)
        if scenario.consumers:
            self._start("consumer", consumer_main)
            await self._wait(
                "waiting for consumers",
                lambda: all(shared[Slot.CONSUMER_READY + i] for i in range(n)),
                30,
            )
        self._start("producer", producer_main)
        await self._wait("waiting for the producer", lambda: shared[Slot.PRODUCER_READY], 30)
        shared[Slot.GO] = 1
        await asyncio.sleep(options.warmup)
        shared[Slot.MEASURING] = 1
        first = await self._snapshot(ctl)
        await asyncio.sleep(options.seconds)
        last = await self._snapshot(ctl)
        shared[Slot.MEASURING] = 0
        shared[Slot.STOP_PRODUCER] = 1
        result.window = last.at - first.at
        result.messages = last.consumed - first.consumed
        result.published_in_window = last.published - first.published
        if first.broker_cpu is not None and last.broker_cpu is not None:
            result.broker_cpu = last.broker_cpu - first.broker_cpu
        result.machine_busy = last.machine_busy - first.machine_busy
        spent = {
            process.name: last.generator_cpu.get(process.pid or 0, 0.0)
            - first.generator_cpu.get(process.pid or 0, 0.0)
            for process, _ in self.processes
        }
        result.generator_parts = spent
        result.generator_cpu = sum(spent.values())
        result.generator_busiest = max(spent.values(), default=0.0) / result.window
        # Everything published must arrive: n deliveries each, or sit in the queue.
        producer = self.processes[-1][0]
        await self._wait("waiting for the producer to finish", lambda: not producer.is_alive(), 30)
        result.published = shared[Slot.PUBLISHED]
        result.expected = result.published * (n if scenario.consumers else 1)
        if scenario.consumers:
            with contextlib.suppress(TimeoutError):
                await self._wait(
                    "draining",
                    lambda: self._consumed() >= result.expected,
                    options.drain_timeout,
                )
            await asyncio.sleep(0.05)  # any duplicate deliveries would show up now
            result.accounted = self._consumed()
        else:
            deadline = time.monotonic() + options.drain_timeout
            result.accounted = await self._depth(ctl)
            while result.accounted < result.expected and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                result.accounted = await self._depth(ctl)

    def _report(self, process: BaseProcess, receiver: Any, timeout: float = 0) -> dict[str, Any]:
        """A worker's final report (cached: it can be received only once)."""
        name = process.name
        if name not in self.reports and receiver.poll(timeout):
            with contextlib.suppress(EOFError):
                self.reports[name] = receiver.recv()
        return self.reports.get(name, {})

    def _collect(self) -> None:
        for process, receiver in self.processes:
            report = self._report(process, receiver, 15)
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
            if report.get("error") and self.result.error is None:
                self.result.error = report["error"]
            self.result.latencies_ns.extend(report.get("latencies", ()))


def run_scenario(target: Target, scenario: Scenario, options: Options) -> Result:
    """Run one scenario against one broker."""
    return asyncio.run(_Run(target, scenario, options).run())


# -- the whole suite -----------------------------------------------------------------------------


def _machine(targets: list[Target]) -> dict[str, str]:
    info = {
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    for target in targets:
        if target.version:
            info[target.name] = target.version
    return info


def run(options: Options, log: Any = None) -> Report:
    """Run the selected scenarios against the selected brokers, interleaved."""
    started = datetime.now(UTC)
    results: list[Result] = []
    with _targets(options) as targets:
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
                    result = run_scenario(target, scenario, options)
                    results.append(result)
                    if log is not None and result.error:
                        print(f"      error: {result.error}", file=log, flush=True)
                    time.sleep(0.2)
    return Report(options, targets, results, started, machine)


# -- command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by ``kiltmq bench`` and ``python -m benchmarks``)."""
    parser.add_argument(
        "--seconds", type=float, default=None, help="measured seconds per scenario (default 5)"
    )
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds before measuring (default 1)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 s per scenario, 0.3 s warm-up"
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help="scenarios to run, comma-separated: "
        + "; ".join(f"{s.key}: {s.title}" for s in SCENARIOS.values()),
    )
    parser.add_argument(
        "--rabbitmq-url", default=DEFAULT_RABBITMQ_URL, help="RabbitMQ to compare against"
    )
    parser.add_argument("--rabbitmq-pid", type=int, help="RabbitMQ's process (default: found)")
    parser.add_argument("--no-rabbitmq", action="store_true", help="benchmark kiltmq only")
    parser.add_argument(
        "--kiltmq-url", help="an already-running kiltmq broker (default: start one)"
    )
    parser.add_argument(
        "--kiltmq-pid", type=int, help="its process, for CPU time (default: found by port)"
    )
    parser.add_argument("--no-kiltmq", action="store_true", help="benchmark RabbitMQ only")
    parser.add_argument(
        "--uvloop", action="store_true", help="run the started kiltmq broker on uvloop"
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=10000,
        help="published but not yet consumed messages allowed (default 10000)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per scenario and broker, interleaved; the summary shows the median",
    )
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")


def options_from_args(args: argparse.Namespace) -> Options:
    only = tuple(k.strip() for k in args.only.split(",") if k.strip())
    unknown = [k for k in only if k not in SCENARIOS]
    if unknown:
        raise ValueError(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 5.0)
    warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
    return Options(
        seconds=seconds,
        warmup=warmup,
        only=only,
        kiltmq=not args.no_kiltmq,
        kiltmq_url=args.kiltmq_url,
        kiltmq_pid=args.kiltmq_pid,
        rabbitmq=not args.no_rabbitmq,
        rabbitmq_url=args.rabbitmq_url,
        rabbitmq_pid=args.rabbitmq_pid,
        max_in_flight=args.max_in_flight,
        repeat=max(1, args.repeat),
        uvloop=args.uvloop,
    )


def main(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; print the report; exit status."""
    from kiltmq.bench import report as report_mod

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
    print(report_mod.render(rep, markdown=args.markdown))
    # An unreachable RabbitMQ only leaves its column empty (with a warning); kiltmq failing
    # to start, or any scenario failing, is an error.
    failed = any(t.error and t.name == "kiltmq" for t in rep.targets) or any(
        r.error or not r.accounted_ok for r in rep.results
    )
    return 1 if failed or not rep.results else 0
