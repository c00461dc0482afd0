"""kill -9 at random moments: nothing a client was promised is lost.

A broker process (``python -m kiltmq broker --data-dir ... --page-messages 500``, so that
backlogs are paged out) runs under load from a publisher with confirms (a window of
outstanding publishes) and a consumer that acks as it goes in transactions (``tx.commit``
every few acks: once commit-ok arrives, those acks are promised too), sometimes starting
late so that a backlog builds up. It is killed with SIGKILL at a random moment, sometimes
while still starting (recovering), then started again, many rounds. After every round, and
after a final drain:

* every confirmed message was delivered at some point (none lost);
* no message whose ack was committed is delivered again;
* a message delivered again carries redelivered=true;
* every body matches its checksum (nothing corrupted);
* within each round, deliveries come in publication order.

About a minute in the normal suite; ``KILTMQ_SOAK=1`` runs many more rounds
(``KILTMQ_CRASH_ROUNDS`` sets the number, ``KILTMQ_CRASH_SEED`` replays a run).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiormq
import pika
import pytest

from .conftest import BrokerProcess, blocking

SOAK = os.environ.get("KILTMQ_SOAK") == "1"
ROUNDS = int(os.environ.get("KILTMQ_CRASH_ROUNDS", "200" if SOAK else "14"))
WINDOW = 1000  # outstanding unconfirmed publishes
QUEUE = "crash"
PERSISTENT = aiormq.spec.Basic.Properties(delivery_mode=2)

pytestmark = pytest.mark.timeout(3600 if SOAK else 180)

_HEAD = struct.Struct(">QI")


def make_body(n: int) -> bytes:
    payload = random.Random(n).randbytes(60 + n % 300)
    head = _HEAD.pack(n, len(payload))
    return head + payload + hashlib.blake2b(head + payload, digest_size=16).digest()


def read_body(body: bytes) -> int | None:
    """The message number, or None if the body is damaged."""
    if len(body) < _HEAD.size + 16:
        return None
    n, size = _HEAD.unpack_from(body)
    end = _HEAD.size + size
    if len(body) != end + 16:
        return None
    if hashlib.blake2b(body[:end], digest_size=16).digest() != body[end:]:
        return None
    return int(n)


@dataclass
class Model:
    """What the clients were promised and what they saw, over all rounds."""

    next_id: int = 0
    confirmed: set[int] = field(default_factory=set)
    deliveries: dict[int, int] = field(default_factory=dict)  # message -> times delivered
    committed_acks: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    round: int = 0
    last_in_round: int = -1
    redelivered: int = 0

    def new_round(self) -> None:
        self.round += 1
        self.last_in_round = -1

    def delivered(self, body: bytes, redelivered: bool) -> int | None:
        n = read_body(body)
        if n is None:
            self.errors.append(f"round {self.round}: damaged body {body[:24]!r}...")
            return None
        if n in self.committed_acks:
            self.errors.append(f"round {self.round}: message {n} delivered after its ack commit")
        seen = self.deliveries.get(n, 0)
        if seen and not redelivered:
            self.errors.append(f"round {self.round}: message {n} again, without redelivered")
        if n <= self.last_in_round:
            self.errors.append(
                f"round {self.round}: message {n} delivered after {self.last_in_round}"
            )
        self.last_in_round = n
        self.deliveries[n] = seen + 1
        self.redelivered += bool(seen)
        return n


async def _publisher(url: str, model: Model) -> None:
    conn = await aiormq.connect(url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        await channel.queue_declare(QUEUE, durable=True)
        window = asyncio.Semaphore(WINDOW)

        async def publish(n: int) -> None:
            try:
                result = await channel.basic_publish(
                    make_body(n), routing_key=QUEUE, properties=PERSISTENT
                )
                if isinstance(result, aiormq.spec.Basic.Ack):
                    model.confirmed.add(n)
            except Exception:  # the broker died: unconfirmed, nothing promised
                pass
            finally:
                window.release()

        tasks = set()
        while True:
            await window.acquire()
            n = model.next_id
            model.next_id += 1
            task = asyncio.create_task(publish(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), 2)


async def _consumer(url: str, model: Model, delay: float) -> None:
    await asyncio.sleep(delay)  # a backlog builds up meanwhile (and gets paged out)
    conn = await aiormq.connect(url)
    try:
        channel = await conn.channel(publisher_confirms=False)
        await channel.queue_declare(QUEUE, durable=True)
        await channel.basic_qos(prefetch_count=200)
        await channel.tx_select()
        inbox: asyncio.Queue[aiormq.abc.DeliveredMessage] = asyncio.Queue()

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            inbox.put_nowait(message)

        await channel.basic_consume(QUEUE, on_message, no_ack=False)
        pending: list[int] = []
        while True:
            message = await inbox.get()
            delivery = message.delivery
            assert isinstance(delivery, aiormq.spec.Basic.Deliver)
            n = model.delivered(message.body, bool(delivery.redelivered))
            assert delivery.delivery_tag is not None
            await channel.basic_ack(delivery.delivery_tag)
            if n is not None:
                pending.append(n)
            if len(pending) >= 25 or inbox.empty():
                await channel.tx_commit()
                model.committed_acks.update(pending)  # commit-ok: promised from here
                pending.clear()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), 2)


async def _loaded_round(
    broker: BrokerProcess, model: Model, seconds: float, consumer_delay: float
) -> None:
    broker.start()
    model.new_round()
    tasks = [
        asyncio.create_task(_publisher(broker.url, model)),
        asyncio.create_task(_consumer(broker.url, model, consumer_delay)),
    ]
    done, _ = await asyncio.wait(tasks, timeout=seconds)
    broker.kill()
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=10)
    for task in done:  # a client that stopped before the kill is a test failure
        if not task.cancelled() and task.exception() is not None:
            model.errors.append(f"round {model.round}: client failed: {task.exception()!r}")


def _kill_while_starting(data_dir: Path, delay: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiltmq", "broker", "--port", "0", "--data-dir", str(data_dir),
         "--page-messages", "500"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.kill()
    proc.wait(30)


def _drain(broker: BrokerProcess, model: Model) -> None:
    """Take every message left (basic.get with auto-ack), checking each."""
    broker.start()
    model.new_round()
    with contextlib.closing(blocking(broker.url)) as conn:
        channel = conn.channel()
        channel.queue_declare(QUEUE, durable=True)
        while True:
            method, _props, body = channel.basic_get(QUEUE, auto_ack=True)
            if method is None:
                break
            n = model.delivered(body, bool(method.redelivered))
            if n is not None:
                model.committed_acks.add(n)
        assert channel.queue_declare(QUEUE, passive=True).method.message_count == 0
    assert broker.stop() == 0


def test_kill_9_under_load_loses_nothing_promised(tmp_path: Path) -> None:
    seed = int(os.environ.get("KILTMQ_CRASH_SEED", str(time.time_ns() % 10**9)))
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    broker = BrokerProcess(data_dir, "--page-messages", "500")
    model = Model()
    try:
        for _ in range(ROUNDS):
            if rng.random() < 0.15:
                _kill_while_starting(data_dir, rng.uniform(0.05, 0.5))
            seconds = rng.uniform(0.05, 0.4) if rng.random() < 0.3 else rng.uniform(0.4, 3.0)
            delay = rng.uniform(0, seconds * 0.5) if rng.random() < 0.5 else 0.0
            asyncio.run(_loaded_round(broker, model, seconds, delay))
            assert not model.errors, f"seed {seed}: {model.errors[:5]}"
        _drain(broker, model)
    finally:
        broker.close()
    lost = model.confirmed - model.deliveries.keys()
    assert not model.errors, f"seed {seed}: {model.errors[:5]}"
    assert not lost, f"seed {seed}: {len(lost)} confirmed messages lost, e.g. {sorted(lost)[:5]}"
    # the test did exercise what it checks
    assert len(model.confirmed) > 1000, f"seed {seed}: only {len(model.confirmed)} confirmed"
    assert model.committed_acks, f"seed {seed}: nothing acked"
    print(
        f"seed {seed}: {model.round} rounds, {model.next_id} published, "
        f"{len(model.confirmed)} confirmed, {len(model.committed_acks)} acked, "
        f"{model.redelivered} delivered again"
    )


def test_confirmed_and_committed_messages_survive_an_immediate_kill(
    broker_process: BrokerProcess,
) -> None:
    """Confirms and tx.commit-ok are sent only once the messages are on disk: kill -9
    right after them loses nothing."""
    broker_process.start()
    conn = blocking(broker_process.url)
    confirm = conn.channel()
    confirm.confirm_delivery()
    confirm.queue_declare("now", durable=True)
    for i in range(200):
        confirm.basic_publish("", "now", b"c%d" % i, pika.BasicProperties(delivery_mode=2))
    tx = conn.channel()
    tx.tx_select()
    for i in range(200):
        tx.basic_publish("", "now", b"t%d" % i, pika.BasicProperties(delivery_mode=2))
    tx.tx_commit()
    broker_process.kill()
    with contextlib.suppress(Exception):
        conn.close()
    broker_process.start()
    with contextlib.closing(blocking(broker_process.url)) as conn2:
        channel = conn2.channel()
        bodies = []
        while True:
            method, _props, body = channel.basic_get("now", auto_ack=True)
            if method is None:
                break
            assert method.redelivered  # after a crash every recovered message is marked
            bodies.append(body)
    assert bodies == [b"c%d" % i for i in range(200)] + [b"t%d" % i for i in range(200)]
