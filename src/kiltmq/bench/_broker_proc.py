"""Run an embedded kiltmq broker in this process, for the benchmarks.

Prints the broker's URL on one line of standard output once it listens, then serves until
SIGTERM or SIGINT. With ``--data-dir`` the broker keeps persistent messages in an
``SQLiteStore`` there (what ``kiltmq broker --data-dir`` runs) and prints the store's
counts on standard error when it stops; with ``--management`` it also serves the
management API and Prometheus metrics (on free ports). It runs on uvloop when that is
installed (:mod:`kiltmq.event_loop`) and says which loop before the URL. Usage:
``python -m kiltmq.bench._broker_proc [--port N] [--data-dir DIR [--on-loop]]
[--management] [--uvloop | --no-uvloop]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
from typing import Any

from kiltmq import event_loop


async def _serve(port: int, data_dir: str | None, on_loop: bool, management: bool) -> None:
    # Imported by name so that this module does not depend on the broker's typing.
    broker_module: Any = importlib.import_module("kiltmq.broker")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    store = None if data_dir is None else broker_module.SQLiteStore(data_dir, threaded=not on_loop)
    services = {"management_port": 0, "prometheus_port": 0} if management else {}
    async with broker_module.Broker(port=port, store=store, **services) as broker:
        importlib.import_module("kiltmq.broker.heap").freeze_start_up()
        print(f"event loop: {event_loop.loop_name(loop)}", flush=True)
        print(broker.url, flush=True)
        await stop.wait()
    if store is not None:
        print(
            f"store: {store.commits} commits, {store.rows_written} message rows written, "
            f"{store.rows_skipped} never written (acked before their batch)",
            file=sys.stderr,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", help="keep persistent messages in an SQLiteStore here")
    parser.add_argument(
        "--on-loop", action="store_true", help="the store commits on the event loop"
    )
    parser.add_argument(
        "--management", action="store_true", help="serve the management API and Prometheus"
    )
    loop = parser.add_mutually_exclusive_group()
    loop.add_argument("--uvloop", action="store_true", default=None, help="run on uvloop")
    loop.add_argument(
        "--no-uvloop", action="store_false", dest="uvloop", help="run on asyncio's loop"
    )
    args = parser.parse_args()
    event_loop.run(
        _serve(args.port, args.data_dir, args.on_loop, args.management), uvloop=args.uvloop
    )


if __name__ == "__main__":
    main()
