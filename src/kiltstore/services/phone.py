"""Phone orders: the shop's internal form, a Message Endpoint.

Whoever answers the phone fills in the form; it becomes a phone-order slip (the
shop's own ``text/plain`` format, ``phone.slip.v1``). A slip the store could not read
(an empty form, a field over its length limit, a quantity that is not a number) is
refused at once on the form, with the reasons, and nothing is sent. A readable slip is
saved with its message in one transaction and published to ``intake`` with routing key
``phone``, with a Return Address: ``reply_to`` the ``phone-replies`` queue and
``correlation_id`` ``phone-slip-<n>``. The store answers there (see
:mod:`kiltstore.replies`), and the page shows each slip's outcome live: accepted with
its order id, or refused with the reasons.

The card number is in the published slip only; the saved slip shows its last four digits.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from aiohttp import web

from kiltstore.bus import Apply, Incoming
from kiltstore.domain import Source, mask_cards, now_iso
from kiltstore.limits import length_problems, order_problems
from kiltstore.replies import OrderReply, later
from kiltstore.services.base import Service
from kiltstore.storage import Transaction
from kiltstore.topology import INTAKE
from kiltstore.translators import PHONE_CONTENT_TYPE, PHONE_TYPE, TranslationError, translate_phone
from kiltstore.web import EventHub, readable_time, render, render_string

SCHEMA = """
CREATE TABLE IF NOT EXISTS slips (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    taken   TEXT NOT NULL,
    text    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outcomes (
    slip_id  INTEGER PRIMARY KEY,
    status   TEXT NOT NULL,
    order_id TEXT NOT NULL,
    reasons  TEXT NOT NULL,
    at       TEXT NOT NULL
);
"""

FORM_FIELDS = (
    "taken_by", "name", "email", "phone", "street", "town", "postcode", "country",
    "tartan", "size", "waist", "hip", "length", "unit", "qty", "card", "notes",
)
#: Limits of the form's fields: name -> (label, kind of :data:`kiltstore.limits.MAX_LENGTH`).
FORM_LIMITS: dict[str, tuple[str, str]] = {
    "taken_by": ("Taken by", "taken_by"),
    "name": ("Name", "name"),
    "email": ("E-mail", "email"),
    "phone": ("Phone", "phone"),
    "street": ("Street", "street"),
    "town": ("Town", "city"),
    "postcode": ("Postcode", "postcode"),
    "country": ("Country", "country"),
    "tartan": ("Tartan", "tartan"),
    "size": ("Size", "size"),
    "waist": ("Waist", "size"),
    "hip": ("Hip", "size"),
    "length": ("Length", "size"),
    "qty": ("Qty", "size"),
    "card": ("Card", "card"),
    "notes": ("Notes", "notes"),
}
#: Fields a slip can't do without.
REQUIRED = ("name", "email", "street", "town", "postcode", "country", "tartan", "waist",
            "hip", "length", "card")
CORRELATION_PREFIX = "phone-slip-"


class SlipError(ValueError):
    """The form can't make a slip the store could read."""


def slip_text(slip_id: int, taken: str, form: dict[str, str]) -> str:
    """The phone-order slip for the form's fields."""
    unit = "in" if form.get("unit") == "in" else "cm"
    size = f", size {form['size']}" if form.get("size") else ""
    lines = [
        "PHONE ORDER SLIP",
        f"Slip: {slip_id}",
        f"Taken: {taken}",
        f"Taken-By: {form.get('taken_by', '')}",
        f"Name: {form.get('name', '')}",
        f"Email: {form.get('email', '')}",
        f"Phone: {form.get('phone', '')}",
        "Address: " + ", ".join(
            form.get(key, "") for key in ("street", "town", "postcode", "country")
        ),
        f"Kilt: {form.get('qty', '1') or '1'} x {form.get('tartan', '')}{size}, "
        f"waist {form.get('waist', '')}{unit}, hip {form.get('hip', '')}{unit}, "
        f"length {form.get('length', '')}{unit}",
        f"Card: {form.get('card', '')}",
    ]
    if form.get("notes"):
        lines.append(f"Notes: {' '.join(form['notes'].split())}")
    return "\n".join(lines) + "\n"


def _masked(text: str) -> str:
    """A slip's text with its card number shown as the last four digits only."""
    return "".join(
        mask_cards(line) if line.startswith("Card:") else line
        for line in text.splitlines(keepends=True)
    )


def _readable_slip(text: str) -> str:
    """A slip as the page shows it: its ``Taken:`` time as people write it."""
    return "".join(
        f"Taken: {readable_time(line.removeprefix('Taken:').strip())}\n"
        if line.startswith("Taken:") else line
        for line in text.splitlines(keepends=True)
    )


def check_form(form: dict[str, str]) -> None:
    """Raise :class:`SlipError` with every reason the store would throw the slip away."""
    problems = length_problems(form, FORM_LIMITS)
    problems += [
        f"{FORM_LIMITS[name][0]} is missing" for name in REQUIRED if not form.get(name, "").strip()
    ]
    if not problems:
        try:  # as the store will read it, with the validator's limits
            problems += order_problems(translate_phone(slip_text(0, now_iso(), form).encode()))
        except TranslationError as exc:
            problems.append(exc.reason)
    if problems:
        raise SlipError("; ".join(problems))


class PhoneOrders(Service):
    name: ClassVar[str] = "phone"
    schema: ClassVar[str] = SCHEMA
    site_label: ClassVar[str] = "phone orders"

    async def setup(self) -> None:
        self.hub = EventHub()
        self.the_bus.consume(
            "phone-replies", self.db, self.handle_reply, prefetch=self.settings.prefetch
        )
        self.the_bus.on_handled.append(lambda _queue, _msg: self.hub.publish("slips", {}))
        assert self.app is not None
        self.app.router.add_get("/", self.page)
        self.app.router.add_post("/slips", self.submit)
        self.app.router.add_get("/slips", self.slips_fragment)
        self.app.router.add_get("/slips.json", self.slips_json)
        self.app.router.add_get("/events", self.hub.stream)
        self.upgrade()

    def upgrade(self) -> None:
        """Slips saved by an older version: forget their card numbers."""
        with self.db.transaction() as tx:
            for row in tx.execute("SELECT id, text FROM slips").fetchall():
                if _masked(row["text"]) != row["text"]:
                    tx.execute("UPDATE slips SET text = ? WHERE id = ?",
                               (_masked(row["text"]), row["id"]))
        self.db.scrub()

    def take_order(self, form: dict[str, str]) -> int:
        """Save the slip and its message in one transaction; return the slip number.
        Raise :class:`SlipError` for a slip the store could not read."""
        check_form(form)
        with self.db.transaction() as tx:
            taken = now_iso()
            cursor = tx.execute("INSERT INTO slips (taken, text) VALUES (?, '')", (taken,))
            slip_id = int(cursor.lastrowid or 0)
            text = slip_text(slip_id, taken, form)
            tx.execute("UPDATE slips SET text = ? WHERE id = ?", (_masked(text), slip_id))
            tx.publish(
                INTAKE,
                str(Source.PHONE),
                text.encode(),
                message_id=f"phone-{slip_id}",
                content_type=PHONE_CONTENT_TYPE,
                type=PHONE_TYPE,
                reply_to=self.topology.queue("phone-replies"),
                correlation_id=f"{CORRELATION_PREFIX}{slip_id}",
            )
        return slip_id

    async def handle_reply(self, incoming: Incoming) -> Apply | None:
        reply = OrderReply.from_json(incoming.body)
        if not reply.correlation_id.startswith(CORRELATION_PREFIX):
            raise ValueError(f"not a slip's correlation id: {reply.correlation_id!r}")
        slip_id = int(reply.correlation_id.removeprefix(CORRELATION_PREFIX))

        def apply(tx: Transaction) -> None:
            known = tx.execute("SELECT status FROM outcomes WHERE slip_id = ?",
                               (slip_id,)).fetchone()
            if not later(reply.status, known["status"] if known else None):
                return  # an earlier stage's answer, overtaken on the way
            tx.execute(
                "INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?)",
                (slip_id, reply.status, reply.order_id, json.dumps(list(reply.reasons)),
                 reply.at),
            )

        return apply

    def slips(self) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT slips.*, outcomes.status, outcomes.order_id, outcomes.reasons"
            " FROM slips LEFT JOIN outcomes ON outcomes.slip_id = slips.id"
            " ORDER BY slips.id DESC LIMIT 20"
        )
        return [
            {**dict(row), "status": row["status"] or "sent",
             "reasons": json.loads(row["reasons"] or "[]"),
             "shown": _readable_slip(row["text"])}
            for row in rows
        ]

    async def page(self, request: web.Request) -> web.Response:
        return render("phone.html", slips=self.slips(), sent=request.query.get("sent", ""),
                      form={}, error="")

    async def slips_fragment(self, request: web.Request) -> web.Response:
        return web.Response(
            text=render_string("phone_slips.html", slips=self.slips()), content_type="text/html"
        )

    async def slips_json(self, request: web.Request) -> web.Response:
        return web.json_response({"slips": self.slips()})

    async def submit(self, request: web.Request) -> web.Response:
        posted = await request.post()
        form = {name: str(posted.get(name, "")).strip() for name in FORM_FIELDS}
        try:
            slip_id = self.take_order(form)
        except SlipError as exc:
            return render("phone.html", slips=self.slips(), sent="", form=form, error=str(exc),
                          http_status=400)
        self.the_bus.flush_soon(self.db)  # the outbox relay sends it later
        raise web.HTTPSeeOther(f"/?sent={slip_id}")
