"""Reading the SQLite store back at start.

Definitions come back in dependency order (exchanges, queues, then bindings), each kind
in the order it was first written. Messages come back as stand-ins
(:class:`~kiltmq.broker.message.PagedMessage`, with the position of their row as their
id): only their metadata is read, the bodies stay in the store until a consumer gets near
them.

Redelivered flags: after a clean shutdown the broker reported (mark_redelivered) which
waiting messages had been delivered before; exactly those come back redelivered. After
a crash the store cannot know which messages a consumer saw in the last moments, so
every recovered message comes back redelivered=true (a message is never redelivered
without the flag).

Quorum queues: each message comes back with its delivery count as last returned, and
those dead-lettered at least once with the reason they died for (see
:class:`~kiltmq.broker.store.interface.StoredMessage`).

Rows of a deleted queue that were not removed one by one (deliveries still
unacknowledged when it went) are orphans, deleted here.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

from kiltmq.broker.auth import User
from kiltmq.broker.message import PagedMessage
from kiltmq.broker.store.interface import Recovered, StoredMessage
from kiltmq.protocol.codec import decode_table

__all__ = ["read_back"]

log = logging.getLogger("kiltmq.broker.store")

_KIND_ORDER = {"exchange": 0, "queue": 1, "binding": 2}


def read_back(
    db: sqlite3.Connection, path: Path, crashed: bool
) -> tuple[Recovered, dict[tuple[str, str], int], int | None]:
    """Everything in the store at ``path``: what to rebuild, the queue ids by (vhost,
    queue name), and the highest message position in use (None: no messages). Deletes
    the rows of deleted queues. ``crashed``: the broker did not stop cleanly."""
    recovered = Recovered()
    recovered.vhosts = [r[0] for r in db.execute("SELECT name FROM vhosts ORDER BY rowid")]
    for name, password_hash, tags, limits in db.execute(
        "SELECT name, password_hash, tags, limits FROM users ORDER BY rowid"
    ):
        recovered.users.append(User(
            name, password_hash, frozenset(json.loads(tags)), json.loads(limits or "{}")
        ))
    recovered.permissions = [
        (u, v, c, w, r)
        for u, v, c, w, r in db.execute(
            "SELECT user, vhost, configure, write, read FROM permissions ORDER BY rowid"
        )
    ]
    recovered.topic_permissions = [
        (u, v, e, w, r)
        for u, v, e, w, r in db.execute(
            "SELECT user, vhost, exchange, write, read FROM topic_permissions ORDER BY rowid"
        )
    ]
    definitions = []
    for rowid, vhost, kind, data in db.execute(
        "SELECT rowid, vhost, kind, data FROM definitions"
    ):
        definitions.append((_KIND_ORDER.get(kind, 3), rowid, vhost, kind, data))
    definitions.sort()
    for _order, _rowid, vhost, kind, data in definitions:
        recovered.definitions.append((vhost, kind, decode_table(data, 0)[0]))
    names: dict[int, tuple[str, str]] = {}
    queue_ids: dict[tuple[str, str], int] = {}
    for qid, vhost, name in db.execute("SELECT id, vhost, name FROM queues"):
        names[qid] = (vhost, name)
        queue_ids[(vhost, name)] = qid
    top = db.execute("SELECT max(pos) FROM messages").fetchone()[0]
    if crashed:
        log.warning(
            "store %s: the broker did not stop cleanly; recovered messages are marked "
            "redelivered",
            path,
        )
    orphans = 0
    append = recovered.messages.append
    stub = PagedMessage.stub
    for pos, qid, delivered, size, properties, expires, count, dead, arrived in db.execute(
        "SELECT pos, queue_id, delivered, length(body), properties, expires,"
        " delivery_count, dead, arrived FROM messages ORDER BY pos"
    ):
        where = names.get(qid)
        if where is None:
            orphans += 1
            continue
        append(
            StoredMessage(
                where[0],
                where[1],
                stub(pos, size, properties),
                crashed or bool(delivered),
                None if expires is None else expires / 1000.0,
                count or 0,
                dead,
                None if arrived is None else arrived / 1000.0,
            )
        )
    if orphans:
        db.execute("DELETE FROM messages WHERE queue_id NOT IN (SELECT id FROM queues)")
        log.info("store %s: dropped %d messages of deleted queues", path, orphans)
    if recovered.messages:
        log.info("store %s: recovered %d messages", path, len(recovered.messages))
    return recovered, queue_ids, top
