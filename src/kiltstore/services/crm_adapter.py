"""Channel Adapter: new CRM orders, read over XML-RPC, published as messages.

The CRM knows nothing of messaging, so the adapter polls its public API
(``crm.orders_since(last_id)``) and publishes each new order, in the CRM's own
format (the XML-RPC record, ``text/xml``, type ``crm.order.v1``), to the ``intake``
exchange with routing key ``crm``. The Normalizer translates it.

The adapter keeps the id of the last order it published in its database, and moves
it forward only after the broker confirmed the message. If it dies in between, it
publishes that order again with the same message id (``crm-<id>``), which the
Normalizer drops as a duplicate: at-least-once delivery, exactly one order.

Each order goes out with a Return Address (``reply_to`` the ``crm-replies`` queue,
``correlation_id`` ``crm-order-<id>``). The adapter consumes the store's answers there
and hands each to the CRM (``crm.set_order_status``), so the sales rep sees whether the
order was accepted (and as which order) or refused (and why).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import xmlrpc.client
from typing import Any, ClassVar

import aiohttp

from kiltstore.bus import Apply, Incoming
from kiltstore.domain import Source
from kiltstore.replies import OrderReply
from kiltstore.services.base import Service
from kiltstore.topology import INTAKE
from kiltstore.translators import CRM_CONTENT_TYPE, CRM_TYPE

log = logging.getLogger("kiltstore.crm_adapter")

SCHEMA = """
CREATE TABLE IF NOT EXISTS cursor (
    name    TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
"""
BATCH = 50
HTTP_TIMEOUT = 10.0
CORRELATION_PREFIX = "crm-order-"


def record_body(record: dict[str, Any]) -> bytes:
    """The message body for a CRM order record: the record as XML-RPC."""
    return xmlrpc.client.dumps((record,), methodname="crm.order", allow_none=True).encode()


class XMLRPCClient:
    """An asyncio XML-RPC client (``xmlrpc.client``'s marshalling over aiohttp)."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def call(self, method: str, *params: Any) -> Any:
        body = xmlrpc.client.dumps(params, methodname=method, allow_none=True)
        async with self.session.post(
            self.url,
            data=body.encode(),
            headers={"Content-Type": "text/xml"},
            timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT),
        ) as response:
            response.raise_for_status()
            text = await response.text()
        result, _ = xmlrpc.client.loads(text)  # raises Fault for a fault response
        return result[0]


class CRMAdapter(Service):
    name: ClassVar[str] = "crm-adapter"
    schema: ClassVar[str] = SCHEMA

    async def setup(self) -> None:
        self.session = aiohttp.ClientSession()
        self.crm = XMLRPCClient(self.settings.crm_url, self.session)
        self.the_bus.consume(
            "crm-replies", self.db, self.handle_reply, prefetch=self.settings.prefetch
        )
        self._task = asyncio.get_running_loop().create_task(self._poll_forever())

    @property
    def last_id(self) -> int:
        row = self.db.query_one("SELECT last_id FROM cursor WHERE name = 'orders'")
        return int(row["last_id"]) if row else 0

    async def poll_once(self) -> int:
        """Publish the orders entered since the last poll; return how many."""
        records = await self.crm.call("crm.orders_since", self.last_id, BATCH)
        for record in records:
            await self.the_bus.publish(
                INTAKE,
                str(Source.CRM),
                record_body(record),
                message_id=f"{CORRELATION_PREFIX}{record['id']}",
                content_type=CRM_CONTENT_TYPE,
                type=CRM_TYPE,
                reply_to=self.topology.queue("crm-replies"),
                correlation_id=f"{CORRELATION_PREFIX}{record['id']}",
            )
            with self.db.transaction() as tx:
                tx.execute(
                    "INSERT INTO cursor (name, last_id) VALUES ('orders', ?)"
                    " ON CONFLICT (name) DO UPDATE SET last_id = excluded.last_id",
                    (int(record["id"]),),
                )
        return len(records)

    async def handle_reply(self, incoming: Incoming) -> Apply | None:
        """Tell the CRM the store's answer for one of its orders (idempotent: the CRM
        keeps the latest answer)."""
        reply = OrderReply.from_json(incoming.body)
        if not reply.correlation_id.startswith(CORRELATION_PREFIX):
            raise ValueError(f"not a CRM order's correlation id: {reply.correlation_id!r}")
        crm_id = int(reply.correlation_id.removeprefix(CORRELATION_PREFIX))
        await self.crm.call(
            "crm.set_order_status", crm_id, reply.status, reply.order_id, list(reply.reasons)
        )
        return None

    async def _poll_forever(self) -> None:
        while True:
            try:
                count = await self.poll_once()
                if count == BATCH:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("crm-adapter: polling %s failed (%r)", self.settings.crm_url, exc)
            await asyncio.sleep(self.settings.poll_interval)

    async def stop(self) -> None:
        task: asyncio.Task[None] | None = getattr(self, "_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session: aiohttp.ClientSession | None = getattr(self, "session", None)
        if session is not None:
            await session.close()
        await super().stop()
