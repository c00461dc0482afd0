"""Entry point of the ``kiltmq`` command.

Subcommands live in their own modules under :mod:`kiltmq.cli`. To add one, write a
module with two functions and list it in :data:`SUBCOMMANDS`::

    def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
        parser = subparsers.add_parser("broker", help="run a broker")
        parser.add_argument("--port", type=int, default=5672)
        return parser

    def run(args: argparse.Namespace) -> int:
        ...
        return 0

Modules are imported when the parser is built, in the order listed; a command line that
names its subcommand first imports that subcommand's module only.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, TypeAlias, cast

from kiltmq.version import __version__

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: Subcommand name -> module implementing :class:`Subcommand`.
SUBCOMMANDS: dict[str, str] = {
    "broker": "kiltmq.cli.broker",
    "bench": "kiltmq.cli.bench",
    "demo": "kiltmq.cli.demo",
    "publish": "kiltmq.cli.publish",
    "consume": "kiltmq.cli.consume",
    "ctl": "kiltmq.cli.ctl",
    "spec": "kiltmq.cli.spec",
}


class Subcommand(Protocol):
    """What a subcommand module provides."""

    def add_parser(self, subparsers: SubParsers) -> argparse.ArgumentParser:
        """Add this subcommand's parser to ``subparsers`` and return it."""
        ...

    def run(self, args: argparse.Namespace) -> int:
        """Run the subcommand; return the process exit code."""
        ...


def load_subcommands() -> dict[str, Subcommand]:
    """Import every module listed in :data:`SUBCOMMANDS`."""
    return {
        name: cast(Subcommand, importlib.import_module(module))
        for name, module in SUBCOMMANDS.items()
    }


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand, or with the subcommand
    ``only`` alone (so that only its module is imported)."""
    parser = argparse.ArgumentParser(
        prog="kiltmq",
        description="kiltmq: an AMQP 0-9-1 broker, client and tools.",
    )
    parser.add_argument("--version", action="version", version=f"kiltmq {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    if only is None:
        commands = list(load_subcommands().values())
    else:
        commands = [cast(Subcommand, importlib.import_module(SUBCOMMANDS[only]))]
    for command in commands:
        sub = command.add_parser(subparsers)
        sub.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the process arguments) and run the chosen subcommand.

    With no subcommand, print help.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv and argv[0] in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 0
    return int(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
