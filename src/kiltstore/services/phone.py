"""Phone orders: the shop's internal form, a Message Endpoint.

Whoever answers the phone fills in the form; it becomes a phone-order slip (the
shop's own ``text/plain`` format, ``phone.slip.v1``), saved with its message in one
transaction and published to ``intake`` with routing key ``phone``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web

from kiltstore.domain import Source, now_iso
from kiltstore.services.base import Service
from kiltstore.topology import INTAKE
from kiltstore.translators import PHONE_CONTENT_TYPE, PHONE_TYPE
from kiltstore.web import render

SCHEMA = """
CREATE TABLE IF NOT EXISTS slips (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    taken   TEXT NOT NULL,
    text    TEXT NOT NULL
);
"""

FORM_FIELDS = (
    "taken_by", "name", "email", "phone", "street", "town", "postcode", "country",
    "tartan", "size", "waist", "hip", "length", "unit", "qty", "card", "notes",
)


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


class PhoneOrders(Service):
    name: ClassVar[str] = "phone"
    schema: ClassVar[str] = SCHEMA
    site_label: ClassVar[str] = "phone orders"

    async def setup(self) -> None:
        assert self.app is not None
        self.app.router.add_get("/", self.page)
        self.app.router.add_post("/slips", self.submit)

    def take_order(self, form: dict[str, str]) -> int:
        """Save the slip and its message in one transaction; return the slip number."""
        with self.db.transaction() as tx:
            taken = now_iso()
            cursor = tx.execute("INSERT INTO slips (taken, text) VALUES (?, '')", (taken,))
            slip_id = int(cursor.lastrowid or 0)
            text = slip_text(slip_id, taken, form)
            tx.execute("UPDATE slips SET text = ? WHERE id = ?", (text, slip_id))
            tx.publish(
                INTAKE,
                str(Source.PHONE),
                text.encode(),
                message_id=f"phone-{slip_id}",
                content_type=PHONE_CONTENT_TYPE,
                type=PHONE_TYPE,
            )
        return slip_id

    def slips(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.query("SELECT * FROM slips ORDER BY id DESC LIMIT 20")]

    async def page(self, request: web.Request) -> web.Response:
        return render("phone.html", slips=self.slips(), sent=request.query.get("sent", ""))

    async def submit(self, request: web.Request) -> web.Response:
        posted = await request.post()
        slip_id = self.take_order(
            {name: str(posted.get(name, "")).strip() for name in FORM_FIELDS}
        )
        self.the_bus.flush_soon(self.db)  # the outbox relay sends it later
        raise web.HTTPSeeOther(f"/?sent={slip_id}")
