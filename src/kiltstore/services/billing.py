"""Billing: valid orders are charged through the payment gateway.

An Idempotent Receiver on the ``billing`` queue (``order.valid.*``). For each order it
asks the gateway to charge the total, with the order id as the idempotency key, then
stores the answer, the ``order.approved`` or ``order.declined`` event (outbox) and the
message id in one transaction, and only then acks.

If billing dies after the gateway charged but before the transaction, the message is
redelivered and the gateway, seeing the same idempotency key, answers with the first
charge instead of charging again: the customer pays once. A gateway that can't be
reached is a transient failure: the message is retried after a back-off delay.

Billing also compensates: a cancelled order (``order.cancelled.*``, published by the
workshop when a customer cancels before it started: the Saga's first step) is refunded
through the gateway, with ``refund-<order id>`` as the idempotency key, and
``order.refunded`` follows. Refunding twice refunds once.

The order's source, if it gave a Return Address (the phone form, the CRM), is told
the outcome: approved, or declined with the reason.

From here on the order carries the gateway's card token and the last four digits, never
the card number: the ``approved`` and ``declined`` events and everything after them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import aiohttp

from kiltstore.bus import Apply, Incoming
from kiltstore.domain import OrderEvent, State
from kiltstore.replies import APPROVED, DECLINED, OrderReply, publish_reply
from kiltstore.services.base import Service, publish_event
from kiltstore.services.validator import parse_event
from kiltstore.storage import Transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    order_id     TEXT PRIMARY KEY,
    charge_id    TEXT NOT NULL,
    amount_pence INTEGER NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    order_id     TEXT PRIMARY KEY,
    refund_id    TEXT NOT NULL,
    charge_id    TEXT NOT NULL,
    amount_pence INTEGER NOT NULL
);
"""
HTTP_TIMEOUT = 30.0


class GatewayError(Exception):
    """The payment gateway gave no usable answer (try again later)."""


class Billing(Service):
    name: ClassVar[str] = "billing"
    schema: ClassVar[str] = SCHEMA

    async def setup(self) -> None:
        self.session = aiohttp.ClientSession()
        # One order at a time: a crash leaves at most one charge in doubt.
        self.the_bus.consume("billing", self.db, self.handle, prefetch=1)

    async def charge(self, event: OrderEvent) -> dict[str, Any]:
        order = event.order
        answer = await self._post("/charges", {
            "idempotency_key": order.order_id,
            "amount_pence": order.total_pence,
            "card_number": order.payment.card_number,
            "description": f"MacGrudder's Kilts order {order.order_id}",
        })
        if answer.get("status") not in ("approved", "declined"):
            raise GatewayError(f"gateway gave an unknown answer: {answer!r}")
        return answer

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self.session.post(
                self.settings.payment_url.rstrip("/") + path,
                json=payload,
                timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT),
            ) as response:
                if response.status != 200:
                    raise GatewayError(f"gateway answered HTTP {response.status}")
                answer: dict[str, Any] = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayError(f"gateway unreachable: {exc!r}") from exc
        return answer

    async def refund(self, event: OrderEvent) -> Apply:
        """The Saga's compensation: give back the charge of a cancelled order."""
        charge_id = event.detail.get("charge_id", "")
        if not charge_id:
            raise ValueError(f"cancelled order {event.order_id} has no charge to refund")
        answer = await self._post("/refunds", {
            "idempotency_key": f"refund-{event.order_id}",
            "charge_id": charge_id,
            "amount_pence": event.order.total_pence,
        })
        if answer.get("status") != "refunded":
            raise GatewayError(f"gateway did not refund: {answer!r}")
        refunded = event.then(State.REFUNDED, detail={"refund_id": str(answer["refund_id"])})

        def apply(tx: Transaction) -> None:
            tx.execute("INSERT INTO refunds VALUES (?, ?, ?, ?)",
                       (event.order_id, answer["refund_id"], charge_id, event.order.total_pence))
            publish_event(tx, refunded)

        return apply

    async def handle(self, incoming: Incoming) -> Apply:
        event = parse_event(incoming)
        if event.state is State.CANCELLED:
            return await self.refund(event)
        answer = await self.charge(event)
        token = str(answer.get("card_token", ""))
        event = event.with_order(
            replace(event.order, payment=event.order.payment.tokenized(token))
        )
        if answer["status"] == "approved":
            outcome = event.then(State.APPROVED, detail={"charge_id": answer["charge_id"]})
        else:
            outcome = event.then(
                State.DECLINED,
                reasons=(f"payment declined: {answer['reason']}",),
                detail={"charge_id": answer["charge_id"]},
            )

        def apply(tx: Transaction) -> None:
            tx.execute(
                "INSERT INTO charges VALUES (?, ?, ?, ?, ?)",
                (event.order_id, answer["charge_id"], event.order.total_pence,
                 answer["status"], answer.get("reason", "")),
            )
            publish_event(tx, outcome)
            publish_reply(tx, incoming.reply_to, OrderReply(
                incoming.correlation_id,
                APPROVED if outcome.state is State.APPROVED else DECLINED,
                order_id=outcome.order_id, reasons=outcome.reasons,
            ))

        return apply

    async def stopped(self) -> None:
        session: aiohttp.ClientSession | None = getattr(self, "session", None)
        if session is not None:
            await session.close()
