"""The sales rep's CRM: customers and orders behind an XML-RPC API, plus a page.

A silo of its own: it stores what the sales rep enters and knows nothing of
messaging. The CRM channel adapter (:mod:`kiltstore.services.crm_adapter`) reads new
orders through the same XML-RPC API any other client would use.

XML-RPC at ``POST /RPC2`` (any XML-RPC client, e.g. ``xmlrpc.client.ServerProxy``):

``crm.add_customer(customer) -> id``
    ``customer``: struct with ``first_name``, ``last_name``, ``email``, ``telephone``
    and ``address`` (free text, one line each for street, town, postcode, country).
``crm.list_customers() -> [customer]``
``crm.add_order(customer_id, items, card, rep_notes) -> id``
    ``items``: array of structs ``pattern`` (tartan), ``kilt_size``, ``waist_in``,
    ``hips_in``, ``drop_in`` (inches), ``qty``, ``price`` (pounds, a string).
``crm.get_order(id) -> order``
``crm.orders_since(last_id, limit) -> [order]``
    orders with an id above ``last_id``, oldest first, each with its customer inline.
``system.listMethods() -> [name]``
"""

from __future__ import annotations

import datetime as dt
import json
import time
import xmlrpc.client
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import quote

from aiohttp import web

from kiltstore.domain import TARTANS
from kiltstore.services.base import Service
from kiltstore.web import render

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
"""

CUSTOMER_FIELDS = ("first_name", "last_name", "email", "telephone", "address")
ITEM_FIELDS = ("pattern", "kilt_size", "waist_in", "hips_in", "drop_in", "qty", "price")

NO_SUCH_CUSTOMER = 404
BAD_ARGUMENT = 400


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
            "system.listMethods": lambda: sorted(self.methods),
        }
        assert self.app is not None
        self.app.router.add_post("/RPC2", self.xmlrpc)
        self.app.router.add_get("/", self.page)
        self.app.router.add_post("/customers", self.customer_form)
        self.app.router.add_post("/orders", self.order_form)

    async def started(self) -> None:
        self.urls["CRM XML-RPC"] = self.urls[self.site_label] + "/RPC2"

    # -- the API ------------------------------------------------------------------------

    def add_customer(self, customer: dict[str, Any]) -> int:
        if not isinstance(customer, dict):
            raise xmlrpc.client.Fault(BAD_ARGUMENT, "customer must be a struct")
        values = tuple(str(customer.get(name, "")).strip() for name in CUSTOMER_FIELDS)
        if not values[0] and not values[1]:
            raise xmlrpc.client.Fault(BAD_ARGUMENT, "a customer needs a name")
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
        return [dict(row) for row in self.db.query("SELECT * FROM customers ORDER BY id")]

    def add_order(
        self, customer_id: int, items: list[dict[str, Any]], card: str, rep_notes: str = ""
    ) -> int:
        self._customer(int(customer_id))
        if not isinstance(items, list) or not items:
            raise xmlrpc.client.Fault(BAD_ARGUMENT, "an order needs at least one item")
        clean = []
        for item in items:
            if not isinstance(item, dict):
                raise xmlrpc.client.Fault(BAD_ARGUMENT, "each item must be a struct")
            clean.append({name: item.get(name, "") for name in ITEM_FIELDS})
        with self.db.transaction() as tx:
            cursor = tx.execute(
                "INSERT INTO orders (customer_id, entered, rep, items, card, rep_notes)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (int(customer_id), time.time(), "Hamish", json.dumps(clean), str(card),
                 str(rep_notes)),
            )
            return int(cursor.lastrowid or 0)

    def _order_record(self, row: Any) -> dict[str, Any]:
        entered = dt.datetime.fromtimestamp(row["entered"], dt.UTC).replace(microsecond=0)
        return {
            "id": row["id"],
            "entered": xmlrpc.client.DateTime(entered),
            "rep": row["rep"],
            "customer": self._customer(row["customer_id"]),
            "items": json.loads(row["items"]),
            "card": row["card"],
            "rep_notes": row["rep_notes"],
        }

    def get_order(self, order_id: int) -> dict[str, Any]:
        row = self.db.query_one("SELECT * FROM orders WHERE id = ?", (int(order_id),))
        if row is None:
            raise xmlrpc.client.Fault(NO_SUCH_CUSTOMER, f"no order {order_id}")
        return self._order_record(row)

    def orders_since(self, last_id: int, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT * FROM orders WHERE id > ? ORDER BY id LIMIT ?", (int(last_id), int(limit))
        )
        return [self._order_record(row) for row in rows]

    async def xmlrpc(self, request: web.Request) -> web.Response:
        body = await request.text()
        try:
            params, method = xmlrpc.client.loads(body)
            function = self.methods.get(method or "")
            if function is None:
                raise xmlrpc.client.Fault(1, f"no method {method!r}")
            result = function(*params)
            payload = xmlrpc.client.dumps((result,), methodresponse=True, allow_none=True)
        except xmlrpc.client.Fault as fault:
            payload = xmlrpc.client.dumps(fault, allow_none=True)
        except (TypeError, ValueError) as exc:
            payload = xmlrpc.client.dumps(xmlrpc.client.Fault(BAD_ARGUMENT, str(exc)))
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
        customer_id = self.add_customer({name: str(form.get(name, "")) for name in CUSTOMER_FIELDS})
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
        except (xmlrpc.client.Fault, ValueError) as exc:
            raise web.HTTPSeeOther("/?message=" + quote(f"Not saved: {exc}")) from None
        raise web.HTTPSeeOther("/?message=" + quote(f"Order {order_id} entered"))
