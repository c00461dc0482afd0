"""Validation as a Content-Based Router: ``order.received`` in, ``order.valid`` or
``order.invalid`` (with the reasons, for the customer) out. The order's source, if it
gave a Return Address, is answered: accepted (with the order id) or refused (with
every reason); the Return Address travels on with a valid order, for billing's answer."""

from __future__ import annotations

from typing import ClassVar

from kiltstore.bus import Apply, Incoming, PoisonMessage
from kiltstore.domain import OrderEvent, State
from kiltstore.replies import ACCEPTED, REFUSED, OrderReply, publish_reply
from kiltstore.services.base import Service, publish_event
from kiltstore.storage import Transaction
from kiltstore.validation import validate


def parse_event(incoming: Incoming) -> OrderEvent:
    """The order event in ``incoming``; a body that isn't one is a poison message."""
    try:
        return OrderEvent.from_json(incoming.body)
    except ValueError as exc:
        raise PoisonMessage(str(exc)) from exc


def route(event: OrderEvent) -> OrderEvent:
    """The next event: valid, or invalid with every problem found."""
    problems = validate(event.order)
    if problems:
        return event.then(State.INVALID, reasons=tuple(problems))
    return event.then(State.VALID)


class Validator(Service):
    name: ClassVar[str] = "validator"

    async def setup(self) -> None:
        self.the_bus.consume("validator", self.db, self.handle, prefetch=self.settings.prefetch)

    async def handle(self, incoming: Incoming) -> Apply:
        routed = route(parse_event(incoming))
        accepted = routed.state is State.VALID
        reply = OrderReply(
            incoming.correlation_id,
            ACCEPTED if accepted else REFUSED,
            order_id=routed.order_id,
            reasons=routed.reasons,
        )

        def apply(tx: Transaction) -> None:
            if accepted:
                publish_event(tx, routed, reply_to=incoming.reply_to,
                              correlation_id=incoming.correlation_id)
            else:
                publish_event(tx, routed)
            publish_reply(tx, incoming.reply_to, reply)

        return apply
