"""The order board: every order's journey through the store, as it happens.

A Wire Tap on the ``orders`` exchange (``order.#``) and the invalid-message channel,
keeping each event in its own database (a Message Store) and pushing it live to the
board page. ``GET /orders.json`` gives the journeys as data.

It also keeps the Message History every service reports (the ``history`` queue, see
:mod:`kiltstore.history`): each order's path through the services, which message on
which queue, when, and what became of it; and it shows how many messages wait in each
of the store's queues (a passive declare of each when the page is drawn).

It also reads the Dead Letter Channel (:mod:`kiltstore.services.dead_letters`): each
message given up on is listed with its reason and queue, with **retry** and **discard**
buttons (``POST /dead-letters/<id>/retry`` and ``/discard``).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

from aiohttp import web

from kiltstore.bus import Apply, Incoming
from kiltstore.config import broker_urls
from kiltstore.domain import OrderEvent, State, format_pence, mask_cards
from kiltstore.history import HistoryRecord
from kiltstore.services import dead_letters
from kiltstore.services.base import Service
from kiltstore.storage import Transaction
from kiltstore.topology import INVALID
from kiltstore.web import EventHub, render, render_string

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    message_id TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL,
    source     TEXT NOT NULL,
    state      TEXT NOT NULL,
    at         TEXT NOT NULL,
    customer   TEXT NOT NULL,
    total      TEXT NOT NULL,
    note       TEXT NOT NULL,
    seq        REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id    TEXT NOT NULL,
    service     TEXT NOT NULL,
    queue       TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    exchange    TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    type        TEXT NOT NULL,
    sent_at     TEXT NOT NULL,
    handled_at  TEXT NOT NULL,
    outcome     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_order ON history (order_id, handled_at);
CREATE TABLE IF NOT EXISTS untranslatable (
    message_id TEXT PRIMARY KEY,
    source     TEXT NOT NULL,
    type       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    body       TEXT NOT NULL,
    seq        REAL NOT NULL
);
"""

#: Columns of the board: the stages an order passes, and the states that end each.
STAGES: tuple[tuple[str, tuple[State, ...]], ...] = (
    ("Received", (State.RECEIVED,)),
    ("Validated", (State.VALID, State.INVALID)),
    ("Paid", (State.APPROVED, State.DECLINED)),
    ("Made", (State.FINISHED, State.CANCELLED, State.STARTED)),
    ("Shipped or refunded", (State.SHIPPED, State.REFUNDED)),
)


def _note(event: OrderEvent) -> str:
    if event.reasons:
        return "; ".join(event.reasons)
    if "tracking" in event.detail:
        return f"{event.detail.get('carrier', '')} {event.detail['tracking']}".strip()
    if "refund_id" in event.detail and event.state is State.REFUNDED:
        return f"refund {event.detail['refund_id']}"
    if "charge_id" in event.detail and event.state is State.APPROVED:
        return f"charge {event.detail['charge_id']}"
    return ""


class Board(Service):
    name: ClassVar[str] = "board"
    schema: ClassVar[str] = SCHEMA + dead_letters.SCHEMA
    site_label: ClassVar[str] = "order board"

    async def setup(self) -> None:
        self.hub = EventHub()
        self.the_bus.consume("board", self.db, self.handle, prefetch=self.settings.prefetch)
        self.the_bus.consume(
            "dead-letters", self.db, self.handle_dead_letter, key=dead_letters.letter_key
        )
        self.the_bus.consume("history", self.db, self.handle_history,
                             prefetch=self.settings.prefetch)
        self.the_bus.on_handled.append(lambda _queue, _msg: self.hub.publish("board", {}))
        assert self.app is not None
        self.app.router.add_get("/", self.page)
        self.app.router.add_get("/journeys", self.fragment)
        self.app.router.add_get("/orders.json", self.orders_json)
        self.app.router.add_get("/events", self.hub.stream)
        self.app.router.add_post("/dead-letters/{letter:\\d+}/retry", self.retry)
        self.app.router.add_post("/dead-letters/{letter:\\d+}/discard", self.discard)

    async def handle_history(self, incoming: Incoming) -> Apply:
        entry = HistoryRecord.from_json(incoming.body)

        def apply(tx: Transaction) -> None:
            tx.execute(
                "INSERT INTO history (order_id, service, queue, message_id, exchange,"
                " routing_key, type, sent_at, handled_at, outcome)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.order_id, entry.service, entry.queue, entry.message_id,
                 entry.exchange, entry.routing_key, entry.type, entry.sent_at,
                 entry.handled_at, entry.outcome),
            )

        return apply

    def paths(self) -> dict[str, list[dict[str, Any]]]:
        """Each order's Message History, oldest step first."""
        paths: dict[str, list[dict[str, Any]]] = {}
        for row in self.db.query(
            "SELECT * FROM history WHERE order_id != '' ORDER BY handled_at, id"
        ):
            paths.setdefault(row["order_id"], []).append(dict(row))
        return paths

    async def queues(self) -> list[dict[str, Any]]:
        """Every queue of the store with its depth and consumers (None if unknown)."""
        names = [self.topology.queue(q.key) for q in self.topology.queues]
        try:
            depths = await self.the_bus.queue_depths(names)
        except Exception:
            depths = {}
        return [
            {"key": q.key, "name": name, "pattern": q.pattern,
             "messages": depths.get(name, (None, None))[0],
             "consumers": depths.get(name, (None, None))[1]}
            for q, name in zip(self.topology.queues, names, strict=True)
        ]

    async def handle_dead_letter(self, incoming: Incoming) -> Apply:
        return lambda tx: dead_letters.record(tx, incoming)

    async def retry(self, request: web.Request) -> web.Response:
        if not await dead_letters.retry(self.db, self.the_bus, int(request.match_info["letter"])):
            raise web.HTTPNotFound(text="no such dead letter")
        return self._after_button(request)

    async def discard(self, request: web.Request) -> web.Response:
        if not dead_letters.discard(self.db, int(request.match_info["letter"])):
            raise web.HTTPNotFound(text="no such dead letter")
        return self._after_button(request)

    def _after_button(self, request: web.Request) -> web.Response:
        self.hub.publish("board", {})
        if request.headers.get("Accept") == "application/json":
            return web.json_response({"dead_letters": dead_letters.listing(self.db)})
        raise web.HTTPSeeOther("/")

    async def handle(self, incoming: Incoming) -> Apply:
        seq = time.time()
        if incoming.exchange == self.topology.exchange(INVALID):

            def untranslatable(tx: Transaction) -> None:
                tx.execute(
                    "INSERT OR IGNORE INTO untranslatable VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        incoming.message_id,
                        str(incoming.headers.get("x-source", "?")),
                        incoming.type,
                        str(incoming.headers.get("x-invalid-reason", "?")),
                        mask_cards(incoming.body[:2000].decode("utf-8", "replace")),
                        seq,
                    ),
                )

            return untranslatable
        try:
            event = OrderEvent.from_json(incoming.body)
        except ValueError as exc:
            reason = f"unreadable order event: {exc}"

            def unreadable(tx: Transaction) -> None:
                tx.execute(
                    "INSERT OR IGNORE INTO untranslatable VALUES (?, ?, ?, ?, ?, ?)",
                    (incoming.message_id, incoming.routing_key, incoming.type, reason,
                     mask_cards(incoming.body[:2000].decode("utf-8", "replace")), seq),
                )

            return unreadable

        def record(tx: Transaction) -> None:
            tx.execute(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    incoming.message_id,
                    event.order_id,
                    str(event.order.source),
                    str(event.state),
                    event.at,
                    event.order.customer.name,
                    format_pence(event.order.total_pence),
                    _note(event),
                    seq,
                ),
            )

        return record

    def journeys(self) -> list[dict[str, Any]]:
        """One entry per order, newest first: its events by state, and its latest state."""
        orders: dict[str, dict[str, Any]] = {}
        for row in self.db.query("SELECT * FROM events ORDER BY seq"):
            journey = orders.setdefault(
                row["order_id"],
                {
                    "order_id": row["order_id"],
                    "source": row["source"],
                    "customer": row["customer"],
                    "total": row["total"],
                    "events": {},
                    "first_seq": row["seq"],
                },
            )
            journey["events"][row["state"]] = {"at": row["at"], "note": row["note"]}
            journey["latest"] = row["state"]
        result = sorted(orders.values(), key=lambda j: j["first_seq"], reverse=True)
        for journey in result:
            journey["stages"] = [
                next(
                    (
                        {"state": str(state), **journey["events"][str(state)]}
                        for state in states
                        if str(state) in journey["events"]
                    ),
                    None,
                )
                for _label, states in STAGES
            ]
        return result

    def untranslatable(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.query("SELECT * FROM untranslatable ORDER BY seq DESC")]

    async def _context(self) -> dict[str, Any]:
        return {
            "depths": await self.queues(),
            "paths": self.paths(),
            "journeys": self.journeys(),
            "untranslatable": self.untranslatable(),
            "dead_letters": dead_letters.listing(self.db),
            "stages": [label for label, _ in STAGES],
            "queues": (links := self.queue_links()),
            "queue_urls": {link["name"]: link["url"] for link in links},
        }

    def queue_links(self) -> list[dict[str, str]]:
        """The store's queues, each with its page in the broker's management UI (none
        without a management URL)."""
        base = self.settings.management_url.rstrip("/")
        if not base:
            return []
        vhost = unquote(urlsplit(broker_urls(self.settings.amqp_url)[0]).path[1:]) or "/"
        names = [self.topology.queue(spec.key) for spec in self.topology.queues]
        return [
            {"name": name, "url": f"{base}/queues/{quote(vhost, safe='')}/{quote(name, safe='')}"}
            for name in names
        ]

    async def page(self, request: web.Request) -> web.Response:
        return render("board.html", **await self._context())

    async def fragment(self, request: web.Request) -> web.Response:
        return web.Response(
            text=render_string("board_journeys.html", **await self._context()),
            content_type="text/html",
        )

    async def orders_json(self, request: web.Request) -> web.Response:
        paths = self.paths()
        return web.json_response(
            {
                "orders": [
                    {**{key: j[key] for key in ("order_id", "source", "customer", "events",
                                                "latest")},
                     "path": paths.get(j["order_id"], [])}
                    for j in self.journeys()
                ],
                "queues": await self.queues(),
                "untranslatable": self.untranslatable(),
                "dead_letters": dead_letters.listing(self.db),
            }
        )
