"""The canonical order event: JSON form, versions, routing keys and ids."""

from __future__ import annotations

import json

import pytest

from kiltstore import samples
from kiltstore.domain import EVENT_CONTENT_TYPE, OrderEvent, State, format_pence, size_for_waist
from kiltstore.translators import translate_crm


def test_event_round_trip_and_next_state() -> None:
    event = OrderEvent(state=State.RECEIVED, order=translate_crm(samples.crm_body(5)))
    assert OrderEvent.from_json(event.to_json()) == event
    approved = event.then(State.APPROVED, detail={"charge_id": "ch_1"})
    shipped = approved.then(State.SHIPPED, detail={"tracking": "HP1"})
    assert shipped.detail == {"charge_id": "ch_1", "tracking": "HP1"}
    assert shipped.routing_key == "order.shipped.crm"
    assert shipped.message_id == "crm-5:shipped"
    assert "version=1" in EVENT_CONTENT_TYPE


def test_unknown_versions_and_shapes_are_refused() -> None:
    event = OrderEvent(state=State.RECEIVED, order=translate_crm(samples.crm_body(5)))
    data = json.loads(event.to_json())
    data["version"] = 2
    with pytest.raises(ValueError, match=r"unsupported kiltstore\.order-event version 2"):
        OrderEvent.from_json(json.dumps(data).encode())
    data = json.loads(event.to_json())
    data["order"]["version"] = 9
    with pytest.raises(ValueError, match=r"unsupported kiltstore\.order version 9"):
        OrderEvent.from_json(json.dumps(data).encode())
    data = json.loads(event.to_json())
    del data["order"]["customer"]
    with pytest.raises(ValueError, match="malformed"):
        OrderEvent.from_json(json.dumps(data).encode())
    with pytest.raises(ValueError, match="not JSON"):
        OrderEvent.from_json(b"\x00")


def test_helpers() -> None:
    assert format_pence(104_550) == "£1,045.50"
    assert size_for_waist(70) == "S"
    assert size_for_waist(200) is None


def test_mask_cards_keeps_the_last_four_digits_of_card_numbers_only() -> None:
    from kiltstore.domain import mask_cards

    text = "Card: 4242 4242 4242 4242, or 4000-0000-0000-0002; phone +44 1463 555 0101"
    assert mask_cards(text) == "Card: …4242, or …0002; phone +44 1463 555 0101"
