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
with confirms, and acks.

Failures. A handler raising :class:`PoisonMessage` or ``ValueError`` (the message can
never be handled: malformed, an unknown version, an SMTP 5xx) has it sent at once to the
Dead Letter Channel, with the reason in its headers (:data:`DEAD_REASON`,
:data:`DEAD_QUEUE`). Any other exception is a passing failure: a copy goes to the
``retry`` exchange with its retry count (:data:`~kiltstore.topology.RETRY_COUNT`) one
higher and a per-message TTL of the next back-off delay; its delay queue dead-letters
it back to the work queue when the TTL expires. After the last delay the message is
dead-lettered with the last error. The copy is confirmed before the original is acked,
so nothing is lost; a copy made twice is dropped by the Idempotent Receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import kiltmq
from kiltmq import BasicProperties
from kiltstore import history
from kiltstore.config import broker_urls
from kiltstore.storage import Database, Transaction
from kiltstore.topology import (
    DEAD_LETTERS,
    DEFAULT_EXCHANGE,
    HISTORY,
    RETRY,
    RETRY_COUNT,
    RETRY_DELAYS,
    RETRY_LEVEL,
    Topology,
)

log = logging.getLogger("kiltstore.bus")

Apply = Callable[[Transaction], None]
PERSISTENT = 2
CONNECT_TIMEOUT = 10.0
RETRY_PAUSE = 1.0

#: Headers of a dead letter: why it was given up on, and the queue it came from.
DEAD_REASON = "x-dead-reason"
DEAD_QUEUE = "x-dead-queue"
#: ``true`` when the failure was permanent (no retry was tried).
DEAD_PERMANENT = "x-dead-permanent"
#: A fresh id per dead-lettering (the board's idempotency key for dead letters).
DEAD_LETTER_ID = "x-dead-letter-id"
#: The last passing error of a message being retried.
LAST_ERROR = "x-last-error"
#: Headers the bus sets on failed messages; dropped when a person retries one.
FAILURE_HEADERS = (RETRY_COUNT, LAST_ERROR, DEAD_REASON, DEAD_QUEUE, DEAD_PERMANENT,
                   DEAD_LETTER_ID, RETRY_LEVEL, "x-death", "x-first-death-reason",
                   "x-first-death-queue", "x-first-death-exchange")


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
    #: The Return Address (``reply_to``) and the ``correlation_id`` to answer with.
    reply_to: str = ""
    correlation_id: str = ""
    #: The message's properties as delivered (to republish it unchanged).
    properties: Any = None


Handler = Callable[[Incoming], Awaitable[Apply | None]]


def message_id_of(properties: Any, body: bytes) -> str:
    """The message's id, or a digest of its body when the publisher set none."""
    mid = getattr(properties, "message_id", None)
    if mid:
        return str(mid)
    return "sha256:" + hashlib.sha256(body).hexdigest()


class Bus:
    """One service's AMQP connection (see the module docstring)."""

    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        app_id: str,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        if not 0 < len(retry_delays) <= len(RETRY_DELAYS):
            raise ValueError(f"between 1 and {len(RETRY_DELAYS)} retry delays, please")
        self.retry_delays = retry_delays
        self.url = url
        self.topology = topology
        self.app_id = app_id
        self._conn: Any = None
        self._pub: Any = None
        self._history: Any = None  # channel without confirms for Message History records
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
                connect = kiltmq.connect(broker_urls(self.url), shuffle_addresses=True)
                self._conn = await asyncio.wait_for(connect, CONNECT_TIMEOUT)
                break
            except (OSError, TimeoutError, kiltmq.ConnectError) as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("%s: broker not reachable (%s); retrying", self.app_id, exc)
                await asyncio.sleep(RETRY_PAUSE)
        self._pub = await self._conn.channel()
        await self._pub.confirm_select()
        await self.topology.declare(self._pub)
        self._history = await self._conn.channel()

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

    async def queue_depths(self, names: list[str]) -> dict[str, tuple[int, int]]:
        """Each queue's (messages ready, consumers), by passive declare; a queue that
        doesn't exist is left out."""
        await self._ensure_connected()
        depths: dict[str, tuple[int, int]] = {}
        channel = await self._conn.channel()
        try:
            for name in names:
                try:
                    ok = await channel.queue_declare(name, passive=True, timeout=CONNECT_TIMEOUT)
                except Exception:
                    channel = await self._conn.channel()  # a 404 closed the channel
                    continue
                depths[name] = (int(ok.message_count), int(ok.consumer_count))
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        return depths

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
        reply_to: str = "",
        correlation_id: str = "",
    ) -> None:
        """Publish a persistent message and wait for the broker's confirm.

        ``exchange`` is the exchange's key in the topology (without the prefix), or
        ``""`` for the default exchange (``routing_key`` then names a queue)."""
        properties = BasicProperties(
            content_type=content_type,
            delivery_mode=PERSISTENT,
            message_id=message_id,
            type=type,
            headers=headers or None,
            app_id=self.app_id,
            timestamp=int(time.time()),
            reply_to=reply_to or None,
            correlation_id=correlation_id or None,
        )
        name = self.topology.exchange(exchange) if exchange != DEFAULT_EXCHANGE else ""
        await self.publish_properties(name, routing_key, body, properties)

    async def publish_properties(
        self, exchange: str, routing_key: str, body: bytes, properties: BasicProperties
    ) -> None:
        """Publish with these properties to the exchange named ``exchange`` (the full
        name) and wait for the broker's confirm."""
        await self._ensure_connected()
        channel = self._pub
        try:
            await channel.basic_publish(
                body, exchange=exchange, routing_key=routing_key, properties=properties
            )
        except kiltmq.PublishNacked:
            # The next publish opens a new channel: RabbitMQ 3.10 may nack every later
            # one of this channel (a quorum queue's dead leader, see docs/scaling.md).
            with contextlib.suppress(Exception):
                await channel.close()
            raise

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
                    if sent:
                        db.scrub()  # the sent bodies, blanked, leave no copy on disk
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
                        reply_to=message.reply_to,
                        correlation_id=message.correlation_id,
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
        self,
        queue_key: str,
        db: Database,
        handler: Handler,
        *,
        prefetch: int = 10,
        key: Callable[[Incoming], str] | None = None,
    ) -> None:
        """Consume the topology's queue ``queue_key`` in the background, one message at
        a time, as an Idempotent Receiver recording ids in ``db`` (each message's id,
        or what ``key`` makes of the message)."""
        task = asyncio.get_running_loop().create_task(
            self._consume(queue_key, db, handler, prefetch, key),
            name=f"{self.app_id}:{queue_key}",
        )
        self._tasks.append(task)

    async def _consume(
        self,
        queue_key: str,
        db: Database,
        handler: Handler,
        prefetch: int,
        key: Callable[[Incoming], str] | None,
    ) -> None:
        queue = self.topology.queue(queue_key)
        while not self._closing:
            try:
                await self._ensure_connected()
                channel = await self._conn.channel()
                await channel.basic_qos(prefetch_count=prefetch)
                async for message in channel.consume(queue):
                    await self._handle(queue_key, db, handler, message, key)
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

    async def _handle(
        self,
        queue_key: str,
        db: Database,
        handler: Handler,
        message: Any,
        key: Callable[[Incoming], str] | None = None,
    ) -> None:
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
            reply_to=properties.reply_to or "",
            correlation_id=properties.correlation_id or "",
            properties=properties,
        )
        if key is not None:
            incoming = replace(incoming, message_id=key(incoming))
        outcome = history.DUPLICATE
        try:
            if not self._processed(db, incoming.message_id):
                outcome = history.HANDLED
                apply = await handler(incoming)
                with db.transaction() as tx:
                    # Checked again inside the transaction: the check above is only a
                    # shortcut that skips the handler's work for known duplicates.
                    if not tx.is_processed(incoming.message_id):
                        if apply is not None:
                            apply(tx)
                        tx.mark_processed(incoming.message_id, queue_key)
            await self.flush_outbox(db)
        except asyncio.CancelledError:
            raise
        except (PoisonMessage, ValueError) as exc:
            await self._give_up(queue_key, message, incoming, f"{exc}", permanent=True)
            await self._report(queue_key, incoming, history.DEAD_LETTERED)
            return
        except Exception as exc:
            await self._retry_later(queue_key, message, incoming, exc)
            await self._report(queue_key, incoming, history.RETRY)
            return
        await message.ack()
        await self._report(queue_key, incoming, outcome)
        for callback in self.on_handled:
            callback(queue_key, incoming)

    async def _report(self, queue_key: str, incoming: Incoming, outcome: str) -> None:
        """Publish the Message History record of a message (no confirm; never fails)."""
        if queue_key != HISTORY and self._history is not None:
            entry = history.record(
                self.app_id, self.topology.queue(queue_key), incoming.message_id,
                incoming.properties, exchange=incoming.exchange,
                routing_key=incoming.routing_key, outcome=outcome,
            )
            await history.publish(self._history, self.topology.exchange(HISTORY), entry,
                                  self.app_id, CONNECT_TIMEOUT)

    async def _retry_later(
        self, queue_key: str, message: Any, incoming: Incoming, exc: Exception
    ) -> None:
        """A passing failure: try again after the next back-off delay, or give up."""
        retries = header_int(incoming.headers.get(RETRY_COUNT))
        error = f"{type(exc).__name__}: {exc}"[:500]
        if retries >= len(self.retry_delays):
            reason = f"gave up after {retries + 1} attempts; last error: {error}"
            await self._give_up(queue_key, message, incoming, reason, permanent=False)
            return
        delay = self.retry_delays[retries]
        log.warning(
            "%s: %s failed (%s); retry %d of %d in %g s", self.app_id, incoming.message_id,
            error, retries + 1, len(self.retry_delays), delay,
        )
        headers = {**incoming.headers, RETRY_COUNT: retries + 1, LAST_ERROR: error,
                   RETRY_LEVEL: str(retries + 1)}
        copy = _with_headers(incoming, headers)
        copy.expiration = str(max(1, round(delay * 1000)))
        await self._move(message, self.topology.exchange(RETRY),
                         self.topology.queue(queue_key), incoming, copy)

    async def _give_up(
        self, queue_key: str, message: Any, incoming: Incoming, reason: str, *, permanent: bool
    ) -> None:
        """Send the message to the Dead Letter Channel with the reason, and ack it."""
        log.error("%s: dead-lettering %s: %s", self.app_id, incoming.message_id, reason)
        headers = {**incoming.headers, DEAD_REASON: reason[:1000],
                   DEAD_QUEUE: self.topology.queue(queue_key), DEAD_PERMANENT: permanent,
                   DEAD_LETTER_ID: uuid.uuid4().hex}
        copy = _with_headers(incoming, headers)
        await self._move(message, self.topology.exchange(DEAD_LETTERS), queue_key, incoming, copy)

    async def _move(
        self, message: Any, exchange: str, routing_key: str, incoming: Incoming,
        copy: BasicProperties,
    ) -> None:
        """Publish ``copy`` of the message (confirmed), then ack the original. If the
        copy can't be published, the original is requeued after a pause instead."""
        try:
            await self.publish_properties(exchange, routing_key, incoming.body, copy)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: cannot move %s (%r); requeueing", self.app_id,
                        incoming.message_id, exc)
            await asyncio.sleep(RETRY_PAUSE)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
            return
        await message.ack()

    @staticmethod
    def _processed(db: Database, message_id: str) -> bool:
        row = db.query_one("SELECT 1 FROM processed WHERE message_id = ?", (message_id,))
        return row is not None


def header_int(value: Any) -> int:
    """A header's value as an int (0 if it is missing or not a number)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _with_headers(incoming: Incoming, headers: dict[str, Any]) -> BasicProperties:
    """The message's properties with these headers (persistent, no TTL)."""
    source = incoming.properties
    fields = {name: getattr(source, name) for name in BasicProperties.FIELDS} if source else {}
    properties = BasicProperties(**fields)
    properties.headers = headers
    properties.expiration = None
    properties.delivery_mode = PERSISTENT
    if not properties.message_id:
        properties.message_id = incoming.message_id
    return properties
