"""Run an embedded kiltmq broker in this process, for the benchmarks.

Prints the broker's URL on one line of standard output once it listens, then serves until
SIGTERM or SIGINT. Usage: ``python -m kiltmq.bench._broker_proc [--port N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
from typing import Any


async def _serve(port: int) -> None:
    # Imported by name so that this module does not depend on the broker's typing.
    broker_cls: Any = importlib.import_module("kiltmq.broker").Broker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with broker_cls(port=port) as broker:
        print(broker.url, flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
