"""The Normalizer: raw orders from every source in, canonical orders out.

It consumes the ``normalizer`` queue (the ``intake`` exchange's ``web``, ``crm`` and
``phone`` routing keys), picks the Message Translator by the message's ``type``
property (:mod:`kiltstore.translators`), and publishes an ``order.received.<source>``
event carrying the canonical order. A message it cannot translate goes to the
``invalid-messages`` exchange unchanged, with the reason in the ``x-invalid-reason``
header: nothing is silently dropped. A source that gave a Return Address
(``reply_to``) is told at once that its message was refused, and why; otherwise the
Return Address travels on with the ``received`` event (see :mod:`kiltstore.replies`).

Web checkouts carry the secret path of their status page, which the normalizer keeps
in the event's ``detail`` (``status_path``, and ``orders_path``: the customer's own
order list) for the e-mails' links.
"""

from __future__ import annotations

import json
from typing import ClassVar

from kiltstore.bus import Apply, Incoming
from kiltstore.domain import OrderEvent, State
from kiltstore.replies import REFUSED, OrderReply, publish_reply
from kiltstore.services.base import Service, publish_event
from kiltstore.storage import Transaction
from kiltstore.topology import INVALID
from kiltstore.translators import TRANSLATORS, WEB_TYPE, TranslationError, translate

SCHEMA = """
CREATE TABLE IF NOT EXISTS translations (
    message_id TEXT PRIMARY KEY,
    source     TEXT NOT NULL,
    order_id   TEXT,
    reason     TEXT
);
"""


def normalize(incoming: Incoming) -> OrderEvent:
    """The ``received`` event for a raw order; raise :class:`TranslationError`."""
    entry = TRANSLATORS.get(incoming.type)
    if entry is not None and str(entry[0]) != incoming.routing_key:
        raise TranslationError(
            f"message type {incoming.type!r} belongs to source {entry[0]!s}, "
            f"but arrived as {incoming.routing_key!r}"
        )
    order = translate(incoming.type, incoming.body)
    detail: dict[str, str] = {}
    if incoming.type == WEB_TYPE:
        document = json.loads(incoming.body)
        token = document.get("status_token")
        if isinstance(token, str) and token:
            detail["status_path"] = f"/orders/{token}"
        customer_token = document.get("customer_token")
        if isinstance(customer_token, str) and customer_token:
            detail["orders_path"] = f"/my-orders/{customer_token}"
    return OrderEvent(state=State.RECEIVED, order=order, detail=detail)


class Normalizer(Service):
    name: ClassVar[str] = "normalizer"
    schema: ClassVar[str] = SCHEMA

    async def setup(self) -> None:
        self.the_bus.consume("normalizer", self.db, self.handle, prefetch=self.settings.prefetch)

    async def handle(self, incoming: Incoming) -> Apply:
        try:
            event = normalize(incoming)
        except TranslationError as exc:
            reason = exc.reason

            def reject(tx: Transaction) -> None:
                tx.execute(
                    "INSERT INTO translations VALUES (?, ?, NULL, ?)",
                    (incoming.message_id, incoming.routing_key, reason),
                )
                tx.publish(
                    INVALID,
                    "",
                    incoming.body,
                    message_id=f"{incoming.message_id}:invalid",
                    content_type=incoming.content_type or "application/octet-stream",
                    type=incoming.type,
                    headers={
                        "x-invalid-reason": reason,
                        "x-source": incoming.routing_key,
                        "x-original-message-id": incoming.message_id,
                    },
                )
                publish_reply(
                    tx,
                    incoming.reply_to,
                    OrderReply(incoming.correlation_id, REFUSED, reasons=(reason,)),
                )

            return reject

        def accept(tx: Transaction) -> None:
            tx.execute(
                "INSERT INTO translations VALUES (?, ?, ?, NULL)",
                (incoming.message_id, incoming.routing_key, event.order_id),
            )
            publish_event(
                tx, event, reply_to=incoming.reply_to, correlation_id=incoming.correlation_id
            )

        return accept
