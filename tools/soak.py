"""kill -9 soak: the standalone broker killed at random moments, over and over.

Each round: the broker process (``python -m kiltmq broker --data-dir DIR``, a real data
directory kept across rounds, small page limit so backlogs are paged out) gets load from
publishers with confirms to a durable fanout exchange bound to several durable queues,
and from one transactional consumer per queue (``tx.select``; acks committed every few
messages); at a random moment it is killed with SIGKILL (sometimes while it is still
recovering from the previous kill), started again, and every queue is read through
without acknowledging (then handed back). Checked after every restart, for every queue:

* every confirmed message is there, unless a committed (or committing, when the kill came)
  transactional ack removed it: nothing confirmed is lost;
* no message whose ack was committed is there or delivered again: committed acks stay;
* a message is in a queue at most once, and only messages that were published;
* every body matches its checksum.

A message delivered again after a kill (its ack was not committed) is allowed, as in
RabbitMQ's at-least-once delivery; it comes with redelivered=true.

``python tools/soak.py [--rounds 100] [--queues 3] [--seed N] [--data-dir DIR]``: prints
one line per round and a summary; exits 1 at the first violation (with the seed, to
replay it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiormq
import aiormq.abc

EXCHANGE = "soak.fanout"
PERSISTENT = aiormq.spec.Basic.Properties(delivery_mode=2)
WINDOW = 500  # unconfirmed publishes per publisher
MAX_BACKLOG = 10_000  # publishers pause above this many messages not yet acked
_HEAD = struct.Struct(">QI")


def make_body(n: int) -> bytes:
    payload = random.Random(n).randbytes(40 + n % 500)
    head = _HEAD.pack(n, len(payload))
    return head + payload + hashlib.blake2b(head + payload, digest_size=16).digest()


def read_body(body: bytes) -> int | None:
    """The message number, or None if the body is damaged."""
    if len(body) < _HEAD.size + 16:
        return None
    n, size = _HEAD.unpack_from(body)
    end = _HEAD.size + size
    if len(body) != end + 16 or hashlib.blake2b(body[:end], digest_size=16).digest() != body[end:]:
        return None
    return int(n)


class Violation(Exception):
    """A promise was broken."""


@dataclass
class Model:
    """What clients were promised, over all rounds."""

    queues: list[str]
    next_id: int = 0
    confirmed: set[int] = field(default_factory=set)
    nacked: int = 0
    #: per queue: messages whose ack was committed (commit-ok received)
    committed: dict[str, set[int]] = field(default_factory=dict)
    #: per queue: acks in a tx.commit whose commit-ok had not come when the broker died
    committing: dict[str, set[int]] = field(default_factory=dict)
    redelivered: int = 0
    max_backlog: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for queue in self.queues:
            self.committed[queue] = set()
            self.committing[queue] = set()

    def backlog(self) -> int:
        return max(self.next_id - len(self.committed[q]) for q in self.queues)


# -- the broker process -------------------------------------------------------------------


class Broker:
    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "kiltmq", "broker", "--port", "0",
            "--data-dir", str(self.data_dir), "--page-messages", "2000",
        ]

    def start(self, timeout: float = 120) -> None:
        proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.proc = proc
        assert proc.stderr is not None
        deadline = time.monotonic() + timeout
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"ready on \S+:(\d+)", line)
            if found:
                self.url = f"amqp://guest:guest@127.0.0.1:{found.group(1)}/"
                threading.Thread(target=self._copy_log, args=(proc,), daemon=True).start()
                return
        proc.kill()
        proc.wait()
        raise Violation(f"the broker did not start: {''.join(lines[-5:]).strip()}")

    def _copy_log(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        with open(self.log, "a", encoding="utf-8") as log:
            for line in proc.stderr:
                log.write(line)

    def kill_while_starting(self, delay: float) -> None:
        proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(delay)
        proc.kill()
        proc.wait(30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None

    def stop(self) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        proc.send_signal(signal.SIGTERM)
        return proc.wait(60)


# -- clients --------------------------------------------------------------------------------


async def _declare(channel: aiormq.abc.AbstractChannel, model: Model) -> None:
    await channel.exchange_declare(EXCHANGE, exchange_type="fanout", durable=True)
    for queue in model.queues:
        await channel.queue_declare(queue, durable=True)
        await channel.queue_bind(queue, EXCHANGE)


async def _publisher(url: str, model: Model) -> None:
    conn = await aiormq.connect(url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        window = asyncio.Semaphore(WINDOW)

        async def publish(n: int) -> None:
            try:
                result = await channel.basic_publish(
                    make_body(n), exchange=EXCHANGE, routing_key="", properties=PERSISTENT
                )
                if isinstance(result, aiormq.spec.Basic.Ack):
                    model.confirmed.add(n)
                else:
                    model.nacked += 1
            except Exception:  # the broker died: not confirmed, nothing promised
                pass
            finally:
                window.release()

        tasks: set[asyncio.Task[None]] = set()
        while True:
            if model.backlog() > MAX_BACKLOG:
                await asyncio.sleep(0.05)
                continue
            await window.acquire()
            n = model.next_id
            model.next_id += 1
            task = asyncio.create_task(publish(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), 2)


async def _consumer(url: str, model: Model, queue: str, delay: float, every: int) -> None:
    await asyncio.sleep(delay)
    conn = await aiormq.connect(url)
    committed, committing = model.committed[queue], model.committing[queue]
    try:
        channel = await conn.channel(publisher_confirms=False)
        await channel.basic_qos(prefetch_count=200)
        await channel.tx_select()
        inbox: asyncio.Queue[aiormq.abc.DeliveredMessage] = asyncio.Queue()

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            inbox.put_nowait(message)

        await channel.basic_consume(queue, on_message, no_ack=False)
        pending: list[int] = []
        while True:
            message = await inbox.get()
            delivery = message.delivery
            assert isinstance(delivery, aiormq.spec.Basic.Deliver)
            n = read_body(message.body)
            if n is None:
                model.errors.append(f"{queue}: damaged body delivered")
                continue
            if n in committed:
                model.errors.append(f"{queue}: message {n} delivered after its ack committed")
            if delivery.redelivered:
                model.redelivered += 1
            assert delivery.delivery_tag is not None
            await channel.basic_ack(delivery.delivery_tag)
            pending.append(n)
            if len(pending) >= every or inbox.empty():
                committing.update(pending)
                await channel.tx_commit()
                committed.update(pending)  # commit-ok: promised from here
                committing.difference_update(pending)
                pending.clear()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), 2)


async def _load(broker: Broker, model: Model, rng: random.Random, seconds: float) -> None:
    conn = await aiormq.connect(broker.url)
    try:
        await _declare(await conn.channel(), model)
    finally:
        await conn.close()
    tasks = [asyncio.create_task(_publisher(broker.url, model)) for _ in range(2)]
    for queue in model.queues:
        delay = rng.uniform(0, seconds * 0.6) if rng.random() < 0.4 else 0.0
        tasks.append(
            asyncio.create_task(_consumer(broker.url, model, queue, delay, rng.randint(1, 50)))
        )
    done, _ = await asyncio.wait(tasks, timeout=seconds)
    broker.kill()
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=10)
    for task in done:  # a client that stopped before the kill is a failure
        if not task.cancelled() and task.exception() is not None:
            model.errors.append(f"client failed before the kill: {task.exception()!r}")


async def _read_queue(url: str, queue: str) -> list[int]:
    """Every message in ``queue``, read without acknowledging (then handed back)."""
    conn = await aiormq.connect(url)
    try:
        channel = await conn.channel()
        ok = await channel.queue_declare(queue, durable=True, passive=True)
        expected = ok.message_count or 0
        found: list[int] = []
        got: asyncio.Queue[aiormq.abc.DeliveredMessage] = asyncio.Queue()

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            got.put_nowait(message)

        if expected:
            await channel.basic_consume(queue, on_message, no_ack=False)
            while len(found) < expected:
                message = await asyncio.wait_for(got.get(), 60)
                n = read_body(message.body)
                if n is None:
                    raise Violation(f"{queue}: a damaged body in the store")
                found.append(n)
        await channel.close()  # unacknowledged: back in the queue
        return found
    finally:
        await conn.close()


def verify(model: Model, contents: dict[str, list[int]]) -> None:
    """Check the queues' contents after a restart against the promises."""
    for queue, found in contents.items():
        present = set(found)
        committed = model.committed[queue]
        if len(present) != len(found):
            raise Violation(f"{queue}: a message is in the queue twice")
        unknown = [n for n in present if n >= model.next_id]
        if unknown:
            raise Violation(f"{queue}: messages never published: {unknown[:5]}")
        back = present & committed
        if back:
            raise Violation(
                f"{queue}: {len(back)} messages whose ack was committed are back, "
                f"e.g. {sorted(back)[:5]}"
            )
        lost = model.confirmed - committed - model.committing[queue] - present
        if lost:
            raise Violation(
                f"{queue}: {len(lost)} confirmed messages lost, e.g. {sorted(lost)[:5]}"
            )
        # acks in flight at the kill: committed or not, now known
        committed.update(model.committing[queue] - present)
        model.committing[queue].clear()
    if model.errors:
        raise Violation("; ".join(model.errors[:5]))


def run(rounds: int, queues: int, seed: int, data_dir: Path) -> int:
    rng = random.Random(seed)
    model = Model([f"soak.q{i}" for i in range(queues)])
    broker = Broker(data_dir, data_dir.parent / "soak-broker.log")
    started = time.monotonic()
    try:
        broker.start()
        for number in range(1, rounds + 1):
            seconds = rng.uniform(0.1, 0.5) if rng.random() < 0.3 else rng.uniform(0.5, 3.0)
            asyncio.run(_load(broker, model, rng, seconds))
            if rng.random() < 0.15:
                broker.kill_while_starting(rng.uniform(0.05, 0.6))
            broker.start()
            contents = {q: asyncio.run(_read_queue(broker.url, q)) for q in model.queues}
            verify(model, contents)
            model.max_backlog = max(model.max_backlog, max(map(len, contents.values())))
            print(
                f"round {number}: killed after {seconds:.2f} s; {model.next_id} published, "
                f"{len(model.confirmed)} confirmed; in the queues now: "
                f"{', '.join(str(len(c)) for c in contents.values())}",
                flush=True,
            )
        assert broker.stop() == 0
    except Violation as exc:
        print(f"seed {seed}: VIOLATION: {exc}", flush=True)
        return 1
    finally:
        broker.kill()
    acked = sum(len(c) for c in model.committed.values())
    print(
        f"seed {seed}: {rounds} rounds of kill -9 in {time.monotonic() - started:.0f} s, "
        f"{len(model.queues)} queues: {model.next_id} published, {len(model.confirmed)} "
        f"confirmed ({model.nacked} nacked), {acked} acks committed, "
        f"{model.redelivered} deliveries flagged redelivered (after a kill or a read-through), "
        f"largest backlog "
        f"{model.max_backlog}; nothing confirmed lost, no committed ack undone",
        flush=True,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/soak.py", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--queues", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a new temp dir")
    args = parser.parse_args(argv)
    # clients see connections reset at every kill: expected, not worth a traceback
    logging.basicConfig(level=logging.CRITICAL)
    seed = args.seed if args.seed is not None else time.time_ns() % 10**9
    if args.data_dir is not None:
        return run(args.rounds, args.queues, seed, args.data_dir)
    with tempfile.TemporaryDirectory(prefix="kiltmq-soak-") as tmp:
        return run(args.rounds, args.queues, seed, Path(tmp) / "data")


if __name__ == "__main__":
    sys.exit(main())
