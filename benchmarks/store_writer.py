"""The store's writer alone: CPU per message row inserted and then deleted.

Rounds of ``batch`` persistent 100-byte messages are reported to an ``SQLiteStore``
committing on the event loop (``threaded=False``, so one thread does everything), then
committed, removed and committed again. It prints the process CPU time per row; under
callgrind, the difference between a run of many rounds and a run of one, over the rows
between them, is the instructions per row (building the messages included).

Run: ``PYTHONPATH=src python -m benchmarks.store_writer [--batch 300] [--rounds 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence

from kiltmq.broker.message import Message
from kiltmq.broker.store import SQLiteStore
from kiltmq.protocol.spec import BasicProperties

QUEUE = {"name": "q", "durable": True, "auto_delete": False, "arguments": {}}


async def _committed(store: SQLiteStore) -> None:
    done = asyncio.Event()
    store.after_commit(done.set)
    await done.wait()


async def run(batch: int, rounds: int) -> float:
    """CPU seconds per row for ``rounds`` rounds of ``batch`` rows."""
    with tempfile.TemporaryDirectory(prefix="kiltmq-store-writer-") as data_dir:
        store = SQLiteStore(data_dir, threaded=False)
        store.open()
        try:
            store.definition_added("/", "queue", QUEUE)
            await _committed(store)
            props = BasicProperties(delivery_mode=2)
            body = bytes(100)
            start = time.process_time()
            for _ in range(rounds):
                messages = [Message.build("", "q", body, props) for _ in range(batch)]
                for message in messages:
                    store.message_enqueued("/", "q", message)
                await _committed(store)
                for message in messages:
                    store.message_removed("/", "q", message)
                await _committed(store)
            return (time.process_time() - start) / (batch * rounds)
        finally:
            store.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Under ``python -m benchmarks`` (no ``argv``) the defaults."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.store_writer")
    parser.add_argument("--batch", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args([] if argv is None else argv)
    seconds = asyncio.run(run(args.batch, args.rounds))
    print(f"batch {args.batch}: {seconds * 1e6:.2f} µs CPU per row inserted and deleted")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
