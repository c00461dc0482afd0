"""One scenario against one broker, measured.

The orchestrator (this process):

1. declares the scenario's queues (and exchange, and bindings) on a control connection
   (:mod:`kiltmq.bench.topology`);
2. starts the consumer process and waits until every consumer is registered, then the
   producer process, which connects and waits for the go flag;
3. lets it run for a warm-up, then measures for ``seconds``: messages counted by the
   consumers, the broker's CPU time and the generator processes' CPU time from
   /proc/<pid>/stat, and the broker's resident memory at the end. Publish-only
   scenarios stop the producer at the end of the window (or once it published
   ``publish_limit_bytes`` of bodies in it), wait until it has finished, and count the
   growth of the queue's message count (read with a passive queue.declare);
4. stops the producer, waits until every published message has been delivered (or
   sits in the queue, for publish-only) and checks the counts agree;
5. deletes the queues and the exchange.

Flat-out producers keep at most ``max_in_flight`` deliveries published but not yet
consumed (``max_in_flight_bytes`` of bodies), so what is measured is the rate the broker
sustains end to end rather than a queue filling up; publish-only scenarios have no such
bound (TCP back-pressure only). Durable scenarios also keep at most 1,000 publishes
unconfirmed. Memory scenarios are measured by :mod:`kiltmq.bench.memory` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any, cast

from kiltmq import event_loop
from kiltmq.bench import procstat
from kiltmq.bench.loadclient import LoadClient, connect
from kiltmq.bench.memory import measure_connections, measure_queue
from kiltmq.bench.options import Options
from kiltmq.bench.results import Result
from kiltmq.bench.scenarios import Scenario
from kiltmq.bench.targets import Target
from kiltmq.bench.topology import Topology
from kiltmq.bench.workers import Plan, Shared, Slot, consumer_main, producer_main

__all__ = ["ScenarioRun", "run_scenario"]


@dataclass
class _Snapshot:
    at: float
    broker_cpu: float | None
    machine_busy: float
    generator_cpu: dict[int, float]
    consumed: int
    published: int


class ScenarioRun:
    """One scenario against one broker, from declaring its queues to deleting them."""

    def __init__(self, target: Target, scenario: Scenario, options: Options) -> None:
        self.target = target
        self.scenario = scenario
        self.options = options
        tag = f"{os.getpid()}.{int(time.time() * 1000) % 100000}"
        name = scenario.key.replace("/", ".")
        self.topology = Topology.named(scenario, f"kiltmq.bench.{name}.{tag}")
        self.queues = self.topology.queues
        self.result = Result(target.name, scenario.key)
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["kiltmq.bench.workers"])
        self.ctx = ctx
        self.shared = cast(Shared, ctx.RawArray("q", Slot.size()))
        self.processes: list[tuple[BaseProcess, Any]] = []
        self.reports: dict[str, dict[str, Any]] = {}

    def _plan(self) -> Plan:
        size = max(1, self.scenario.body_size)
        return Plan(
            url=self.target.url,
            scenario=self.scenario,
            exchange=self.topology.exchange,
            routing_keys=self.topology.routing_keys,
            queues=self.queues,
            max_in_flight=max(
                100, min(self.options.max_in_flight, self.options.max_in_flight_bytes // size)
            ),
            uvloop=self.options.uvloop,
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
        n = self.scenario.consumer_connections
        return sum(self.shared[Slot.CONSUMED + i] for i in range(n))

    async def _depth(self, ctl: LoadClient) -> int:
        return await self.topology.depth(ctl)

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
        options, target = self.options, self.target
        ctl = await connect(target.url)
        try:
            await ctl.open_channel(1)
            if scenario.kind == "memory-connection":
                count = options.memory_connections
                await measure_connections(
                    target.url, target.pid, count, result, options.memory_settle
                )
                return result
            await self.topology.declare(ctl)
            try:
                if scenario.kind == "memory-queue":
                    count = options.memory_messages
                    await measure_queue(
                        ctl,
                        target.url,
                        target.pid,
                        self.topology,
                        count,
                        result,
                        options.memory_settle,
                    )
                else:
                    await self._measure(ctl)
            finally:
                shared[Slot.STOP_PRODUCER] = 1
                shared[Slot.STOP_CONSUMERS] = 1
                self._collect()
                if ctl.error is None:
                    await self.topology.delete(ctl)
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

    async def _measure(self, ctl: LoadClient) -> None:
        scenario, shared, result, options = self.scenario, self.shared, self.result, self.options
        if scenario.consumers:
            self._start("consumer", consumer_main)
            n = scenario.consumer_connections
            await self._wait(
                "waiting for consumers",
                lambda: all(shared[Slot.CONSUMER_READY + i] for i in range(n)),
                60,
            )
        self._start("producer", producer_main)
        await self._wait("waiting for the producer", lambda: shared[Slot.PRODUCER_READY], 30)
        shared[Slot.GO] = 1
        await asyncio.sleep(options.warmup)
        shared[Slot.MEASURING] = 1
        first = await self._snapshot(ctl)
        if scenario.consumers:
            await asyncio.sleep(options.seconds)
            last = await self._snapshot(ctl)
            shared[Slot.MEASURING] = 0
            shared[Slot.STOP_PRODUCER] = 1
        else:
            # Publish only: until the window ends or enough is queued, then count what
            # the broker has queued once the producer's channel.close-ok came back.
            limit = first.published + max(1, options.publish_limit_bytes // scenario.body_size)
            end = first.at + options.seconds
            await self._wait(
                "publishing",
                lambda: time.monotonic() >= end or shared[Slot.PUBLISHED] >= limit,
                options.seconds + 30,
            )
            shared[Slot.STOP_PRODUCER] = 1
            await self._wait(
                "waiting for the producer to finish", lambda: shared[Slot.PRODUCER_DONE], 60
            )
            last = await self._snapshot(ctl)
            shared[Slot.MEASURING] = 0
        result.broker_rss = self._rss()
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
        await self._wait(
            "waiting for the producer to finish", lambda: shared[Slot.PRODUCER_DONE], 60
        )
        result.published = shared[Slot.PUBLISHED]
        result.expected = result.published * scenario.copies
        if scenario.durable:
            result.nacked = shared[Slot.NACKED]
            if shared[Slot.CONFIRMED] != result.published:
                raise RuntimeError(
                    f"{shared[Slot.CONFIRMED]:,} of {result.published:,} publishes confirmed"
                )
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

    def _rss(self) -> int | None:
        try:
            return procstat.rss_bytes(self.target.pid) if self.target.pid else None
        except (OSError, RuntimeError):
            return None

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
    return event_loop.run(ScenarioRun(target, scenario, options).run(), uvloop=options.uvloop)
