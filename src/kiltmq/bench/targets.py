"""The brokers under test: a kiltmq broker process started for the run, or running ones;
and the fresh brokers of the memory runs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from kiltmq.bench import procstat
from kiltmq.bench.loadclient import connect
from kiltmq.bench.options import Options
from kiltmq.bench.rabbitmq_node import rabbitmq_node, unavailable
from kiltmq.bench.url import parse_url

__all__ = ["Target", "kiltmq_process", "open_targets", "rabbitmq_process"]


@dataclass
class Target:
    """A broker under test."""

    name: str
    url: str
    pid: int | None = None
    version: str = ""
    loop: str = ""  # the event loop of a kiltmq broker started for the run
    error: str | None = None
    #: Starts a fresh broker like this one for each memory run (None: they use this one).
    fresh: Callable[[], contextlib.AbstractContextManager[Target]] | None = None
    #: Which broker the memory runs measure, for the report.
    memory_note: str = ""


@contextlib.contextmanager
def kiltmq_process(
    args: Sequence[str] = (), *, name: str = "kiltmq", show_stderr: bool = False
) -> Iterator[Target]:
    """Start ``python -m kiltmq.bench._broker_proc --port 0 ARGS`` and yield it as a
    target (its ``error`` says why if it did not start); terminate it afterwards. Its
    standard error is shown if ``show_stderr``, else kept with its output."""
    cmd = [sys.executable, "-m", "kiltmq.bench._broker_proc", "--port", "0", *args]
    # Output goes to a file: a pipe nobody reads would block a chatty broker.
    with tempfile.TemporaryFile(mode="w+") as log:
        stderr = None if show_stderr else subprocess.STDOUT
        proc = subprocess.Popen(cmd, stdout=log, stderr=stderr, text=True)
        target = Target(name, "", proc.pid)
        try:
            deadline = time.monotonic() + 15
            while not target.url:
                log.seek(0)
                lines = log.read().splitlines()
                urls = [line.strip() for line in lines if line.startswith("amqp://")]
                if urls:
                    target.url = urls[0]
                    loops = [line[12:].strip() for line in lines if line.startswith("event loop:")]
                    target.loop = loops[0] if loops else ""
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
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@contextlib.contextmanager
def rabbitmq_process(*, management: bool = False, name: str = "RabbitMQ") -> Iterator[Target]:
    """A fresh RabbitMQ node (:func:`~kiltmq.bench.rabbitmq_node.rabbitmq_node`) as a target."""
    with rabbitmq_node(management=management) as node:
        yield Target(name, node.url, node.pid, error=node.error)


def _rabbitmq_memory(target: Target, options: Options) -> None:
    """Memory runs on a fresh node when ``options`` allow it and one can be started here."""
    if not options.rabbitmq_fresh:
        reason: str | None = "--no-rabbitmq-fresh"
    elif not _local(target.url):
        reason = "it is not on this machine"
    else:
        reason = unavailable()
    if reason is None:
        target.fresh = functools.partial(
            rabbitmq_process, management=options.management, name=target.name
        )
        target.memory_note = "a fresh node per memory run"
    else:
        target.memory_note = (
            f"the running node ({reason}): its memory also rises or falls with earlier work"
        )


def _local(url: str) -> bool:
    return parse_url(url).host in ("127.0.0.1", "localhost", "::1")


@contextlib.contextmanager
def open_targets(options: Options) -> Iterator[list[Target]]:
    """The brokers ``options`` select, each with its version (or why it cannot be
    reached); a kiltmq broker started for them is stopped afterwards."""
    with contextlib.ExitStack() as stack:
        targets: list[Target] = []
        if options.kiltmq:
            if options.kiltmq_url:
                pid = options.kiltmq_pid
                if pid is None and _local(options.kiltmq_url):
                    pid = procstat.find_listener_pid(parse_url(options.kiltmq_url).port)
                target = Target("kiltmq", options.kiltmq_url, pid)
                target.memory_note = "the running broker (--kiltmq-url)"
                targets.append(target)
            else:
                # A data directory of its own, for the durable scenarios' messages.
                data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="kiltmq-bench-"))
                args = ["--data-dir", data_dir]
                if options.uvloop is not None:
                    args.append("--uvloop" if options.uvloop else "--no-uvloop")
                if options.management:
                    args.append("--management")
                target = stack.enter_context(kiltmq_process(args))
                # The first broker holds the data directory's lock; memory runs store nothing.
                fresh_args = [a for a in args if a not in ("--data-dir", data_dir)]
                target.fresh = functools.partial(kiltmq_process, fresh_args, name=target.name)
                target.memory_note = "a fresh broker process per memory run"
                targets.append(target)
        if options.rabbitmq:
            pid = options.rabbitmq_pid
            if pid is None and _local(options.rabbitmq_url):
                pid = procstat.find_rabbitmq_pid(parse_url(options.rabbitmq_url).port)
            target = Target("RabbitMQ", options.rabbitmq_url, pid)
            _rabbitmq_memory(target, options)
            targets.append(target)
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
