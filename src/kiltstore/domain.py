"""The kilt store's Canonical Data Model.

Every service that looks at an order after the Normalizer sees the same shape,
whatever the order's source: a :class:`CanonicalOrder` (schema
``kiltstore.order``, version :data:`ORDER_VERSION`). Its life is told by
:class:`OrderEvent` messages (schema ``kiltstore.order-event``), each carrying the
order, its new :class:`State` and the reasons or details of the change.

Measurements are in centimetres and money in pence, whatever the source used.
Both documents are JSON; their content type names the schema and the version, so
a consumer can refuse a version it doesn't know rather than misread it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from kiltstore.limits import MAX_QUANTITY as MAX_QUANTITY  # re-exported

ORDER_SCHEMA = "kiltstore.order"
ORDER_VERSION = 1
EVENT_SCHEMA = "kiltstore.order-event"
EVENT_VERSION = 1
#: Content type of order-event messages (the canonical order travels inside them).
EVENT_CONTENT_TYPE = f"application/vnd.{EVENT_SCHEMA}+json; version={EVENT_VERSION}"
#: AMQP ``type`` property of order-event messages.
EVENT_TYPE = f"{EVENT_SCHEMA}.v{EVENT_VERSION}"


class Source(StrEnum):
    """Where an order came from; also the routing key of its raw message."""

    WEB = "web"
    CRM = "crm"
    PHONE = "phone"


class State(StrEnum):
    """The states of an order, in the order they normally happen."""

    RECEIVED = "received"  # normalized into the canonical form
    INVALID = "invalid"  # failed validation; the customer is told why
    VALID = "valid"  # passed validation, waiting for payment
    APPROVED = "approved"  # payment approved: the workshop makes the kilt
    DECLINED = "declined"  # payment declined; the customer is told
    STARTED = "started"  # MacGrudder started making it: it can no longer be cancelled
    FINISHED = "finished"  # MacGrudder pressed "kilt finished"
    SHIPPED = "shipped"  # shipping recorded a shipment and printed a label
    CANCELLED = "cancelled"  # the customer cancelled before the workshop started
    REFUNDED = "refunded"  # billing refunded the charge of a cancelled order


#: States after which nothing more happens to an order.
FINAL_STATES = frozenset({State.INVALID, State.DECLINED, State.SHIPPED, State.REFUNDED})

#: The tartans MacGrudder weaves, with the price of one kilt in pence.
TARTANS: dict[str, int] = {
    "Black Watch": 42_000,
    "Royal Stewart": 45_000,
    "MacGrudder Hunting": 48_000,
    "Dress Gordon": 44_000,
    "MacLeod of Lewis": 46_000,
    "Isle of Skye": 43_000,
}

#: Kilt styles, with what each adds to (or takes off) the tartan's price, in pence.
#: An order line without a style is the first, the traditional kilt.
STYLES: dict[str, int] = {
    "Traditional 8-yard": 0,
    "Casual 5-yard": -8_000,
    "Box-pleated": 6_000,
}
DEFAULT_STYLE = next(iter(STYLES))


def unit_price(tartan: str, style: str = DEFAULT_STYLE) -> int:
    """Price of one kilt of ``tartan`` in ``style``, in pence (0: no such tartan or style)."""
    if tartan not in TARTANS or style not in STYLES:
        return 0
    return TARTANS[tartan] + STYLES[style]


#: Kilt sizes, by waist range in centimetres (inclusive).
SIZES: dict[str, tuple[int, int]] = {
    "S": (66, 81),
    "M": (76, 91),
    "L": (86, 102),
    "XL": (97, 112),
    "XXL": (107, 127),
}

#: Countries the shipping partner delivers to (ISO 3166 alpha-2).
SHIPPING_COUNTRIES: dict[str, str] = {
    "GB": "United Kingdom",
    "IE": "Ireland",
    "FR": "France",
    "DE": "Germany",
    "NL": "Netherlands",
    "US": "United States",
    "CA": "Canada",
    "AU": "Australia",
    "NZ": "New Zealand",
}



def now_iso() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Customer:
    name: str
    email: str
    phone: str = ""


@dataclass(frozen=True)
class Address:
    street: str
    city: str
    postcode: str
    country: str  # ISO 3166 alpha-2


@dataclass(frozen=True)
class OrderLine:
    tartan: str
    size: str
    waist_cm: float
    hip_cm: float
    length_cm: float
    quantity: int
    unit_price_pence: int
    style: str = DEFAULT_STYLE


@dataclass(frozen=True)
class Payment:
    """How the customer pays. The card number travels only up to billing; from the
    payment step on an order holds the payment gateway's token and the last four digits."""

    card_number: str = ""  # digits only, until the payment step; then empty
    token: str = ""  # the payment gateway's token for the card, after the payment step
    last4: str = ""

    def __post_init__(self) -> None:
        if not self.last4 and self.card_number:
            object.__setattr__(self, "last4", self.card_number[-4:])

    def tokenized(self, token: str) -> Payment:
        """The same payment with the gateway's token in place of the card number."""
        return Payment(card_number="", token=token, last4=self.last4)


@dataclass(frozen=True)
class CanonicalOrder:
    """One order, whatever its source, in the store's own vocabulary."""

    order_id: str  # unique across sources: "<source>-<id in the source>"
    source: Source
    source_ref: str  # the order's id in its source system
    placed_at: str  # ISO 8601
    customer: Customer
    address: Address
    lines: tuple[OrderLine, ...]
    payment: Payment
    notes: str = ""
    schema: str = ORDER_SCHEMA
    version: int = ORDER_VERSION

    @property
    def total_pence(self) -> int:
        return sum(line.unit_price_pence * line.quantity for line in self.lines)

    @property
    def kilt_count(self) -> int:
        return sum(line.quantity for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["source"] = str(self.source)
        data["lines"] = [dataclasses.asdict(line) for line in self.lines]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CanonicalOrder:
        """Rebuild an order from :meth:`to_dict` output; raise ``ValueError`` if it isn't one."""
        if data.get("schema") != ORDER_SCHEMA:
            raise ValueError(f"not a {ORDER_SCHEMA} document: schema={data.get('schema')!r}")
        if data.get("version") != ORDER_VERSION:
            raise ValueError(f"unsupported {ORDER_SCHEMA} version {data.get('version')!r}")
        try:
            return cls(
                order_id=str(data["order_id"]),
                source=Source(data["source"]),
                source_ref=str(data["source_ref"]),
                placed_at=str(data["placed_at"]),
                customer=Customer(**data["customer"]),
                address=Address(**data["address"]),
                lines=tuple(OrderLine(**line) for line in data["lines"]),
                payment=Payment(**data["payment"]),
                notes=str(data.get("notes", "")),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed {ORDER_SCHEMA} document: {exc}") from exc


@dataclass(frozen=True)
class OrderEvent:
    """A change of an order's state: the message on the ``orders`` exchange."""

    state: State
    order: CanonicalOrder
    at: str = field(default_factory=now_iso)
    reasons: tuple[str, ...] = ()  # why an order is invalid or declined
    detail: dict[str, str] = field(default_factory=dict)  # charge id, tracking number...
    schema: str = EVENT_SCHEMA
    version: int = EVENT_VERSION

    @property
    def order_id(self) -> str:
        return self.order.order_id

    @property
    def message_id(self) -> str:
        """Deterministic: re-sending the same change produces the same id, so receivers
        drop the duplicate."""
        return f"{self.order.order_id}:{self.state}"

    @property
    def routing_key(self) -> str:
        """``order.<state>.<source>``: subscribers bind by state, by source, or both."""
        return f"order.{self.state}.{self.order.source}"

    def to_json(self) -> bytes:
        data = {
            "schema": self.schema,
            "version": self.version,
            "state": str(self.state),
            "at": self.at,
            "reasons": list(self.reasons),
            "detail": dict(self.detail),
            "order": self.order.to_dict(),
        }
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, body: bytes) -> OrderEvent:
        """Parse an event; raise ``ValueError`` if the body isn't a known version of one."""
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("schema") != EVENT_SCHEMA:
            raise ValueError(f"not a {EVENT_SCHEMA} document")
        if data.get("version") != EVENT_VERSION:
            raise ValueError(f"unsupported {EVENT_SCHEMA} version {data.get('version')!r}")
        try:
            return cls(
                state=State(data["state"]),
                order=CanonicalOrder.from_dict(data["order"]),
                at=str(data["at"]),
                reasons=tuple(str(r) for r in data.get("reasons", ())),
                detail={str(k): str(v) for k, v in data.get("detail", {}).items()},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed {EVENT_SCHEMA} document: {exc}") from exc

    def then(
        self,
        state: State,
        *,
        reasons: tuple[str, ...] = (),
        detail: dict[str, str] | None = None,
    ) -> OrderEvent:
        """The next event of the same order."""
        merged = dict(self.detail)
        merged.update(detail or {})
        return OrderEvent(state=state, order=self.order, reasons=reasons, detail=merged)

    def with_order(self, order: CanonicalOrder) -> OrderEvent:
        """The same event about a changed order."""
        return dataclasses.replace(self, order=order)


def size_for_waist(waist_cm: float) -> str | None:
    """The smallest size whose waist range holds ``waist_cm``."""
    for name, (low, high) in SIZES.items():
        if low <= waist_cm <= high:
            return name
    return None


_CARD = re.compile(r"\b\d(?:[ -]?\d){11,18}\b")


def mask_cards(text: str) -> str:
    """``text`` with each card number in it (12 to 19 digits, maybe grouped by spaces or
    dashes, passing the Luhn check) shown as its last four digits only."""

    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        return "…" + digits[-4:] if luhn_ok(digits) else match.group()

    return _CARD.sub(mask, text)


def luhn_ok(number: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0



def format_pence(pence: int) -> str:
    return f"£{pence // 100:,}.{pence % 100:02d}"
