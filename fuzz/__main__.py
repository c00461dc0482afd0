"""``python -m fuzz``: run the fuzzer, or replay one saved input."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from fuzz.runner import Run, default_frames, replay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument(
        "--frames",
        type=int,
        default=default_frames(),
        help="frames to send (default $FUZZ_FRAMES or 1000000)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="connections at a time (default 8)"
    )
    parser.add_argument(
        "--check-every",
        type=int,
        default=50000,
        help="frames between checks of the broker (default 50000)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("fuzz-findings"),
        help="directory for the broker log and saved inputs (default fuzz-findings)",
    )
    parser.add_argument(
        "--before-login",
        type=float,
        default=0.2,
        help="share of streams mutated from start-ok on (default 0.2)",
    )
    parser.add_argument("--replay", type=Path, help="send this saved input and show the log")
    args = parser.parse_args(argv)
    if args.replay is not None:
        lines, problem = asyncio.run(replay(args.replay, args.out))
        print("\n".join(lines))
        print("round trip afterwards:", problem or "ok")
        return 1 if problem or any(" ERROR " in line for line in lines) else 0
    run = Run(
        args.frames,
        seed=args.seed,
        concurrency=args.concurrency,
        check_every=args.check_every,
        out=args.out,
        before_login=args.before_login,
    )
    stats = asyncio.run(run.run())
    print(
        f"{stats.frames} frames on {stats.connections} connections "
        f"({stats.before_login} mutated before login) in {stats.seconds:.1f} s "
        f"({stats.frames / max(stats.seconds, 1e-9):.0f} frames/s), {stats.checks} checks, "
        f"broker peak RSS {stats.broker_rss_kib // 1024} MiB, "
        f"{len(stats.findings)} findings"
    )
    for finding in stats.findings:
        print(f"- {finding.what}: {finding.detail}")
        for path in finding.saved[:5]:
            print(f"    {path}")
    return 1 if stats.findings else 0


if __name__ == "__main__":
    sys.exit(main())
