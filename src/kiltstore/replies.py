"""Answers to an order's source: the Return Address pattern.

A source that wants to know what became of its order (the phone form, the CRM
adapter) publishes it with ``reply_to`` (the name of its own reply queue) and a
``correlation_id`` of its choosing. The normalizer carries both onto the ``received``
event, the validator onto the ``valid`` one. Whoever decides the order's fate answers
there through the default exchange: the normalizer refuses a message it cannot
translate, the validator accepts an order (with its order id) or refuses it (with every
reason), and billing then tells how the payment went: approved (the kilt goes to the
workshop) or declined (with the reason). A source keeps the furthest answer: a late
``accepted`` never replaces ``approved``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kiltstore.domain import now_iso
from kiltstore.storage import Transaction
from kiltstore.topology import DEFAULT_EXCHANGE

REPLY_TYPE = "kiltstore.order-reply.v1"
REPLY_CONTENT_TYPE = "application/vnd.kiltstore.order-reply+json; version=1"
ACCEPTED = "accepted"
REFUSED = "refused"
APPROVED = "approved"
DECLINED = "declined"
#: How far along the order each answer is: a source keeps the answer of the latest stage.
STAGE: dict[str, int] = {ACCEPTED: 1, REFUSED: 1, APPROVED: 2, DECLINED: 2}


def later(status: str, than: str | None) -> bool:
    """Does an answer ``status`` tell more than the answer ``than`` (None: no answer yet)?"""
    return than is None or STAGE.get(status, 0) >= STAGE.get(than, 0)


@dataclass(frozen=True)
class OrderReply:
    """What became of an order: accepted (with its order id) or refused (with reasons);
    later approved, or declined (with the reason)."""

    correlation_id: str
    status: str
    order_id: str = ""
    reasons: tuple[str, ...] = ()
    at: str = field(default_factory=now_iso)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "correlation_id": self.correlation_id,
                "status": self.status,
                "order_id": self.order_id,
                "reasons": list(self.reasons),
                "at": self.at,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, body: bytes) -> OrderReply:
        """Parse a reply; raise ``ValueError`` if the body isn't one."""
        try:
            data: Any = json.loads(body)
            status = str(data["status"])
            if status not in STAGE:
                raise ValueError(f"unknown reply status {status!r}")
            return cls(
                correlation_id=str(data["correlation_id"]),
                status=status,
                order_id=str(data.get("order_id", "")),
                reasons=tuple(str(r) for r in data.get("reasons", ())),
                at=str(data.get("at", "")),
            )
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not an order reply: {exc}") from exc


def publish_reply(tx: Transaction, reply_to: str, reply: OrderReply) -> None:
    """Queue ``reply`` in the outbox of ``tx`` for the Return Address ``reply_to`` (none:
    the source asked for no answer)."""
    if not reply_to:
        return
    tx.publish(
        DEFAULT_EXCHANGE,
        reply_to,
        reply.to_json(),
        message_id=f"{reply.correlation_id}:reply:{reply.status}",
        content_type=REPLY_CONTENT_TYPE,
        type=REPLY_TYPE,
        correlation_id=reply.correlation_id,
    )
