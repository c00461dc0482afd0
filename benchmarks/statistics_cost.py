"""What the management statistics cost the hot path, counted in instructions.

The broker keeps RabbitMQ's message statistics as plain integer counters on the objects
the message path already holds (connections' bytes and socket reads and writes,
channels, exchanges, queues; see
:mod:`kiltmq.broker.monitor`); the management plane's sampler reads them every few
seconds, off the message path. Timing a broker with and without them cannot resolve a
few per cent on a shared machine (runs of the same code spread by tens of per cent), so
this benchmark counts instead: it copies ``src/`` into a temporary directory, deletes the
counting statements listed in :data:`COUNTERS` from the copy (each must be found, so the
list cannot silently fall behind the code), and runs :mod:`benchmarks.hot_path` on both
trees under valgrind's callgrind, which counts the instructions the broker's thread
executes. Instruction counts repeat to well under 1 % between runs.

Each case runs twice, with two message counts, and the difference between the two runs
divided by the difference in messages is the cost per message, so start-up and
warm-up cancel out. The count is exact for one run, but runs differ by some hundreds of
instructions per message, since how the producer's, the broker's and the consumer's
reads and writes interleave (how many messages one read carries, how often the loop
wakes up for nothing) varies from run to run; so each case is measured ``--repeat``
times, the two trees interleaved, with a fixed hash seed. What is reported per shape
and mode: the median instructions per message with the statistics kept and with them
removed (every run's figure in brackets), and the ratio of the medians.

Run: ``python -m benchmarks.statistics_cost [--shapes bare,celery] [--modes paced,e2e]
[--repeat 3]``
(needs ``valgrind``; Debian package ``valgrind``). Under ``python -m benchmarks`` the
options come from ``KILTMQ_STATISTICS_COST_ARGS``; without valgrind it says so and
skips.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The statements that keep the statistics on the message path, per file (relative to
#: ``src/kiltmq/broker``): each pattern is a whole statement, matched against a line's
#: stripped text, and is replaced by ``pass`` in the copy. The prefetch counts
#: (``consumer.unacked``, ``consumer_unacked``), which delivery itself needs, are not
#: statistics and stay.
COUNTERS: dict[str, tuple[str, ...]] = {
    "server.py": (
        r"self\._received \+= len\(data\) \+ _ONE_IO",
        r"self\._sent \+= sent \+ _ONE_IO",
    ),
    "channel/publishing.py": (
        r"self\.published \+= 1",
        r"exchange\.publish_in \+= 1",
        r"exchange\.unrouted \+= 1",
    ),
    "channel/consuming.py": (
        r"self\.redelivered \+= 1",
        r"consumer\.queue\.redelivered \+= 1",
        r"queue\.no_ack_delivered \+= 1",
        r"self\.no_ack_delivered \+= 1",
    ),
    "channel/settlement.py": (r"self\.acked \+= 1",),
    "queue/queue.py": (
        r"self\.delivered \+= 1",
        r"self\.delivered \+= delivered",
        r"self\.acked \+= 1",
    ),
}

#: Messages per counted run (paced, batched): the runs of a case differ only in these.
COUNTS = {"paced": (500, 2000), "e2e": (4000, 16000)}
#: hot_path's warm-up run before the counted one: ``min(count, WARM_UP)`` messages.
WARM_UP = 2000


def strip_counters(src: Path) -> int:
    """Delete :data:`COUNTERS` from the tree at ``src``; the number of lines replaced."""
    replaced = 0
    for name, patterns in COUNTERS.items():
        path = src / "kiltmq" / "broker" / name
        lines = path.read_text().splitlines(keepends=True)
        for pattern in patterns:
            rx = re.compile(pattern + r"$")
            hits = [i for i, line in enumerate(lines) if rx.fullmatch(line.strip())]
            if not hits:
                raise SystemExit(f"statistics_cost: {pattern!r} not found in {name}")
            for i in hits:
                indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
                lines[i] = f"{indent}pass\n"
                replaced += 1
        path.write_text("".join(lines))
    return replaced


def broker_instructions(src: Path, shape: str, mode: str, count: int, out: Path) -> int:
    """Instructions of the broker's thread in one hot_path run of ``count`` messages."""
    for old in out.parent.glob(out.name + "*"):
        old.unlink()
    env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{ROOT}", PYTHONHASHSEED="0")
    subprocess.run(
        ["valgrind", "--tool=callgrind", "--separate-threads=yes",
         f"--callgrind-out-file={out}", sys.executable, "-m", "benchmarks.hot_path",
         "--shapes", shape, "--modes", mode, "--repeat", "1", "--count", str(count),
         "--uvloop"],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    # thread 1 is the load generator (the main thread), thread 2 the broker's loop, the
    # first thread the benchmark starts
    return _total(out.parent / f"{out.name}-02")


def _total(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise SystemExit(f"statistics_cost: no totals in {path}")


def per_message(src: Path, shape: str, mode: str, work: Path) -> float:
    small, large = COUNTS[mode]
    first = broker_instructions(src, shape, mode, small, work / "cg.out")
    second = broker_instructions(src, shape, mode, large, work / "cg.out")
    messages = (large + min(large, WARM_UP)) - (small + min(small, WARM_UP))
    return (second - first) / messages


def _runs(figures: list[float]) -> str:
    return ", ".join(f"{f:,.0f}" for f in figures)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = shlex.split(os.environ.get("KILTMQ_STATISTICS_COST_ARGS", ""))
    parser = argparse.ArgumentParser(prog="python -m benchmarks.statistics_cost")
    parser.add_argument("--shapes", default="bare,celery")
    parser.add_argument("--modes", default="paced,e2e")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per case")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("statistics_cost: valgrind is not installed; skipped")
        return 0
    for mode in args.modes.split(","):
        if mode not in COUNTS:
            parser.error(f"unknown mode {mode!r}; known: {', '.join(COUNTS)}")
    with tempfile.TemporaryDirectory(prefix="kiltmq-statistics-cost-") as tmp:
        work = Path(tmp)
        kept = ROOT / "src"
        removed = work / "src"
        shutil.copytree(kept, removed, ignore=shutil.ignore_patterns("__pycache__"))
        lines = strip_counters(removed)
        print(f"statistics removed from the copy: {lines} statements", flush=True)
        print("| shape | mode | instructions/msg, statistics kept | removed | kept/removed |")
        print("|---|---|---:|---:|---:|", flush=True)
        for shape in args.shapes.split(","):
            for mode in args.modes.split(","):
                with_stats: list[float] = []
                without: list[float] = []
                for _ in range(args.repeat):
                    with_stats.append(per_message(kept, shape, mode, work))
                    without.append(per_message(removed, shape, mode, work))
                a, b = statistics.median(with_stats), statistics.median(without)
                print(
                    f"| {shape} | {mode} | {a:,.0f} ({_runs(with_stats)}) | "
                    f"{b:,.0f} ({_runs(without)}) | {a / b:.3f}x |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
