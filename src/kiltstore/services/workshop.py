"""MacGrudder's workshop: the approved orders to make, and the "kilt finished" button.

A Message Endpoint at both ends: it consumes ``order.approved.*`` into its own list
(an Idempotent Receiver), and the button stores the finish and the
``order.finished`` event (outbox) in one transaction; the event is then published to
every subscriber (shipping, the customer's e-mail, the web store's status page).
Pressing the button twice finishes the kilt once.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from aiohttp import web

from kiltstore.bus import Apply, Incoming
from kiltstore.domain import OrderEvent, State
from kiltstore.services.base import Service, publish_event
from kiltstore.services.validator import parse_event
from kiltstore.storage import Transaction
from kiltstore.web import EventHub, render, render_string

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    order_id    TEXT PRIMARY KEY,
    event       TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    finished_at TEXT
);
"""


class Workshop(Service):
    name: ClassVar[str] = "workshop"
    schema: ClassVar[str] = SCHEMA
    site_label: ClassVar[str] = "workshop"

    async def setup(self) -> None:
        self.hub = EventHub()
        self.the_bus.consume("workshop", self.db, self.handle, prefetch=self.settings.prefetch)
        # Once an approved order is stored and acked, open workshop pages reload the list.
        self.the_bus.on_handled.append(lambda _queue, _msg: self.hub.publish("jobs", {}))
        assert self.app is not None
        self.app.router.add_get("/", self.page)
        self.app.router.add_get("/jobs", self.jobs_fragment)
        self.app.router.add_get("/jobs.json", self.jobs_json)
        self.app.router.add_get("/events", self.hub.stream)
        self.app.router.add_post("/orders/{order_id}/finish", self.finish)

    async def handle(self, incoming: Incoming) -> Apply:
        event = parse_event(incoming)

        def apply(tx: Transaction) -> None:
            tx.execute(
                "INSERT OR IGNORE INTO jobs (order_id, event, approved_at) VALUES (?, ?, ?)",
                (event.order_id, event.to_json().decode(), event.at),
            )

        return apply

    def jobs(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(to make, recently finished)."""
        todo: list[dict[str, Any]] = []
        done: list[dict[str, Any]] = []
        for row in self.db.query("SELECT * FROM jobs ORDER BY approved_at, order_id"):
            job = {**dict(row), "event": OrderEvent.from_json(row["event"].encode())}
            (done if row["finished_at"] else todo).append(job)
        done.sort(key=lambda job: job["finished_at"], reverse=True)
        return todo, done[:20]

    def finish_order(self, order_id: str) -> bool:
        """Record the finish and queue the event; False if there's no such approved order."""
        with self.db.transaction() as tx:
            row = tx.execute("SELECT * FROM jobs WHERE order_id = ?", (order_id,)).fetchone()
            if row is None:
                return False
            if row["finished_at"] is None:
                approved = OrderEvent.from_json(row["event"].encode())
                finished = approved.then(State.FINISHED, detail={"finished_by": "MacGrudder"})
                tx.execute(
                    "UPDATE jobs SET finished_at = ? WHERE order_id = ?", (finished.at, order_id)
                )
                publish_event(tx, finished)
        self.hub.publish("jobs", {"order_id": order_id, "state": "finished"})
        return True

    async def finish(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        if not self.finish_order(order_id):
            raise web.HTTPNotFound(text=f"no approved order {order_id}")
        self.the_bus.flush_soon(self.db)  # the relay sends it once the broker is back
        if request.headers.get("Accept") == "application/json":
            return web.json_response({"order_id": order_id, "state": "finished"})
        raise web.HTTPSeeOther("/")

    async def page(self, request: web.Request) -> web.Response:
        todo, done = self.jobs()
        return render("workshop.html", todo=todo, done=done)

    async def jobs_fragment(self, request: web.Request) -> web.Response:
        todo, done = self.jobs()
        return web.Response(
            text=render_string("workshop_jobs.html", todo=todo, done=done),
            content_type="text/html",
        )

    async def jobs_json(self, request: web.Request) -> web.Response:
        todo, done = self.jobs()
        return web.json_response(
            {
                "todo": [job["order_id"] for job in todo],
                "done": [job["order_id"] for job in done],
            },
            dumps=json.dumps,
        )
