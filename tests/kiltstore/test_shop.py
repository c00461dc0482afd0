"""The shop's parts that need no broker: tartan swatches, prices of styles, readable
dates, the Message History's order ids, and the payment gateway's refunds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from kiltstore.catalogue import BY_SLUG, TARTAN_LIST, stripes, swatch_svg
from kiltstore.config import Settings
from kiltstore.domain import STYLES, unit_price
from kiltstore.history import order_id_of
from kiltstore.services.basket import FormError, basket_line
from kiltstore.services.payment_gateway import PaymentGateway
from kiltstore.web import readable_time

TIMEOUT = 20.0


def test_a_sett_is_mirrored_about_its_ends() -> None:
    assert stripes("K4 R24 G2") == [("#151515", 4), ("#a3162b", 24), ("#1f4d2b", 2),
                                    ("#a3162b", 24)]
    with pytest.raises(ValueError, match="not a thread-count stripe: 'Q4'"):
        stripes("K4 Q4")
    with pytest.raises(ValueError):
        stripes("K0 R4")


def test_every_tartan_has_a_swatch_of_its_own() -> None:
    drawings = {tartan.slug: swatch_svg(tartan) for tartan in TARTAN_LIST}
    assert len(set(drawings.values())) == len(TARTAN_LIST)
    svg = drawings["royal-stewart"]
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'pattern id="sett-royal-stewart-160"' in svg
    assert "#a3162b" in svg  # Royal Stewart is red
    assert BY_SLUG["black-watch"].name == "Black Watch"


def test_styles_change_the_price() -> None:
    assert unit_price("Black Watch") == 42_000
    assert unit_price("Black Watch", "Casual 5-yard") == 34_000
    assert unit_price("Black Watch", "Box-pleated") == 48_000
    assert unit_price("Tesco Value") == unit_price("Black Watch", "Kilt-ish") == 0
    assert set(STYLES) == {"Traditional 8-yard", "Casual 5-yard", "Box-pleated"}


def test_a_basket_line_is_checked() -> None:
    line = basket_line({"tartan": "Royal Stewart", "style": "Box-pleated", "size": "L",
                        "waist_cm": "90", "hip_cm": "100", "length_cm": "60", "qty": "2"})
    assert line["price_pence"] == 51_000 and line["qty"] == 2
    with pytest.raises(FormError) as refused:
        basket_line({"tartan": "Tesco Value", "size": "Q", "waist_cm": "x", "qty": "1"})
    assert "we don't weave the tartan 'Tesco Value'" in str(refused.value)
    assert "unknown size 'Q'" in str(refused.value)
    assert "measurements and quantity must be numbers" in str(refused.value)


def test_dates_are_readable() -> None:
    assert readable_time("2026-12-06T09:50:12+00:00") == "6 Dec 2026, 09:50:12 UTC"
    assert readable_time("2026-12-06T09:50:12") == "6 Dec 2026, 09:50:12"
    assert readable_time("20240501T10:00:00") == "1 May 2024, 10:00:00"
    assert readable_time("soon") == "soon"
    assert readable_time("") == ""


@pytest.mark.parametrize(
    ("message_id", "order_id"),
    [("web-3:approved", "web-3"), ("web-3", "web-3"), ("web-3:cancel", "web-3"),
     ("crm-order-7", "crm-7"), ("phone-2", "phone-2"), ("phone-slip-2", "phone-2"),
     ("poison-1", ""), ("sha256:ab", ""), ("dead:web-1:x", "")],
)
def test_history_names_the_order_of_a_message(message_id: str, order_id: str) -> None:
    assert order_id_of(message_id) == order_id


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[PaymentGateway]:
    service = PaymentGateway(Settings(data_dir=tmp_path))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def test_gateway_refunds_once_and_never_more_than_was_charged(
    gateway: PaymentGateway,
) -> None:
    url = gateway.urls["payment gateway"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http:

        async def post(path: str, body: dict[str, object]) -> dict[str, object]:
            async with http.post(url + path, json=body) as response:
                assert response.status == 200
                answer: dict[str, object] = await response.json()
                return answer

        charge = await post("/charges", {"idempotency_key": "web-1", "amount_pence": 42_000,
                                          "card_number": "4242424242424242"})
        refund = {"idempotency_key": "refund-web-1", "charge_id": charge["charge_id"],
                  "amount_pence": 42_000}
        first = await post("/refunds", refund)
        again = await post("/refunds", refund)
        more = await post("/refunds", {**refund, "idempotency_key": "refund-web-1-b"})
        unknown = await post("/refunds", {**refund, "idempotency_key": "x",
                                          "charge_id": "ch_nothing"})
        async with http.post(url + "/refunds", json={"charge_id": 1}) as response:
            assert response.status == 400
        async with http.get(url + "/") as response:
            assert "refund-web-1" in await response.text()
    assert first["status"] == "refunded" and first["replayed"] is False
    assert again["refund_id"] == first["refund_id"] and again["replayed"] is True
    assert (more["status"], more["reason"]) == ("refused", "more than was charged")
    assert (unknown["status"], unknown["reason"]) == ("refused", "no such approved charge")
