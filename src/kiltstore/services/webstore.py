"""The web store: customers browse, fill a basket, check out, and follow their orders.

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

From the status page a customer can pay a declined order with another card (a new
order of the same kilts), and cancel a paid order until the workshop starts it: the
store sends the workshop a Command Message (``commands`` exchange, ``cancel``; the first
step of the cancel Saga, whose compensation is billing's refund) and the page follows
the ``cancelled`` and ``refunded`` events. Every order of one e-mail address is listed
at ``/my-orders/<token>``, a secret address of its own, given only in the e-mails (sent
to that address): never on a status page, since whoever places an order chooses the
e-mail address it is placed with.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any, ClassVar

from aiohttp import web

from kiltstore.bus import Apply, Incoming
from kiltstore.domain import (
    DEFAULT_STYLE,
    SHIPPING_COUNTRIES,
    OrderEvent,
    Source,
    State,
    luhn_ok,
    now_iso,
    unit_price,
)
from kiltstore.limits import length_problems, order_problems
from kiltstore.services import basket
from kiltstore.services.base import Service
from kiltstore.services.basket import FormError, ShopPages, total_pence
from kiltstore.services.validator import parse_event
from kiltstore.services.workshop import CANCEL_TYPE, cancel_request
from kiltstore.storage import Transaction
from kiltstore.topology import CANCEL, COMMANDS, INTAKE
from kiltstore.translators import WEB_CONTENT_TYPE, WEB_TYPE, TranslationError, translate_web
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
CREATE TABLE IF NOT EXISTS customers (
    email TEXT PRIMARY KEY,
    token TEXT NOT NULL UNIQUE
);
""" + basket.SCHEMA

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
    State.STARTED: "MacGrudder has started making your kilt.",
    State.CANCELLED: "Cancelled, as you asked: we're refunding your payment.",
    State.REFUNDED: "Cancelled and refunded.",
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


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def customer_problems(form: dict[str, str]) -> list[str]:
    """What the checkout refuses on the spot (the page checks the same as you type);
    the validator checks the rest of the order."""
    problems = []
    for name, label in (("full_name", "Name"), ("line1", "Street"), ("town", "Town"),
                        ("postcode", "Postcode")):
        if not form.get(name, "").strip():
            problems.append(f"{label} is missing")
    if not _EMAIL.match(form.get("email", "")):
        problems.append("E-mail is not an e-mail address")
    digits = re.sub(r"[ -]", "", form.get("card_number", ""))
    if not luhn_ok(digits):
        problems.append("Card number is not a valid card number")
    return problems


def checkout_document(
    number: int,
    form: dict[str, str],
    token: str = "",
    lines: list[dict[str, Any]] | None = None,
    customer_token: str = "",
) -> dict[str, Any]:
    """The web store's own order format (``webstore.checkout.v1``) for a checkout form
    and the basket's ``lines`` (without them: the one kilt described by the form's
    ``tartan``, ``size``... fields). ``status_token`` and ``customer_token``: the secret
    parts of the order's status page and the customer's order list addresses."""
    problems = length_problems(form, FORM_LIMITS)
    if problems:
        raise FormError("; ".join(problems))
    if lines is None:
        try:
            waist = float(form.get("waist_cm", ""))
            hip = float(form.get("hip_cm", ""))
            length = float(form.get("length_cm", ""))
            qty = int(form.get("qty", "1") or "1")
        except ValueError:
            raise FormError("measurements and quantity must be numbers") from None
        tartan = form.get("tartan", "")
        style = form.get("style", "") or DEFAULT_STYLE
        lines = [{
            "tartan": tartan,
            "style": style,
            "size": form.get("size", ""),
            "waist_cm": waist,
            "hip_cm": hip,
            "length_cm": length,
            "qty": qty,
            "price_pence": unit_price(tartan, style),
        }]
    if not lines:
        raise FormError("Your basket is empty")
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
        "cart": lines,
        "card_number": form.get("card_number", ""),
        "notes": form.get("notes", ""),
        "status_token": token,
        "customer_token": customer_token,
    }


def order_checks(document: dict[str, Any]) -> list[str]:
    """What the validator would refuse the checkout for at the first look, read as the
    store reads it: the lengths of the canonical fields (a street joined from its two
    lines) and the number of kilts (:func:`kiltstore.limits.order_problems`)."""
    try:
        return order_problems(translate_web(json.dumps(document).encode()))
    except TranslationError as exc:
        return [exc.reason]


def stored_document(document: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps of a checkout: the card's last four digits, not its number;
    not the secret of the customer's order list (the e-mails carry it)."""
    kept = dict(document)
    kept.pop("customer_token", None)
    if "card_number" in kept:
        digits = "".join(ch for ch in str(kept.pop("card_number")) if ch.isdigit())
        kept["card_last4"] = digits[-4:]
    return kept


def _public_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """An event's detail as an order's status page may show it: without the link to the
    customer's order list, which only the customer's own mailbox may see."""
    return {key: value for key, value in detail.items() if key != "orders_path"}


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
        self.pages = ShopPages(self.db)
        self.pages.add_routes(self.app)
        self.app.router.add_get("/checkout", self.checkout_page)
        self.app.router.add_post("/checkout", self.checkout)
        self.app.router.add_post(f"/orders/{TOKEN_ROUTE}/cancel", self.cancel)
        self.app.router.add_post(f"/orders/{TOKEN_ROUTE}/pay", self.pay_again)
        self.app.router.add_get(f"/my-orders/{TOKEN_ROUTE}", self.my_orders)
        self.app.router.add_get(f"/orders/{TOKEN_ROUTE}", self.status_page)
        self.app.router.add_get(f"/orders/{TOKEN_ROUTE}/status", self.status_fragment)
        self.app.router.add_get(f"/orders/{TOKEN_ROUTE}.json", self.status_json)
        self.app.router.add_get("/events", self.hub.stream)
        self.upgrade()

    def upgrade(self) -> None:
        """Orders saved by an older version: give them a token, forget their card and the
        secret of the customer's order list."""
        self.db.add_columns("orders", {
            "token": "TEXT NOT NULL DEFAULT ''",
            "email": "TEXT NOT NULL DEFAULT ''",
            "cancel_requested": "TEXT NOT NULL DEFAULT ''",
            "paid_again_as": "TEXT NOT NULL DEFAULT ''",
        })
        for row in self.db.query(
            "SELECT number, document FROM orders"
            " WHERE token = '' OR document LIKE ? OR document LIKE ?",
            ('%"card_number"%', '%"customer_token"%'),
        ):
            document = json.loads(row["document"] or "{}")
            with self.db.transaction() as tx:
                tx.execute(
                    "UPDATE orders SET token = CASE token WHEN '' THEN ? ELSE token END,"
                    " document = ? WHERE number = ?",
                    (secrets.token_urlsafe(TOKEN_BYTES), json.dumps(stored_document(document)),
                     row["number"]),
                )
        self.db.scrub()

    # -- checkout -----------------------------------------------------------------------

    def place_order(
        self, form: dict[str, str], lines: list[dict[str, Any]] | None = None
    ) -> str:
        """Save the order and its message in one transaction; return its status page's
        token. Raise :class:`FormError` for a form that can't be an order."""
        problems = order_checks(checkout_document(0, form, lines=lines))
        if problems:
            raise FormError("; ".join(problems))
        token = secrets.token_urlsafe(TOKEN_BYTES)
        email = form.get("email", "").strip().lower()
        with self.db.transaction() as tx:
            now = now_iso()
            cursor = tx.execute(
                "INSERT INTO orders (created, document, state, updated, token, email)"
                " VALUES (?, '', ?, ?, ?, ?)",
                (now, PLACED, now, token, email),
            )
            number = int(cursor.lastrowid or 0)
            tx.execute("INSERT OR IGNORE INTO customers VALUES (?, ?)",
                       (email, secrets.token_urlsafe(TOKEN_BYTES)))
            customer_token = tx.execute(
                "SELECT token FROM customers WHERE email = ?", (email,)).fetchone()["token"]
            document = checkout_document(number, form, token, lines, customer_token)
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

    def _checkout_view(
        self, request: web.Request, form: dict[str, str], error: str, status: int = 200
    ) -> web.Response:
        lines = self.pages.basket.lines(basket.basket_id(request))
        return render("checkout.html", form=form, error=error, lines=lines,
                      total=total_pence(lines), basket_count=sum(int(x["qty"]) for x in lines),
                      http_status=status)

    async def checkout_page(self, request: web.Request) -> web.Response:
        return self._checkout_view(request, {}, "")

    async def checkout(self, request: web.Request) -> web.Response:
        """Place an order of the basket (or, from a form with a ``tartan`` field, of the
        one kilt it describes). A refused form comes back as typed, with the reasons."""
        posted = await request.post()
        form = {name: str(posted.get(name, "")).strip() for name in FORM_FIELDS}
        form["style"] = str(posted.get("style", "")).strip()[:60]
        the_basket = basket.basket_id(request)
        lines = None if "tartan" in posted else self.pages.basket.lines(the_basket)
        try:
            problems = length_problems(form, FORM_LIMITS) or customer_problems(form)
            if problems:
                raise FormError("; ".join(problems))
            token = self.place_order(form, lines)
        except FormError as exc:
            return self._checkout_view(request, form, str(exc), 400)
        if lines is not None:
            self.pages.basket.save(the_basket, [])
        self.the_bus.flush_soon(self.db)  # saved; published now or when the broker is back
        raise web.HTTPSeeOther(f"/orders/{token}")

    # -- after checkout: cancel, pay with another card, the customer's orders ------------

    def request_cancel(self, token: str) -> bool:
        """Record the customer's cancellation and queue the Command Message to the
        workshop (once: asking again changes nothing); False unless the order is paid
        and not yet started as far as the store knows."""
        with self.db.transaction() as tx:
            row = tx.execute("SELECT * FROM orders WHERE token = ?", (token,)).fetchone()
            if row is None or row["state"] != str(State.APPROVED):
                return False
            if row["cancel_requested"]:
                return True
            now = now_iso()
            order_id = f"web-{row['number']}"
            tx.execute("UPDATE orders SET cancel_requested = ? WHERE number = ?",
                       (now, row["number"]))
            tx.publish(COMMANDS, CANCEL, cancel_request(order_id, now),
                       message_id=f"{order_id}:cancel", content_type="application/json",
                       type=CANCEL_TYPE)
        return True

    async def cancel(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        self._status_or_404(request)
        if not self.request_cancel(token):
            raise web.HTTPConflict(text="this order can no longer be cancelled")
        self.the_bus.flush_soon(self.db)
        self.hub.publish("status", {"number": self._status_or_404(request)["number"],
                                    "state": "cancel-requested"})
        raise web.HTTPSeeOther(f"/orders/{token}")

    async def pay_again(self, request: web.Request) -> web.Response:
        """A declined order, paid with another card: a new order of the same kilts."""
        status = self._status_or_404(request)
        posted = await request.post()
        card = str(posted.get("card_number", "")).strip()
        if status["state"] != str(State.DECLINED) or status["paid_again_as"]:
            raise web.HTTPConflict(text="this order can't be paid again")
        document = status["document"]
        form = {"full_name": document["customer"]["full_name"],
                "email": document["customer"]["email"],
                "phone": document["customer"]["phone"], **document["ship_to"],
                "card_number": card, "notes": document.get("notes", "")}
        try:
            problems = length_problems(form, FORM_LIMITS) or customer_problems(form)
            if problems:
                raise FormError("; ".join(problems))
            new_token = self.place_order(form, list(document["cart"]))
        except FormError as exc:
            return render("order_status.html", status=status, pay_error=str(exc),
                          card=card, http_status=400)
        with self.db.transaction() as tx:
            tx.execute("UPDATE orders SET paid_again_as = ? WHERE token = ?",
                       (new_token, status["token"]))
        self.the_bus.flush_soon(self.db)
        raise web.HTTPSeeOther(f"/orders/{new_token}")

    def customer_orders(self, customer_token: str) -> list[dict[str, Any]] | None:
        row = self.db.query_one("SELECT email FROM customers WHERE token = ?", (customer_token,))
        if row is None:
            return None
        orders = []
        for order in self.db.query(
            "SELECT * FROM orders WHERE email = ? ORDER BY number DESC", (row["email"],)
        ):
            document = json.loads(order["document"] or "{}")
            orders.append({
                "number": order["number"], "path": f"/orders/{order['token']}",
                "created": order["created"], "state": order["state"],
                "text": STATUS_TEXT.get(order["state"], order["state"]),
                "cart": document.get("cart", []), "total": total_pence(document.get("cart", [])),
            })
        return orders

    async def my_orders(self, request: web.Request) -> web.Response:
        orders = self.customer_orders(request.match_info["token"])
        if orders is None:
            raise web.HTTPNotFound(text="no such customer")
        return render("my_orders.html", orders=orders, basket_count=0)

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
                "detail": _public_detail(json.loads(h["detail"])),
                "text": STATUS_TEXT.get(h["state"], h["state"]),
            }
            for h in self.db.query(
                "SELECT * FROM history WHERE number = ? ORDER BY at, rowid", (number,)
            )
        ]
        latest = next((h for h in history if h["state"] == row["state"]), None)
        document = stored_document(json.loads(row["document"]))
        return {
            "number": number,
            "token": token,
            "created": row["created"],
            "total": total_pence(document.get("cart", [])),
            "can_cancel": row["state"] == str(State.APPROVED) and not row["cancel_requested"],
            "cancel_requested": row["cancel_requested"],
            "can_pay_again": row["state"] == str(State.DECLINED) and not row["paid_again_as"],
            "paid_again_as": row["paid_again_as"],
            "order_id": f"web-{number}",
            "path": f"/orders/{token}",
            "state": row["state"],
            "text": STATUS_TEXT.get(row["state"], row["state"]),
            "reasons": latest["reasons"] if latest else [],
            "detail": latest["detail"] if latest else {},
            "history": history,
            "document": document,
            "countries": SHIPPING_COUNTRIES,
        }

    def _status_or_404(self, request: web.Request) -> dict[str, Any]:
        status = self.status(request.match_info["token"])
        if status is None:
            raise web.HTTPNotFound(text="no such order")
        return status

    async def status_page(self, request: web.Request) -> web.Response:
        return render("order_status.html", status=self._status_or_404(request),
                      pay_error="", card="")

    async def status_fragment(self, request: web.Request) -> web.Response:
        return web.Response(
            text=render_string("order_status_body.html", status=self._status_or_404(request),
                               pay_error="", card=""),
            content_type="text/html",
        )

    async def status_json(self, request: web.Request) -> web.Response:
        status = self._status_or_404(request)
        for private in ("countries", "token"):
            status.pop(private)
        return web.json_response(status)
