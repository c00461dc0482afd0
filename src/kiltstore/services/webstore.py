"""The web store: customers check out here and follow their order's status live.

A Message Endpoint: a checkout is saved in the store's own database together with
its message (the outbox) in one transaction, then published to ``intake`` with
routing key ``web`` in the store's own format (``webstore.checkout.v1`` JSON).

It also subscribes to the status of web orders (``order.*.web``, an Idempotent
Receiver) and pushes each change to the order's status page with Server-Sent Events.

An order's status page is at an unguessable address, ``/orders/<token>`` (a random
``secrets.token_urlsafe`` per order, given to the customer after checkout and in the
e-mails): it shows the customer's name and address. Numbers are not addresses.
The stored order keeps the card's last four digits only; the number travels in the
checkout message (whose copy in the outbox is forgotten once it is sent).
"""

from __future__ import annotations

import json
import secrets
from typing import Any, ClassVar

from aiohttp import web

from kiltstore.bus import Apply, Incoming
from kiltstore.domain import (
    SHIPPING_COUNTRIES,
    TARTANS,
    OrderEvent,
    Source,
    State,
    now_iso,
)
from kiltstore.limits import length_problems
from kiltstore.services.base import Service
from kiltstore.services.validator import parse_event
from kiltstore.storage import Transaction
from kiltstore.topology import INTAKE
from kiltstore.translators import WEB_CONTENT_TYPE, WEB_TYPE
from kiltstore.web import EventHub, render, render_string

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    number   INTEGER PRIMARY KEY AUTOINCREMENT,
    created  TEXT NOT NULL,
    document TEXT NOT NULL,
    state    TEXT NOT NULL,
    updated  TEXT NOT NULL,
    token    TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS history (
    number  INTEGER NOT NULL,
    state   TEXT NOT NULL,
    at      TEXT NOT NULL,
    reasons TEXT NOT NULL,
    detail  TEXT NOT NULL,
    PRIMARY KEY (number, state)
);
"""

PLACED = "placed"  # saved by the web store, not yet seen by the rest of the store
_RANK = {PLACED: -1, **{str(state): rank for rank, state in enumerate(State)}}

#: What the status page says for each state.
STATUS_TEXT: dict[str, str] = {
    PLACED: "Order placed: we're checking it.",
    State.RECEIVED: "Order received: we're checking it.",
    State.INVALID: "We can't make this order as it stands.",
    State.VALID: "Order checked: taking payment.",
    State.APPROVED: "Payment approved: MacGrudder is making your kilt.",
    State.DECLINED: "Your payment was declined.",
    State.FINISHED: "Your kilt is finished and on its way to our shipping partner.",
    State.SHIPPED: "Shipped!",
}

#: Limits of the form's fields: name -> (label, kind of :data:`kiltstore.limits.MAX_LENGTH`).
FORM_LIMITS: dict[str, tuple[str, str]] = {
    "tartan": ("Tartan", "tartan"),
    "size": ("Size", "size"),
    "full_name": ("Name", "name"),
    "email": ("E-mail", "email"),
    "phone": ("Phone", "phone"),
    "line1": ("Street", "street"),
    "line2": ("Street (second line)", "street"),
    "town": ("Town", "city"),
    "postcode": ("Postcode", "postcode"),
    "country": ("Country", "country"),
    "card_number": ("Card number", "card"),
    "notes": ("Notes", "notes"),
}
#: Token of an order's status page: ``secrets.token_urlsafe(TOKEN_BYTES)``.
TOKEN_BYTES = 16
TOKEN_ROUTE = "{token:[A-Za-z0-9_-]{20,}}"

FORM_FIELDS = (
    "tartan", "size", "waist_cm", "hip_cm", "length_cm", "qty", "full_name", "email", "phone",
    "line1", "line2", "town", "postcode", "country", "card_number", "notes",
)


class FormError(ValueError):
    pass


def checkout_document(number: int, form: dict[str, str], token: str = "") -> dict[str, Any]:
    """The web store's own order format (``webstore.checkout.v1``) for a checkout form
    (``status_token``: the secret part of the order's status page address)."""
    problems = length_problems(form, FORM_LIMITS)
    if problems:
        raise FormError("; ".join(problems))
    try:
        waist = float(form.get("waist_cm", ""))
        hip = float(form.get("hip_cm", ""))
        length = float(form.get("length_cm", ""))
        qty = int(form.get("qty", "1") or "1")
    except ValueError:
        raise FormError("measurements and quantity must be numbers") from None
    tartan = form.get("tartan", "")
    return {
        "order_number": number,
        "created": now_iso(),
        "customer": {
            "full_name": form.get("full_name", ""),
            "email": form.get("email", ""),
            "phone": form.get("phone", ""),
        },
        "ship_to": {
            "line1": form.get("line1", ""),
            "line2": form.get("line2", ""),
            "town": form.get("town", ""),
            "postcode": form.get("postcode", ""),
            "country": form.get("country", ""),
        },
        "cart": [
            {
                "tartan": tartan,
                "size": form.get("size", ""),
                "waist_cm": waist,
                "hip_cm": hip,
                "length_cm": length,
                "qty": qty,
                "price_pence": TARTANS.get(tartan, 0),
            }
        ],
        "card_number": form.get("card_number", ""),
        "notes": form.get("notes", ""),
        "status_token": token,
    }


def stored_document(document: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps of a checkout: the card's last four digits, not its number."""
    kept = dict(document)
    digits = "".join(ch for ch in str(kept.pop("card_number", "")) if ch.isdigit())
    kept["card_last4"] = digits[-4:]
    return kept


class WebStore(Service):
    name: ClassVar[str] = "webstore"
    schema: ClassVar[str] = SCHEMA
    site_label: ClassVar[str] = "web store"

    async def setup(self) -> None:
        self.hub = EventHub()
        self.the_bus.consume(
            "webstore-status", self.db, self.handle, prefetch=self.settings.prefetch
        )
        self.the_bus.on_handled.append(self._notify)
        assert self.app is not None
        self.app.router.add_get("/", self.shop)
        self.app.router.add_post("/checkout", self.checkout)
        self.app.router.add_get(f"/orders/{TOKEN_ROUTE}", self.status_page)
        self.app.router.add_get(f"/orders/{TOKEN_ROUTE}/status", self.status_fragment)
        self.app.router.add_get(f"/orders/{TOKEN_ROUTE}.json", self.status_json)
        self.app.router.add_get("/events", self.hub.stream)
        self.upgrade()

    def upgrade(self) -> None:
        """Orders saved by an older version: give them a token, forget their card."""
        self.db.add_columns("orders", {"token": "TEXT NOT NULL DEFAULT ''"})
        for row in self.db.query(
            "SELECT number, document FROM orders WHERE token = '' OR document LIKE ?",
            ('%"card_number"%',),
        ):
            document = json.loads(row["document"] or "{}")
            with self.db.transaction() as tx:
                tx.execute(
                    "UPDATE orders SET token = CASE token WHEN '' THEN ? ELSE token END,"
                    " document = ? WHERE number = ?",
                    (secrets.token_urlsafe(TOKEN_BYTES), json.dumps(stored_document(document)),
                     row["number"]),
                )

    # -- checkout -----------------------------------------------------------------------

    def place_order(self, form: dict[str, str]) -> str:
        """Save the order and its message in one transaction; return its status page's
        token. Raise :class:`FormError` for a form that can't be an order."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self.db.transaction() as tx:
            now = now_iso()
            cursor = tx.execute(
                "INSERT INTO orders (created, document, state, updated, token)"
                " VALUES (?, '', ?, ?, ?)",
                (now, PLACED, now, token),
            )
            number = int(cursor.lastrowid or 0)
            document = checkout_document(number, form, token)
            body = json.dumps(document).encode()
            tx.execute(
                "UPDATE orders SET document = ? WHERE number = ?",
                (json.dumps(stored_document(document)), number),
            )
            tx.execute(
                "INSERT INTO history VALUES (?, ?, ?, '[]', '{}')", (number, PLACED, now)
            )
            tx.publish(
                INTAKE,
                str(Source.WEB),
                body,
                message_id=f"web-{number}",
                content_type=WEB_CONTENT_TYPE,
                type=WEB_TYPE,
            )
        return token

    async def shop(self, request: web.Request) -> web.Response:
        return render("shop.html", form={}, error="")

    async def checkout(self, request: web.Request) -> web.Response:
        posted = await request.post()
        form = {name: str(posted.get(name, "")).strip() for name in FORM_FIELDS}
        try:
            token = self.place_order(form)
        except FormError as exc:
            return render("shop.html", form=form, error=str(exc), http_status=400)
        self.the_bus.flush_soon(self.db)  # saved; published now or when the broker is back
        raise web.HTTPSeeOther(f"/orders/{token}")

    # -- status -------------------------------------------------------------------------

    async def handle(self, incoming: Incoming) -> Apply | None:
        event = parse_event(incoming)
        if event.order.source is not Source.WEB:
            return None
        number = int(event.order.source_ref)

        def apply(tx: Transaction) -> None:
            tx.execute(
                "INSERT OR IGNORE INTO history VALUES (?, ?, ?, ?, ?)",
                (number, str(event.state), event.at, json.dumps(list(event.reasons)),
                 json.dumps(event.detail)),
            )
            row = tx.execute("SELECT state FROM orders WHERE number = ?", (number,)).fetchone()
            if row is not None and _RANK[str(event.state)] > _RANK.get(row["state"], -1):
                tx.execute(
                    "UPDATE orders SET state = ?, updated = ? WHERE number = ?",
                    (str(event.state), event.at, number),
                )

        return apply

    def _notify(self, _queue: str, incoming: Incoming) -> None:
        try:
            event = OrderEvent.from_json(incoming.body)
        except ValueError:
            return
        if event.order.source is Source.WEB:
            self.hub.publish("status", {"number": int(event.order.source_ref),
                                        "state": str(event.state)})

    def status(self, token: str) -> dict[str, Any] | None:
        """The order whose status page has ``token``, or None."""
        row = self.db.query_one("SELECT * FROM orders WHERE token = ?", (token,))
        if row is None:
            return None
        number = int(row["number"])
        history = [
            {
                "state": h["state"],
                "at": h["at"],
                "reasons": json.loads(h["reasons"]),
                "detail": json.loads(h["detail"]),
                "text": STATUS_TEXT.get(h["state"], h["state"]),
            }
            for h in self.db.query(
                "SELECT * FROM history WHERE number = ? ORDER BY at, rowid", (number,)
            )
        ]
        latest = next((h for h in history if h["state"] == row["state"]), None)
        return {
            "number": number,
            "order_id": f"web-{number}",
            "path": f"/orders/{token}",
            "state": row["state"],
            "text": STATUS_TEXT.get(row["state"], row["state"]),
            "reasons": latest["reasons"] if latest else [],
            "detail": latest["detail"] if latest else {},
            "history": history,
            "document": json.loads(row["document"]),
            "countries": SHIPPING_COUNTRIES,
        }

    def _status_or_404(self, request: web.Request) -> dict[str, Any]:
        status = self.status(request.match_info["token"])
        if status is None:
            raise web.HTTPNotFound(text="no such order")
        return status

    async def status_page(self, request: web.Request) -> web.Response:
        return render("order_status.html", status=self._status_or_404(request))

    async def status_fragment(self, request: web.Request) -> web.Response:
        return web.Response(
            text=render_string("order_status_body.html", status=self._status_or_404(request)),
            content_type="text/html",
        )

    async def status_json(self, request: web.Request) -> web.Response:
        status = self._status_or_404(request)
        status.pop("countries")
        return web.json_response(status)
