"""The payment gateway: a small HTTP service that approves or declines charges.

It stands in for a card processor outside the store, so it knows nothing of
messaging. Its answers are deterministic, by card number (like processors' test
cards):

=============================  ===========================================
card                           answer
=============================  ===========================================
fails the Luhn check           declined: invalid card number
ends in 0002                   declined: card declined by the issuer
ends in 9995                   declined: insufficient funds
ends in 0069                   declined: expired card
amount over £10,000            declined: amount over the card's limit
anything else (4242 4242...)   approved
=============================  ===========================================

``POST /charges`` takes JSON ``{"idempotency_key", "amount_pence", "card_number",
"description"}``. A repeated idempotency key returns the first answer and charges
nothing more (``"replayed": true``), so a client that retries after a crash or a
timeout never charges twice. ``GET /charges`` lists the charges (with how many
requests each key got); ``GET /`` shows them as a page. An answer carries
``card_token``, the gateway's token for the card, which the store keeps in place of the
card number (with the last four digits).

``POST /refunds`` takes JSON ``{"idempotency_key", "charge_id", "amount_pence"}`` and
gives back (part of) an approved charge: ``{"status": "refunded", "refund_id", ...}``,
or ``{"status": "refused", "reason"}`` (no such approved charge, more than was charged).
A repeated idempotency key returns the first answer and refunds nothing more.

``POST /outage`` with ``{"down": true}`` makes the gateway answer ``503`` to every charge
until ``{"down": false}``: an outage of the processor.

``POST /hold`` with ``{"hold": true}`` makes the gateway record charges but hold the
answers back until ``{"hold": false}``: a slow processor, used to crash the billing
service while it waits for an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from typing import Any, ClassVar

from aiohttp import web

from kiltstore.domain import luhn_ok
from kiltstore.services.base import Service
from kiltstore.web import render

LIMIT_PENCE = 1_000_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    idempotency_key TEXT PRIMARY KEY,
    charge_id       TEXT NOT NULL,
    amount_pence    INTEGER NOT NULL,
    card_last4      TEXT NOT NULL,
    status          TEXT NOT NULL,
    reason          TEXT NOT NULL,
    description     TEXT NOT NULL,
    requests        INTEGER NOT NULL,
    created_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    idempotency_key TEXT PRIMARY KEY,
    refund_id       TEXT NOT NULL,
    charge_id       TEXT NOT NULL,
    amount_pence    INTEGER NOT NULL,
    status          TEXT NOT NULL,
    reason          TEXT NOT NULL,
    requests        INTEGER NOT NULL,
    created_at      REAL NOT NULL
);
"""


def card_token(charge_id: str) -> str:
    """The gateway's token for the card of a charge (reveals nothing of the number)."""
    return "tok_" + hashlib.sha256(f"token:{charge_id}".encode()).hexdigest()[:24]


def decide(card_number: str, amount_pence: int) -> tuple[str, str]:
    """(status, reason) for a charge: ``approved`` or ``declined``."""
    if not luhn_ok(card_number):
        return "declined", "invalid card number"
    if card_number.endswith("0002"):
        return "declined", "card declined by the issuer"
    if card_number.endswith("9995"):
        return "declined", "insufficient funds"
    if card_number.endswith("0069"):
        return "declined", "expired card"
    if amount_pence > LIMIT_PENCE:
        return "declined", "amount over the card's limit"
    return "approved", ""


class PaymentGateway(Service):
    name: ClassVar[str] = "payment-gateway"
    schema: ClassVar[str] = SCHEMA
    uses_bus: ClassVar[bool] = False
    site_label: ClassVar[str] = "payment gateway"

    async def setup(self) -> None:
        self._released = asyncio.Event()
        self._released.set()
        self.waiting = 0
        self.down = False
        assert self.app is not None
        self.app.router.add_get("/", self.page)
        self.app.router.add_post("/charges", self.charge)
        self.app.router.add_get("/charges", self.list_charges)
        self.app.router.add_post("/refunds", self.refund)
        self.app.router.add_get("/refunds", self.list_refunds)
        self.app.router.add_post("/hold", self.hold)
        self.app.router.add_post("/outage", self.outage)

    def charges(self) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT * FROM charges ORDER BY created_at")
        return [dict(row) for row in rows]

    async def charge(self, request: web.Request) -> web.Response:
        if self.down:
            return web.json_response({"error": "service unavailable"}, status=503)
        try:
            data = await request.json()
            key = str(data["idempotency_key"])
            amount = int(data["amount_pence"])
            card = str(data["card_number"])
            description = str(data.get("description", ""))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        with self.db.transaction() as tx:
            row = tx.execute(
                "SELECT * FROM charges WHERE idempotency_key = ?", (key,)
            ).fetchone()
            replayed = row is not None
            if row is None:
                status, reason = decide(card, amount)
                tx.execute(
                    "INSERT INTO charges VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
                    (key, "ch_" + uuid.uuid4().hex[:16], amount, card[-4:], status, reason,
                     description, time.time()),
                )
            else:
                tx.execute(
                    "UPDATE charges SET requests = requests + 1 WHERE idempotency_key = ?",
                    (key,),
                )
            row = tx.execute(
                "SELECT * FROM charges WHERE idempotency_key = ?", (key,)
            ).fetchone()
        if not self._released.is_set():
            # The charge is made; the answer waits (a slow processor).
            self.waiting += 1
            try:
                await self._released.wait()
            finally:
                self.waiting -= 1
        return web.json_response(
            {
                "charge_id": row["charge_id"],
                "status": row["status"],
                "reason": row["reason"],
                "amount_pence": row["amount_pence"],
                "card_token": card_token(row["charge_id"]),
                "card_last4": row["card_last4"],
                "replayed": replayed,
            }
        )

    def refunds(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.db.query("SELECT * FROM refunds ORDER BY created_at")]

    async def refund(self, request: web.Request) -> web.Response:
        if self.down:
            return web.json_response({"error": "service unavailable"}, status=503)
        try:
            data = await request.json()
            key = str(data["idempotency_key"])
            charge_id = str(data["charge_id"])
            amount = int(data["amount_pence"])
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        with self.db.transaction() as tx:
            row = tx.execute("SELECT * FROM refunds WHERE idempotency_key = ?", (key,)).fetchone()
            replayed = row is not None
            if row is None:
                charge = tx.execute(
                    "SELECT * FROM charges WHERE charge_id = ?", (charge_id,)
                ).fetchone()
                refunded = tx.execute(
                    "SELECT COALESCE(SUM(amount_pence), 0) FROM refunds"
                    " WHERE charge_id = ? AND status = 'refunded'", (charge_id,),
                ).fetchone()[0]
                status, reason = "refunded", ""
                if charge is None or charge["status"] != "approved":
                    status, reason = "refused", "no such approved charge"
                elif amount <= 0 or amount + refunded > charge["amount_pence"]:
                    status, reason = "refused", "more than was charged"
                tx.execute(
                    "INSERT INTO refunds VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
                    (key, "re_" + uuid.uuid4().hex[:16], charge_id, amount, status, reason,
                     time.time()),
                )
            else:
                tx.execute("UPDATE refunds SET requests = requests + 1 WHERE idempotency_key = ?",
                           (key,))
            row = tx.execute("SELECT * FROM refunds WHERE idempotency_key = ?", (key,)).fetchone()
        return web.json_response({**dict(row), "replayed": replayed})

    async def list_refunds(self, request: web.Request) -> web.Response:
        return web.json_response({"refunds": self.refunds()})

    async def list_charges(self, request: web.Request) -> web.Response:
        return web.json_response({"charges": self.charges(), "waiting": self.waiting})

    async def hold(self, request: web.Request) -> web.Response:
        data = json.loads(await request.text() or "{}")
        if data.get("hold"):
            self._released.clear()
        else:
            self._released.set()
        return web.json_response({"hold": not self._released.is_set()})

    async def outage(self, request: web.Request) -> web.Response:
        data = json.loads(await request.text() or "{}")
        self.down = bool(data.get("down"))
        return web.json_response({"down": self.down})

    async def page(self, request: web.Request) -> web.Response:
        return render("gateway.html", charges=self.charges(), refunds=self.refunds(),
                      held=not self._released.is_set())

    async def stopped(self) -> None:
        released: asyncio.Event | None = getattr(self, "_released", None)
        if released is not None:
            released.set()
