"""The board's view of the Dead Letter Channel: messages given up on, to retry or discard.

The board consumes the ``dead-letters`` queue and keeps each message here, with the
reason and the queue it came from (the ``x-dead-reason`` and ``x-dead-queue`` headers
the bus sets; the broker's ``x-death`` for a message the broker dead-lettered). A person
then presses **retry** (the message goes back to its queue, through the default
exchange, with its failure headers and retry count cleared) or **discard** (it is
forgotten). Each dead-lettering is its own entry (``x-dead-letter-id``), so a message
that fails again after a retry comes back.
"""

from __future__ import annotations

import json
import time
from typing import Any

from kiltmq import BasicProperties
from kiltstore.bus import (
    DEAD_LETTER_ID,
    DEAD_PERMANENT,
    DEAD_QUEUE,
    DEAD_REASON,
    FAILURE_HEADERS,
    LAST_ERROR,
    PERSISTENT,
    Bus,
    Incoming,
    header_int,
)
from kiltstore.domain import mask_cards
from kiltstore.storage import Database, Transaction
from kiltstore.topology import RETRY_COUNT

SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    letter_id    TEXT UNIQUE NOT NULL,
    message_id   TEXT NOT NULL,
    queue        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    permanent    INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    properties   TEXT NOT NULL,
    body         BLOB NOT NULL,
    seq          REAL NOT NULL
);
"""

def letter_key(incoming: Incoming) -> str:
    """The board's idempotency key for a dead letter: one per dead-lettering."""
    letter_id = incoming.headers.get(DEAD_LETTER_ID)
    if letter_id:
        return f"dead:{letter_id}"
    first = _first_death(incoming.headers)
    return f"dead:{incoming.message_id}:{first.get('queue')}:{first.get('count')}"


def record(tx: Transaction, incoming: Incoming) -> None:
    """Keep a dead letter (in the transaction that marks it handled). Whatever its
    headers hold, this doesn't fail: a dead letter has nowhere further to go."""
    headers = incoming.headers
    first = _first_death(headers)
    reason = str(headers.get(DEAD_REASON) or f"broker: {first.get('reason', 'unknown')}")
    queue = str(headers.get(DEAD_QUEUE) or first.get("queue") or incoming.routing_key)
    props = incoming.properties
    properties = {
        name: getattr(props, name)
        for name in ("content_type", "message_id", "type", "reply_to", "correlation_id",
                     "app_id", "timestamp")
        if props is not None and getattr(props, name) is not None
    }
    properties["headers"] = {k: v for k, v in headers.items() if k not in FAILURE_HEADERS}
    tx.execute(
        "INSERT OR IGNORE INTO dead_letters (letter_id, message_id, queue, reason, permanent,"
        " attempts, properties, body, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            incoming.message_id,  # the letter's key (see letter_key)
            str(getattr(props, "message_id", None) or ""),
            queue,
            reason,
            int(bool(headers.get(DEAD_PERMANENT))),
            header_int(headers.get(RETRY_COUNT)) + 1,
            json.dumps(properties, default=str),
            incoming.body,
            time.time(),
        ),
    )


def _first_death(headers: dict[str, Any]) -> dict[str, Any]:
    """The latest ``x-death`` entry the broker added, or an empty dict."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return {}


def listing(db: Database) -> list[dict[str, Any]]:
    """The dead letters waiting for a person, newest first (bodies shortened, card
    numbers masked)."""
    rows = db.query("SELECT * FROM dead_letters ORDER BY seq DESC")
    return [
        {
            "id": row["id"],
            "message_id": row["message_id"],
            "queue": row["queue"],
            "reason": row["reason"],
            "permanent": bool(row["permanent"]),
            "attempts": row["attempts"],
            "type": json.loads(row["properties"]).get("type", ""),
            "body": mask_cards(bytes(row["body"])[:1000].decode("utf-8", "replace")),
        }
        for row in rows
    ]


async def retry(db: Database, bus: Bus, letter: int) -> bool:
    """Send dead letter ``letter`` back to its queue; False if there is no such letter."""
    row = db.query_one("SELECT * FROM dead_letters WHERE id = ?", (letter,))
    if row is None:
        return False
    saved = json.loads(row["properties"])
    headers = {k: v for k, v in saved.pop("headers", {}).items() if k != LAST_ERROR}
    properties = BasicProperties(**saved, headers=headers or None, delivery_mode=PERSISTENT)
    await bus.publish_properties("", row["queue"], bytes(row["body"]), properties)
    discard(db, letter)
    return True


def discard(db: Database, letter: int) -> bool:
    """Forget dead letter ``letter``; False if there is no such letter."""
    with db.transaction() as tx:
        deleted = tx.execute("DELETE FROM dead_letters WHERE id = ?", (letter,)).rowcount > 0
    db.scrub()  # its body may hold a card number
    return deleted
