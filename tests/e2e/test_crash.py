"""A service killed mid-flow and restarted loses nothing and duplicates nothing.

Billing runs as its own process (``python -m kiltstore billing``). The payment gateway
is told to hold its answers, so billing is caught after the customer's card was
charged but before billing heard back: the message is unacked, nothing is stored.
Billing is killed with SIGKILL there, a second order arrives while it is down, and it
is started again. The broker redelivers the first order; the gateway recognises the
idempotency key and charges nothing more; both orders are approved once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import kiltmq
from kiltstore import samples
from kiltstore.demo import Store

from .conftest import WAIT, eventually, get_json, post_form


class BillingProcess:
    """``python -m kiltstore billing`` in a child process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kiltstore", "billing",
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        # It prints one line once it is connected and consuming.
        line = await asyncio.wait_for(self.process.stdout.readline(), WAIT)
        assert b"kiltstore billing running" in line, line
        self._reader = asyncio.get_running_loop().create_task(self._read(self.process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        """Keep reading the child's output (so a full pipe never blocks it)."""
        assert process.stdout is not None
        async for line in process.stdout:
            self.output.append(line.decode(errors="replace"))

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), WAIT)
        assert self.process.returncode == -signal.SIGKILL

    async def stop(self) -> None:
        """SIGTERM, and print what the process said (shown when a test fails)."""
        process = self.process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), WAIT)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, WAIT)
        print("billing process output:", "".join(self.output))


@pytest.fixture
async def split_store(
    amqp_url: str, prefix: str, tmp_path: Path, cleanup: None
) -> AsyncIterator[tuple[Store, BillingProcess]]:
    """The store in this process, except billing, which runs in a child process."""
    data_dir = tmp_path / "data"
    async with Store(
        data_dir=data_dir, amqp_url=amqp_url, prefix=prefix, exclude=frozenset({"billing"})
    ) as store:
        env = {
            **os.environ,
            "AMQP_URL": amqp_url,
            "KILTSTORE_PREFIX": prefix,
            "KILTSTORE_DATA_DIR": str(data_dir),
            "KILTSTORE_PAYMENT_URL": store.urls["payment gateway"],
            "KILTSTORE_PORT": "0",
        }
        billing = BillingProcess(env)
        try:
            yield store, billing
        finally:
            await billing.stop()


async def hold(http: aiohttp.ClientSession, store: Store, on: bool) -> None:
    async with http.post(store.urls["payment gateway"] + "/hold", json={"hold": on}) as r:
        assert (await r.json()) == {"hold": on}


async def charges(http: aiohttp.ClientSession, store: Store) -> Any:
    return await get_json(http, store.urls["payment gateway"] + "/charges")


async def test_billing_killed_mid_charge_loses_nothing_and_charges_once(
    split_store: tuple[Store, BillingProcess], http: aiohttp.ClientSession, amqp_url: str
) -> None:
    store, billing = split_store
    # Our own queue on the orders exchange counts every approval billing publishes.
    conn = await kiltmq.connect(amqp_url)
    ch = await conn.channel()
    approvals = (await ch.queue_declare("", exclusive=True)).queue
    await ch.queue_bind(approvals, store.service("board").topology.exchange("orders"),
                        "order.approved.*")
    await billing.start()
    await hold(http, store, True)
    await post_form(http, store.urls["web store"] + "/checkout", samples.WEB_FORM)  # web-1

    async def charged_and_waiting() -> Any:
        data = await charges(http, store)
        return data["waiting"] == 1 and [c["idempotency_key"] for c in data["charges"]] == [
            "web-1"
        ]

    await eventually(charged_and_waiting, "the gateway to charge web-1 and hold the answer")
    await billing.kill()
    # An order placed while billing is down waits in its queue.
    await post_form(http, store.urls["web store"] + "/checkout", samples.WEB_FORM)  # web-2

    await billing.start()

    async def redelivered() -> Any:
        data = await charges(http, store)
        return [c["requests"] for c in data["charges"] if c["idempotency_key"] == "web-1"] == [2]

    await eventually(redelivered, "billing to ask the gateway about web-1 again")
    await hold(http, store, False)

    async def both_approved() -> Any:
        todo = (await get_json(http, store.urls["workshop"] + "/jobs.json"))["todo"]
        return todo if len(todo) == 2 else None

    assert await eventually(both_approved, "both orders approved") == ["web-1", "web-2"]

    # One charge per order, though web-1 was asked for twice.
    data = await charges(http, store)
    assert sorted((c["idempotency_key"], c["status"], c["requests"]) for c in data["charges"]) == [
        ("web-1", "approved", 2),
        ("web-2", "approved", 1),
    ]
    # Billing's own records and the events it sent: one of each per order.
    from kiltstore.storage import Database

    billing_db = Database(store.data_dir / "billing.sqlite3")
    try:
        rows = billing_db.query("SELECT order_id FROM charges ORDER BY order_id")
        assert [row["order_id"] for row in rows] == ["web-1", "web-2"]
    finally:
        billing_db.close()

    async def approved_mails() -> Any:
        data = await get_json(http, store.urls["mailbox"] + "/mails.json")
        mails = [m for m in data["mails"] if "on the loom" in m["subject"]]
        return mails if len(mails) == 2 else None

    mails = await eventually(approved_mails, "two confirmation mails")
    assert sorted(m["order_id"] for m in mails) == ["web-1", "web-2"]
    board = await get_json(http, store.urls["order board"] + "/orders.json")
    assert {j["order_id"]: j["latest"] for j in board["orders"]} == {
        "web-1": "approved",
        "web-2": "approved",
    }
    published = []
    while (message := await ch.basic_get(approvals, no_ack=True)) is not None:
        published.append(str(message.properties.message_id))
    assert sorted(published) == ["web-1:approved", "web-2:approved"]
    await asyncio.wait_for(conn.close(), WAIT)
