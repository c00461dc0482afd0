"""The store's messaging, on kiltmq's public client API only.

:class:`Bus` is one service's connection: it declares the topology, publishes with
publisher confirms (persistent messages), relays the service's outbox, and runs
consumers as Idempotent Receivers (see :mod:`kiltstore.storage`).

A consumer's handler is split in two so that slow or external work (an HTTP call to
the payment gateway, an SMTP send) happens outside the database transaction::

    async def handle(message: Incoming) -> Apply | None:
        ...                     # parse, call out (idempotently)
        def apply(tx):          # runs inside the transaction that marks the message
            tx.execute(...)     # the effect
            tx.publish(...)     # the messages it causes (outbox)
        return apply

The bus then commits effect + outbox + processed id together, publishes the outbox
with confirms, and acks. A handler raising :class:`PoisonMessage` (the message can
never be handled) has it rejected to the dead-letter channel; any other exception is a
transient failure: the message is requeued after a pause and tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import kiltmq
from kiltmq import BasicProperties
from kiltstore.storage import Database, Transaction
from kiltstore.topology import Topology

log = logging.getLogger("kiltstore.bus")

Apply = Callable[[Transaction], None]
PERSISTENT = 2
CONNECT_TIMEOUT = 10.0
RETRY_PAUSE = 1.0


class PoisonMessage(Exception):
    """The message can never be handled: dead-letter it instead of retrying."""


@dataclass(frozen=True)
class Incoming:
    """What a handler sees of a delivered message."""

    message_id: str
    body: bytes
    routing_key: str
    exchange: str
    content_type: str
    type: str
    headers: dict[str, Any]
    redelivered: bool


Handler = Callable[[Incoming], Awaitable[Apply | None]]


def message_id_of(properties: Any, body: bytes) -> str:
    """The message's id, or a digest of its body when the publisher set none."""
    mid = getattr(properties, "message_id", None)
    if mid:
        return str(mid)
    return "sha256:" + hashlib.sha256(body).hexdigest()


class Bus:
    """One service's AMQP connection (see the module docstring)."""

    def __init__(self, url: str, topology: Topology, *, app_id: str) -> None:
        self.url = url
        self.topology = topology
        self.app_id = app_id
        self._conn: Any = None
        self._pub: Any = None
        self._publish_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._closing = False
        #: Called after each message is handled and acked (for live pages and tests).
        self.on_handled: list[Callable[[str, Incoming], None]] = []

    @property
    def closing(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    async def start(self, *, retry_for: float = 60.0) -> None:
        """Connect (retrying while the broker isn't up yet), open the publishing
        channel with confirms, and declare the topology."""
        self._retry_for = retry_for
        self._connect_lock = asyncio.Lock()
        await self._connect()

    async def _connect(self) -> None:
        deadline = time.monotonic() + self._retry_for
        while True:
            try:
                self._conn = await asyncio.wait_for(kiltmq.connect(self.url), CONNECT_TIMEOUT)
                break
            except (OSError, TimeoutError, kiltmq.ConnectError) as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("%s: broker not reachable (%s); retrying", self.app_id, exc)
                await asyncio.sleep(RETRY_PAUSE)
        self._pub = await self._conn.channel()
        await self._pub.confirm_select()
        await self.topology.declare(self._pub)

    async def _ensure_connected(self) -> None:
        """Open a new connection if the client gave up recovering the old one."""
        async with self._connect_lock:
            if self._conn is None or self._conn.is_closed:
                log.warning("%s: connection closed for good; connecting again", self.app_id)
                await self._connect()
            elif self._pub.is_closed:
                self._pub = await self._conn.channel()
                await self._pub.confirm_select()

    async def close(self) -> None:
        self._closing = True
        for task in [*self._tasks, *self._flushes]:
            task.cancel()
        for task in [*self._tasks, *self._flushes]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 5)
            self._conn = None

    # -- publishing ---------------------------------------------------------------------

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        content_type: str,
        type: str,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Publish a persistent message and wait for the broker's confirm.

        ``exchange`` is the exchange's key in the topology (without the prefix)."""
        properties = BasicProperties(
            content_type=content_type,
            delivery_mode=PERSISTENT,
            message_id=message_id,
            type=type,
            headers=headers or None,
            app_id=self.app_id,
            timestamp=int(time.time()),
        )
        await self._pub.basic_publish(
            body,
            exchange=self.topology.exchange(exchange),
            routing_key=routing_key,
            properties=properties,
        )

    async def flush_outbox(self, db: Database) -> int:
        """Publish the outbox's unsent messages in order; return how many were sent."""
        sent = 0
        if db.query_one("SELECT 1 FROM outbox WHERE sent_at IS NULL") is None:
            return 0
        await self._ensure_connected()
        async with self._publish_lock:
            while True:
                batch = db.unsent()
                if not batch:
                    return sent
                for message in batch:
                    await self.publish(
                        message.exchange,
                        message.routing_key,
                        message.body,
                        message_id=message.message_id,
                        content_type=message.content_type,
                        type=message.type,
                        headers=message.headers,
                    )
                    db.mark_sent(message.id)
                    sent += 1

    def flush_soon(self, db: Database) -> None:
        """Publish ``db``'s outbox in the background, without waiting (for web requests:
        the page answers at once even while the broker is away; the relay catches up)."""

        async def flush() -> None:
            try:
                await self.flush_outbox(db)
            except Exception as exc:
                log.warning("%s: outbox flush failed (%r); the relay retries", self.app_id, exc)

        task = asyncio.get_running_loop().create_task(flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    def relay_outbox(self, db: Database, interval: float = 2.0) -> None:
        """Keep flushing ``db``'s outbox in the background (catches up after an outage
        and sends what web requests queued)."""

        async def relay() -> None:
            while not self._closing:
                try:
                    await self.flush_outbox(db)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("%s: outbox relay failed (%s); will retry", self.app_id, exc)
                await asyncio.sleep(interval)

        self._tasks.append(asyncio.get_running_loop().create_task(relay()))

    # -- consuming ----------------------------------------------------------------------

    def consume(
        self, queue_key: str, db: Database, handler: Handler, *, prefetch: int = 10
    ) -> None:
        """Consume the topology's queue ``queue_key`` in the background, one message at
        a time, as an Idempotent Receiver recording ids in ``db``."""
        task = asyncio.get_running_loop().create_task(
            self._consume(queue_key, db, handler, prefetch), name=f"{self.app_id}:{queue_key}"
        )
        self._tasks.append(task)

    async def _consume(self, queue_key: str, db: Database, handler: Handler, prefetch: int) -> None:
        queue = self.topology.queue(queue_key)
        while not self._closing:
            try:
                await self._ensure_connected()
                channel = await self._conn.channel()
                await channel.basic_qos(prefetch_count=prefetch)
                async for message in channel.consume(queue):
                    await self._handle(queue_key, db, handler, message)
                if self.closing:
                    return
                log.warning("%s: consumer of %s ended; resubscribing", self.app_id, queue)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.closing:
                    return
                log.warning(
                    "%s: consumer of %s failed (%r); resubscribing", self.app_id, queue, exc
                )
            await asyncio.sleep(RETRY_PAUSE)

    async def _handle(self, queue_key: str, db: Database, handler: Handler, message: Any) -> None:
        properties = message.properties
        incoming = Incoming(
            message_id=message_id_of(properties, message.body),
            body=message.body,
            routing_key=message.routing_key,
            exchange=message.exchange,
            content_type=properties.content_type or "",
            type=properties.type or "",
            headers=dict(properties.headers or {}),
            redelivered=bool(message.redelivered),
        )
        try:
            if not self._processed(db, incoming.message_id):
                apply = await handler(incoming)
                with db.transaction() as tx:
                    # Checked again inside the transaction: the check above is only a
                    # shortcut that skips the handler's work for known duplicates.
                    if not tx.is_processed(incoming.message_id):
                        if apply is not None:
                            apply(tx)
                        tx.mark_processed(incoming.message_id, queue_key)
            await self.flush_outbox(db)
        except PoisonMessage as exc:
            log.error("%s: dead-lettering %s: %s", self.app_id, incoming.message_id, exc)
            await message.reject(requeue=False)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "%s: %s failed (%r); requeueing", self.app_id, incoming.message_id, exc
            )
            await asyncio.sleep(RETRY_PAUSE)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
            return
        await message.ack()
        for callback in self.on_handled:
            callback(queue_key, incoming)

    @staticmethod
    def _processed(db: Database, message_id: str) -> bool:
        row = db.query_one("SELECT 1 FROM processed WHERE message_id = ?", (message_id,))
        return row is not None
