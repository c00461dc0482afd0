"""MacGrudder's workshop: the approved orders to make, and its "start" and "kilt
finished" buttons.

A Message Endpoint at both ends: it consumes ``order.approved.*`` into its own list
(an Idempotent Receiver), and each button stores the change and its event
(``order.started``, ``order.finished``; outbox) in one transaction; the event is then
published to every subscriber (shipping, the customer's e-mail, the web store's status
page). Pressing a button twice changes the order once.

It also takes customers' cancellations (the ``cancellations`` queue, Command Messages
from the web store): the first step of the cancel Saga. An order not yet started is
cancelled (``order.cancelled``, which billing compensates with a refund); one already
started or finished is not, and the request is kept as refused. A cancellation that
arrives before its approved order fails for a passing reason and is retried later.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from aiohttp import web

from kiltstore.bus import Apply, Incoming
from kiltstore.domain import OrderEvent, State, now_iso
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
CREATE TABLE IF NOT EXISTS cancellations (
    order_id     TEXT PRIMARY KEY,
    requested_at TEXT NOT NULL,
    outcome      TEXT NOT NULL
);
"""
CANCEL_TYPE = "kiltstore.cancel-request.v1"


class NotYetApproved(Exception):
    """A cancellation came before its order's approval: try again later."""


def cancel_request(order_id: str, at: str) -> bytes:
    """The web store's Command Message asking to cancel ``order_id``."""
    return json.dumps(
        {"schema": "kiltstore.cancel-request", "version": 1, "order_id": order_id, "at": at}
    ).encode()


def parse_cancel_request(body: bytes) -> str:
    """The order id of a cancel request; ``ValueError`` if it isn't one."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cancel request is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema") != "kiltstore.cancel-request":
        raise ValueError("not a kiltstore.cancel-request")
    if data.get("version") != 1:
        raise ValueError(f"unsupported cancel-request version {data.get('version')!r}")
    return str(data.get("order_id", ""))


class Workshop(Service):
    name: ClassVar[str] = "workshop"
    schema: ClassVar[str] = SCHEMA
    site_label: ClassVar[str] = "workshop"

    async def setup(self) -> None:
        self.hub = EventHub()
        self.db.add_columns("jobs", {"started_at": "TEXT", "cancelled_at": "TEXT"})
        self.the_bus.consume("workshop", self.db, self.handle, prefetch=self.settings.prefetch)
        self.the_bus.consume("cancellations", self.db, self.handle_cancel, prefetch=1)
        # Once an approved order is stored and acked, open workshop pages reload the list.
        self.the_bus.on_handled.append(lambda _queue, _msg: self.hub.publish("jobs", {}))
        assert self.app is not None
        self.app.router.add_get("/", self.page)
        self.app.router.add_get("/jobs", self.jobs_fragment)
        self.app.router.add_get("/jobs.json", self.jobs_json)
        self.app.router.add_get("/events", self.hub.stream)
        self.app.router.add_post("/orders/{order_id}/finish", self.finish)
        self.app.router.add_post("/orders/{order_id}/start", self.start_button)

    async def handle(self, incoming: Incoming) -> Apply:
        event = parse_event(incoming)

        def apply(tx: Transaction) -> None:
            tx.execute(
                "INSERT OR IGNORE INTO jobs (order_id, event, approved_at) VALUES (?, ?, ?)",
                (event.order_id, event.to_json().decode(), event.at),
            )

        return apply

    async def handle_cancel(self, incoming: Incoming) -> Apply:
        order_id = parse_cancel_request(incoming.body)
        row = self.db.query_one("SELECT 1 FROM jobs WHERE order_id = ?", (order_id,))
        if row is None:
            raise NotYetApproved(f"no approved order {order_id} yet")

        def apply(tx: Transaction) -> None:
            job = tx.execute("SELECT * FROM jobs WHERE order_id = ?", (order_id,)).fetchone()
            if job["started_at"] or job["finished_at"] or job["cancelled_at"]:
                outcome = "cancelled" if job["cancelled_at"] else "refused: already started"
            else:
                approved = OrderEvent.from_json(job["event"].encode())
                cancelled = approved.then(State.CANCELLED, detail={"cancelled_by": "customer"})
                tx.execute("UPDATE jobs SET cancelled_at = ? WHERE order_id = ?",
                           (cancelled.at, order_id))
                publish_event(tx, cancelled)
                outcome = "cancelled"
            tx.execute("INSERT OR IGNORE INTO cancellations VALUES (?, ?, ?)",
                       (order_id, now_iso(), outcome))

        return apply

    def jobs(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(to make, recently finished or cancelled)."""
        todo: list[dict[str, Any]] = []
        done: list[dict[str, Any]] = []
        for row in self.db.query("SELECT * FROM jobs ORDER BY approved_at, order_id"):
            job = {**dict(row), "event": OrderEvent.from_json(row["event"].encode())}
            (done if row["finished_at"] or row["cancelled_at"] else todo).append(job)
        done.sort(key=lambda job: job["finished_at"] or job["cancelled_at"], reverse=True)
        return todo, done[:20]

    def finish_order(self, order_id: str) -> bool:
        """Record the finish and queue the event; False if there's no such approved order."""
        with self.db.transaction() as tx:
            row = tx.execute("SELECT * FROM jobs WHERE order_id = ?", (order_id,)).fetchone()
            if row is None or row["cancelled_at"]:
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

    def start_order(self, order_id: str) -> bool:
        """Record that MacGrudder started the kilt (it can no longer be cancelled) and
        queue ``order.started``; False if there's no such approved, uncancelled order."""
        with self.db.transaction() as tx:
            row = tx.execute("SELECT * FROM jobs WHERE order_id = ?", (order_id,)).fetchone()
            if row is None or row["cancelled_at"]:
                return False
            if row["started_at"] is None and row["finished_at"] is None:
                approved = OrderEvent.from_json(row["event"].encode())
                started = approved.then(State.STARTED, detail={"started_by": "MacGrudder"})
                tx.execute(
                    "UPDATE jobs SET started_at = ? WHERE order_id = ?", (started.at, order_id)
                )
                publish_event(tx, started)
        self.hub.publish("jobs", {"order_id": order_id, "state": "started"})
        return True

    async def start_button(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        if not self.start_order(order_id):
            raise web.HTTPNotFound(text=f"no approved order {order_id} to start")
        self.the_bus.flush_soon(self.db)
        if request.headers.get("Accept") == "application/json":
            return web.json_response({"order_id": order_id, "state": "started"})
        raise web.HTTPSeeOther("/")

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
                "done": [job["order_id"] for job in done if job["finished_at"]],
            },
            dumps=json.dumps,
        )
