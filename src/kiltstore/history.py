"""Message History: every service reports what it did with each message it consumed.

After a consumer has handled a message (or dropped it as a duplicate, put it aside for a
retry, or dead-lettered it), its :class:`~kiltstore.bus.Bus` publishes one small record
to the ``history`` fanout exchange: which service, which queue, the message's id, type
and routing key, when it was sent and when it was handled, and the outcome. The order
board keeps them (a Message Store) and shows each order's path through the services.

The records are for people, not for the order's progress: they go out on a channel of
their own without publisher confirms and are not persistent, so reporting never slows
or stops the work (a record lost in a broker restart only leaves a gap on the board).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from kiltmq import BasicProperties

#: AMQP ``type`` of history records.
HISTORY_TYPE = "kiltstore.history.v1"
HISTORY_CONTENT_TYPE = "application/json"

#: What a consumer did with a message.
HANDLED = "handled"
DUPLICATE = "duplicate"
RETRY = "retry"
DEAD_LETTERED = "dead-lettered"

#: Message-id prefixes of the sources' Return Address correlation ids -> order id prefix.
_ALIASES = (("crm-order-", "crm-"), ("phone-slip-", "phone-"))


def order_id_of(message_id: str) -> str:
    """The order a message is about, from its (deterministic) id: ``web-3:approved``,
    ``web-3:cancel``, ``crm-order-7`` (the CRM adapter's) and ``web-3`` (the web
    store's) name orders ``web-3``, ``crm-7``, ``web-3``; other ids name none ("")."""
    order_id = message_id.split(":", 1)[0]
    for prefix, replacement in _ALIASES:
        if order_id.startswith(prefix):
            order_id = replacement + order_id[len(prefix):]
    source, _, number = order_id.partition("-")
    if source in ("web", "crm", "phone") and number.isdigit():
        return order_id
    return ""


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class HistoryRecord:
    """One step of a message's path: ``service`` took it from ``queue``."""

    service: str
    queue: str
    message_id: str
    order_id: str
    exchange: str
    routing_key: str
    type: str
    sent_at: str  # the message's AMQP timestamp (to the second), "" if it has none
    handled_at: str  # to the millisecond
    outcome: str

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, body: bytes) -> HistoryRecord:
        """Parse a record; ``ValueError`` if it isn't one."""
        try:
            data = json.loads(body)
            return cls(**{key: str(data[key]) for key in cls.__dataclass_fields__})
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a history record: {exc}") from exc


def record(
    service: str, queue: str, message_id: str, properties: Any, *, exchange: str,
    routing_key: str, outcome: str,
) -> HistoryRecord:
    """The record of what ``service`` did with a message delivered from ``queue``."""
    timestamp = getattr(properties, "timestamp", None)
    return HistoryRecord(
        service=service,
        queue=queue,
        message_id=message_id,
        order_id=order_id_of(message_id),
        exchange=exchange,
        routing_key=routing_key,
        type=str(getattr(properties, "type", "") or ""),
        sent_at=iso(float(timestamp)) if timestamp else "",
        handled_at=iso(time.time()),
        outcome=outcome,
    )


async def publish(channel: Any, exchange: str, entry: HistoryRecord, app_id: str,
                  timeout: float) -> None:
    """Publish ``entry`` on ``channel`` (one without confirms); a failure is ignored."""
    properties = BasicProperties(
        content_type=HISTORY_CONTENT_TYPE, type=HISTORY_TYPE, app_id=app_id,
        timestamp=int(time.time()),
    )
    with contextlib.suppress(Exception):
        await channel.basic_publish(entry.to_json(), exchange=exchange, routing_key="",
                                    properties=properties, timeout=timeout)
