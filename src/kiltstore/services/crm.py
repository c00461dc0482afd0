"""The sales rep's CRM: customers and orders behind an XML-RPC API, plus a page.

A silo of its own: it stores what the sales rep enters and knows nothing of
messaging. The CRM channel adapter (:mod:`kiltstore.services.crm_adapter`) reads new
orders through the same XML-RPC API any other client would use.

XML-RPC at ``POST /RPC2`` (any XML-RPC client, e.g. ``xmlrpc.client.ServerProxy``); the
methods and their faults are documented in docs/kiltstore.md, and by the API itself
(``system.listMethods``, ``system.methodHelp``, ``system.methodSignature``). Anything
that goes wrong is answered with an XML-RPC fault, never an HTTP error: a body that is
not XML-RPC (-32700), an unknown method (-32601), wrong arguments (-32602, or 400 for a
value the CRM refuses, with every reason), an unknown id (404), a fault of the CRM's
own (-32603).

A card number is kept only until the store has answered for the order (accepted or
refused, through the CRM adapter's ``crm.set_order_status``); then only its last four
digits remain. Pages never show it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import xmlrpc.client
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import quote
from xml.parsers.expat import ExpatError

from aiohttp import web

from kiltstore.domain import TARTANS, mask_cards
from kiltstore.limits import length_problems, order_problems
from kiltstore.replies import STAGE, later
from kiltstore.services.base import Service
from kiltstore.translators import TranslationError, translate_crm
from kiltstore.web import render

log = logging.getLogger("kiltstore.crm")

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    first_name TEXT NOT NULL,
    last_name  TEXT NOT NULL,
    email      TEXT NOT NULL,
    telephone  TEXT NOT NULL,
    address    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    entered     REAL NOT NULL,
    rep         TEXT NOT NULL,
    items       TEXT NOT NULL,
    card        TEXT NOT NULL,
    rep_notes   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS statuses (
    order_id       INTEGER PRIMARY KEY REFERENCES orders (id),
    status         TEXT NOT NULL,
    store_order_id TEXT NOT NULL,
    reasons        TEXT NOT NULL,
    at             REAL NOT NULL
);
"""

CUSTOMER_FIELDS = ("first_name", "last_name", "email", "telephone", "address")
ITEM_FIELDS = ("pattern", "kilt_size", "waist_in", "hips_in", "drop_in", "qty", "price")

NO_SUCH_CUSTOMER = 404
BAD_ARGUMENT = 400
#: The XML-RPC faults every server should give (the xmlrpc-epi interoperability codes).
PARSE_ERROR = -32700
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
#: Largest request body, bytes.
MAX_REQUEST = 1_000_000

CUSTOMER_LIMITS: dict[str, tuple[str, str]] = {
    "first_name": ("first_name", "name"),
    "last_name": ("last_name", "name"),
    "email": ("email", "email"),
    "telephone": ("telephone", "phone"),
}
ITEM_LIMITS: dict[str, tuple[str, str]] = {
    "pattern": ("pattern", "tartan"),
    "kilt_size": ("kilt_size", "size"),
    "waist_in": ("waist_in", "size"),
    "hips_in": ("hips_in", "size"),
    "drop_in": ("drop_in", "size"),
    "qty": ("qty", "size"),
    "price": ("price", "size"),
}
ADDRESS_LIMIT = 400
ADDRESS_LINE_LIMITS: dict[str, tuple[str, str]] = {
    "street": ("address street", "street"),
    "town": ("address town", "city"),
    "postcode": ("address postcode", "postcode"),
    "country": ("address country", "country"),
}


def address_problems(address: str) -> list[str]:
    """The lines of a CRM address (street lines, town, postcode, country) longer than the
    store takes, read as the store reads them (the street lines joined by ", ")."""
    lines = [line.strip() for line in address.splitlines() if line.strip()]
    if len(lines) < 4:
        return []  # not an address the store can read: crm.add_order says why
    *street, town, postcode, country = lines
    values = {"street": ", ".join(street), "town": town, "postcode": postcode,
              "country": country}
    return length_problems(values, ADDRESS_LINE_LIMITS)


class CRM(Service):
    name: ClassVar[str] = "crm"
    schema: ClassVar[str] = SCHEMA
    uses_bus: ClassVar[bool] = False
    site_label: ClassVar[str] = "CRM"

    async def setup(self) -> None:
        self.methods: dict[str, Callable[..., Any]] = {
            "crm.add_customer": self.add_customer,
            "crm.list_customers": self.list_customers,
            "crm.add_order": self.add_order,
            "crm.get_order": self.get_order,
            "crm.orders_since": self.orders_since,
            "crm.set_order_status": self.set_order_status,
            "system.listMethods": self.list_methods,
            "system.methodHelp": self.method_help,
            "system.methodSignature": self.method_signature,
        }
        assert self.app is not None
        self.app.router.add_post("/RPC2", self.xmlrpc)
        self.app.router.add_get("/", self.page)
        self.app.router.add_post("/customers", self.customer_form)
        self.app.router.add_post("/orders", self.order_form)

    async def started(self) -> None:
        self.urls["CRM XML-RPC"] = self.urls[self.site_label] + "/RPC2"

    # -- the API ------------------------------------------------------------------------

    def list_methods(self) -> list[str]:
        """system.listMethods() -> [name]: the methods of this API."""
        return sorted(self.methods)

    def method_help(self, name: str) -> str:
        """system.methodHelp(name) -> text: what a method does, its parameters and faults."""
        function = self.methods.get(str(name))
        if function is None:
            raise xmlrpc.client.Fault(METHOD_NOT_FOUND, f"no method {name!r}")
        return " ".join((function.__doc__ or "").split())

    def method_signature(self, name: str) -> list[list[str]]:
        """system.methodSignature(name) -> [[return type, parameter types...]]."""
        if str(name) not in self.methods:
            raise xmlrpc.client.Fault(METHOD_NOT_FOUND, f"no method {name!r}")
        return [SIGNATURES[str(name)]]

    def add_customer(self, customer: dict[str, Any]) -> int:
        """crm.add_customer(customer) -> id. customer: struct of first_name, last_name,
        email, telephone (strings) and address (one line each for street, town, postcode,
        country). Faults: 400 (no name, a field too long)."""
        if not isinstance(customer, dict):
            raise xmlrpc.client.Fault(BAD_ARGUMENT, "customer must be a struct")
        values = tuple(str(customer.get(name, "")).strip() for name in CUSTOMER_FIELDS)
        problems = length_problems(dict(zip(CUSTOMER_FIELDS, values, strict=True)),
                                   CUSTOMER_LIMITS)
        if len(values[4]) > ADDRESS_LIMIT:
            problems.append(f"address is too long ({len(values[4]):,} characters; "
                            f"at most {ADDRESS_LIMIT})")
        else:
            problems += address_problems(values[4])
        if not values[0] and not values[1]:
            problems.append("a customer needs a name")
        if problems:
            raise xmlrpc.client.Fault(BAD_ARGUMENT, "; ".join(problems))
        with self.db.transaction() as tx:
            cursor = tx.execute(
                "INSERT INTO customers (first_name, last_name, email, telephone, address)"
                " VALUES (?, ?, ?, ?, ?)",
                values,
            )
            return int(cursor.lastrowid or 0)

    def _customer(self, customer_id: int) -> dict[str, Any]:
        row = self.db.query_one("SELECT * FROM customers WHERE id = ?", (customer_id,))
        if row is None:
            raise xmlrpc.client.Fault(NO_SUCH_CUSTOMER, f"no customer {customer_id}")
        return dict(row)

    def list_customers(self) -> list[dict[str, Any]]:
        """crm.list_customers() -> [customer]: every customer, with its id."""
        return [dict(row) for row in self.db.query("SELECT * FROM customers ORDER BY id")]

    def add_order(
        self, customer_id: int, items: list[dict[str, Any]], card: str, rep_notes: str = ""
    ) -> int:
        """crm.add_order(customer_id, items, card, rep_notes) -> id. items: array of
        structs pattern (tartan), kilt_size, waist_in, hips_in, drop_in (inches), qty (a
        whole number), price (pounds, a string); card: the card number. The order is
        checked as the store will read it: faults 400 (every reason) or 404 (no such
        customer). The store's answer comes later (crm.get_order's status)."""
        customer = self._customer(int(customer_id))
        if not isinstance(items, list) or not items:
            raise xmlrpc.client.Fault(BAD_ARGUMENT, "an order needs at least one item")
        clean = []
        problems = []
        for item in items:
            if not isinstance(item, dict):
                raise xmlrpc.client.Fault(BAD_ARGUMENT, "each item must be a struct")
            clean.append({name: item.get(name, "") for name in ITEM_FIELDS})
            problems += length_problems({k: str(v) for k, v in clean[-1].items()}, ITEM_LIMITS)
        problems += length_problems({"card": str(card), "notes": str(rep_notes)},
                                    {"card": ("card", "card"), "notes": ("rep_notes", "notes")})
        if not problems:
            record = {"id": 0, "customer": customer, "items": clean, "card": str(card),
                      "rep_notes": str(rep_notes)}
            try:  # as the store will read it: refuse now what it would throw away
                problems += order_problems(translate_crm(xmlrpc.client.dumps(
                    (record,), methodname="crm.order", allow_none=True).encode()))
            except TranslationError as exc:
                problems.append(exc.reason)
        if problems:
            raise xmlrpc.client.Fault(BAD_ARGUMENT, "; ".join(problems))
        with self.db.transaction() as tx:
            cursor = tx.execute(
                "INSERT INTO orders (customer_id, entered, rep, items, card, rep_notes)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (int(customer_id), time.time(), "Hamish", json.dumps(clean), str(card),
                 str(rep_notes)),
            )
            return int(cursor.lastrowid or 0)

    def _order_record(self, row: Any, *, with_card: bool = False) -> dict[str, Any]:
        entered = dt.datetime.fromtimestamp(row["entered"], dt.UTC).replace(microsecond=0)
        status = self.db.query_one("SELECT * FROM statuses WHERE order_id = ?", (row["id"],))
        return {
            "id": row["id"],
            "entered": xmlrpc.client.DateTime(entered),
            "rep": row["rep"],
            "customer": self._customer(row["customer_id"]),
            "items": json.loads(row["items"]),
            "card": row["card"] if with_card else mask_cards(row["card"]),
            "rep_notes": row["rep_notes"],
            "status": {
                "status": status["status"] if status else "sent",
                "order_id": status["store_order_id"] if status else "",
                "reasons": json.loads(status["reasons"]) if status else [],
            },
        }

    def get_order(self, order_id: int) -> dict[str, Any]:
        """crm.get_order(id) -> order: the order with its customer inline, the card's last
        digits and status (sent, accepted with the store's order id, or refused with the
        reasons). Fault 404: no such order."""
        row = self.db.query_one("SELECT * FROM orders WHERE id = ?", (int(order_id),))
        if row is None:
            raise xmlrpc.client.Fault(NO_SUCH_CUSTOMER, f"no order {order_id}")
        return self._order_record(row)

    def orders_since(self, last_id: int, limit: int = 50) -> list[dict[str, Any]]:
        """crm.orders_since(last_id, limit=50) -> [order]: orders with an id above
        last_id, oldest first, each with its customer inline and, while the store has not
        answered for it, the card number (for the CRM channel adapter)."""
        rows = self.db.query(
            "SELECT * FROM orders WHERE id > ? ORDER BY id LIMIT ?", (int(last_id), int(limit))
        )
        return [self._order_record(row, with_card=True) for row in rows]

    def set_order_status(
        self, order_id: int, status: str, store_order_id: str, reasons: list[str]
    ) -> bool:
        """crm.set_order_status(id, status, store_order_id, reasons) -> true: the store's
        answer for an order ("accepted" or "refused"; later "approved" or "declined",
        for the payment), from the CRM channel adapter. An earlier stage's answer arriving
        after a later one changes nothing. The card number is then forgotten (its last
        four digits stay). Faults: 400, 404."""
        if status not in STAGE or not isinstance(reasons, list):
            raise xmlrpc.client.Fault(BAD_ARGUMENT, "status is accepted, refused, approved "
                                                    "or declined; reasons an array")
        with self.db.transaction() as tx:
            row = tx.execute("SELECT card FROM orders WHERE id = ?", (int(order_id),)).fetchone()
            if row is None:
                raise xmlrpc.client.Fault(NO_SUCH_CUSTOMER, f"no order {order_id}")
            known = tx.execute("SELECT status FROM statuses WHERE order_id = ?",
                               (int(order_id),)).fetchone()
            if later(status, known["status"] if known else None):
                tx.execute("INSERT OR REPLACE INTO statuses VALUES (?, ?, ?, ?, ?)",
                           (int(order_id), status, str(store_order_id),
                            json.dumps([str(r) for r in reasons]), time.time()))
            tx.execute("UPDATE orders SET card = ? WHERE id = ?",
                       (mask_cards(row["card"]), int(order_id)))
        self.db.scrub()  # no copy of the number left in the files
        return True

    async def xmlrpc(self, request: web.Request) -> web.Response:
        """The XML-RPC endpoint: every failure is a fault (see the module docstring)."""
        try:
            body = await request.read()
            if len(body) > MAX_REQUEST:
                raise xmlrpc.client.Fault(PARSE_ERROR, "request too large")
            try:
                params, method = xmlrpc.client.loads(body.decode("utf-8"))
            except (ExpatError, UnicodeDecodeError, xmlrpc.client.ResponseError, ValueError,
                    OverflowError, TypeError, IndexError, AttributeError) as exc:
                raise xmlrpc.client.Fault(PARSE_ERROR, f"not an XML-RPC call: {exc}") from None
            function = self.methods.get(method or "")
            if function is None:
                raise xmlrpc.client.Fault(METHOD_NOT_FOUND, f"no method {method!r}")
            try:
                result = function(*params)
            except TypeError as exc:
                raise xmlrpc.client.Fault(INVALID_PARAMS, f"{method}: {exc}") from None
            except (ValueError, OverflowError) as exc:
                raise xmlrpc.client.Fault(BAD_ARGUMENT, f"{method}: {exc}") from None
            payload = xmlrpc.client.dumps((result,), methodresponse=True, allow_none=True)
        except xmlrpc.client.Fault as fault:
            payload = xmlrpc.client.dumps(fault, methodresponse=True, allow_none=True)
        except Exception as exc:
            log.exception("crm: XML-RPC call failed")
            payload = xmlrpc.client.dumps(
                xmlrpc.client.Fault(INTERNAL_ERROR, f"internal error: {type(exc).__name__}"),
                methodresponse=True,
            )
        return web.Response(text=payload, content_type="text/xml")

    # -- the sales rep's page -----------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        orders = [
            self._order_record(row)
            for row in self.db.query("SELECT * FROM orders ORDER BY id DESC LIMIT 50")
        ]
        return render(
            "crm.html",
            customers=self.list_customers(),
            orders=orders,
            message=request.query.get("message", ""),
        )

    async def customer_form(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            customer_id = self.add_customer(
                {name: str(form.get(name, "")) for name in CUSTOMER_FIELDS}
            )
        except xmlrpc.client.Fault as fault:
            raise _back(f"Not saved: {fault.faultString}") from None
        raise web.HTTPSeeOther("/?message=" + quote(f"Customer {customer_id} added"))

    async def order_form(self, request: web.Request) -> web.Response:
        form = await request.post()
        pattern = str(form.get("pattern", ""))
        price = TARTANS.get(pattern, 0)
        item = {
            "pattern": pattern,
            "kilt_size": str(form.get("kilt_size", "")),
            "waist_in": str(form.get("waist_in", "")),
            "hips_in": str(form.get("hips_in", "")),
            "drop_in": str(form.get("drop_in", "")),
            "qty": str(form.get("qty", "1")),
            "price": str(form.get("price") or f"{price / 100:.2f}"),
        }
        try:
            order_id = self.add_order(
                int(str(form.get("customer_id", "0"))),
                [item],
                str(form.get("card", "")),
                str(form.get("rep_notes", "")),
            )
        except xmlrpc.client.Fault as fault:
            raise _back(f"Not saved: {fault.faultString}") from None
        except ValueError as exc:
            raise web.HTTPSeeOther("/?message=" + quote(f"Not saved: {exc}")) from None
        raise web.HTTPSeeOther("/?message=" + quote(f"Order {order_id} entered"))


def _back(message: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther("/?message=" + quote(message))


#: system.methodSignature's answers: [return type, parameter types...].
SIGNATURES: dict[str, list[str]] = {
    "crm.add_customer": ["int", "struct"],
    "crm.list_customers": ["array"],
    "crm.add_order": ["int", "int", "array", "string", "string"],
    "crm.get_order": ["struct", "int"],
    "crm.orders_since": ["array", "int", "int"],
    "crm.set_order_status": ["boolean", "int", "string", "string", "array"],
    "system.listMethods": ["array"],
    "system.methodHelp": ["string", "string"],
    "system.methodSignature": ["array", "string"],
}
