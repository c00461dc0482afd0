"""Discover the benchmark modules in this package and run each one's ``main()``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from collections.abc import Callable, Sequence

import benchmarks


def available() -> list[str]:
    """Names of the benchmark modules in this package (private modules excluded)."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(benchmarks.__path__)
        if not info.name.startswith("_")
    )


def run_one(name: str) -> int:
    """Import ``benchmarks.<name>`` and call its ``main()``; return its exit code."""
    module = importlib.import_module(f"benchmarks.{name}")
    entry: Callable[[], int | None] | None = getattr(module, "main", None)
    if entry is None:
        print(f"benchmarks.{name}: no main(), skipped", file=sys.stderr)
        return 0
    print(f"== {name}", flush=True)
    start = time.perf_counter()
    result = entry()
    print(f"== {name}: done in {time.perf_counter() - start:.1f}s", flush=True)
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name in names:
            print(name)
        return 0
    unknown = [n for n in args.names if n not in names]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}")
    selected: list[str] = args.names or names
    if not selected:
        print("no benchmarks yet")
        return 0
    failed = [name for name in selected if run_one(name) != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
