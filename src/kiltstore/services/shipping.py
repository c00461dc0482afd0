"""Shipping: a subscriber to finished kilts; records a shipment and prints a label.

An Idempotent Receiver on the ``shipping`` queue (``order.finished.*``). The shipment
row, the ``order.shipped`` event (outbox) and the message id are stored in one
transaction, so a redelivered ``finished`` event never ships twice. The label is a
text file under ``<data dir>/labels/``; writing it again is harmless (same content).
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

from kiltstore.bus import Apply, Incoming
from kiltstore.domain import SHIPPING_COUNTRIES, OrderEvent, State
from kiltstore.services.base import Service, publish_event
from kiltstore.services.validator import parse_event
from kiltstore.storage import Transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS shipments (
    order_id   TEXT PRIMARY KEY,
    tracking   TEXT NOT NULL,
    carrier    TEXT NOT NULL,
    label_path TEXT NOT NULL,
    shipped_at TEXT NOT NULL
);
"""
CARRIER = "Highland Parcels"


def tracking_number(order_id: str) -> str:
    return "HP" + hashlib.sha256(order_id.encode()).hexdigest()[:10].upper()


def label_text(event: OrderEvent, tracking: str) -> str:
    order = event.order
    address = order.address
    kilts = "\n".join(
        f"  {line.quantity} x {line.tartan} kilt, size {line.size}" for line in order.lines
    )
    return (
        f"{CARRIER}  --  tracking {tracking}\n"
        f"From: MacGrudder's Kilts, 1 Tartan Wynd, Inverness IV1 1KT, United Kingdom\n"
        f"To:   {order.customer.name}\n"
        f"      {address.street}\n"
        f"      {address.city} {address.postcode}\n"
        f"      {SHIPPING_COUNTRIES.get(address.country, address.country)}\n"
        f"Order {order.order_id}:\n{kilts}\n"
    )


class Shipping(Service):
    name: ClassVar[str] = "shipping"
    schema: ClassVar[str] = SCHEMA

    async def setup(self) -> None:
        self.labels = self.settings.data_dir / "labels"
        self.labels.mkdir(parents=True, exist_ok=True)
        self.the_bus.consume("shipping", self.db, self.handle, prefetch=self.settings.prefetch)

    def shipments(self) -> list[dict[str, str]]:
        return [dict(row) for row in self.db.query("SELECT * FROM shipments ORDER BY shipped_at")]

    async def handle(self, incoming: Incoming) -> Apply:
        event = parse_event(incoming)
        tracking = tracking_number(event.order_id)
        path = self.labels / f"{event.order_id}.txt"
        path.write_text(label_text(event, tracking))
        shipped = event.then(State.SHIPPED, detail={"tracking": tracking, "carrier": CARRIER})

        def apply(tx: Transaction) -> None:
            tx.execute(
                "INSERT INTO shipments VALUES (?, ?, ?, ?, ?)",
                (event.order_id, tracking, CARRIER, str(path), shipped.at),
            )
            publish_event(tx, shipped)

        return apply
