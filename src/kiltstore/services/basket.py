"""The web store's catalogue pages and the customer's basket.

A basket lives in the web store's database under a random id kept in a cookie
(``kilt_basket``); it holds order lines in the checkout document's own shape
(``tartan``, ``style``, ``size``, measurements in centimetres, ``qty``,
``price_pence`` from the price list). Checking out turns the basket into one order.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from aiohttp import web

from kiltstore.catalogue import BY_SLUG, STYLE_NOTES, TARTAN_LIST, style_prices, swatch_svg
from kiltstore.domain import (
    DEFAULT_STYLE,
    MAX_QUANTITY,
    SIZES,
    STYLES,
    TARTANS,
    now_iso,
    unit_price,
)
from kiltstore.storage import Database
from kiltstore.web import render

SCHEMA = """
CREATE TABLE IF NOT EXISTS baskets (
    id      TEXT PRIMARY KEY,
    lines   TEXT NOT NULL,
    updated TEXT NOT NULL
);
"""
COOKIE = "kilt_basket"


class FormError(ValueError):
    """A form the store refuses, with the reasons (shown to the customer)."""


def basket_line(form: dict[str, str]) -> dict[str, Any]:
    """An order line from the product form; :class:`FormError` if it can't be one."""
    tartan = form.get("tartan", "")
    style = form.get("style", "") or DEFAULT_STYLE
    size = form.get("size", "")
    problems = []
    if tartan not in TARTANS:
        problems.append(f"we don't weave the tartan {tartan[:60]!r}")
    if style not in STYLES:
        problems.append(f"we don't make the style {style[:60]!r}")
    if size not in SIZES:
        problems.append(f"unknown size {size[:8]!r}")
    try:
        waist = float(form.get("waist_cm", ""))
        hip = float(form.get("hip_cm", ""))
        length = float(form.get("length_cm", ""))
        qty = int(form.get("qty", "1") or "1")
    except ValueError:
        problems.append("measurements and quantity must be numbers")
        waist = hip = length = 0.0
        qty = 1
    if not 1 <= qty <= MAX_QUANTITY:
        problems.append(f"quantity must be between 1 and {MAX_QUANTITY}")
    if problems:
        raise FormError("; ".join(problems))
    return {"tartan": tartan, "style": style, "size": size, "waist_cm": waist, "hip_cm": hip,
            "length_cm": length, "qty": qty, "price_pence": unit_price(tartan, style)}


def total_pence(lines: list[dict[str, Any]]) -> int:
    return sum(int(line["price_pence"]) * int(line["qty"]) for line in lines)


class Basket:
    """The baskets in a web store's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def lines(self, basket_id: str) -> list[dict[str, Any]]:
        row = self.db.query_one("SELECT lines FROM baskets WHERE id = ?", (basket_id,))
        return list(json.loads(row["lines"])) if row is not None else []

    def save(self, basket_id: str, lines: list[dict[str, Any]]) -> None:
        with self.db.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO baskets VALUES (?, ?, ?)",
                       (basket_id, json.dumps(lines), now_iso()))

    def add(self, basket_id: str, line: dict[str, Any]) -> None:
        lines = self.lines(basket_id)
        kilts = sum(int(x["qty"]) for x in lines) + int(line["qty"])
        if kilts > MAX_QUANTITY:  # as the validator: at most MAX_QUANTITY kilts an order
            raise FormError(f"a basket holds at most {MAX_QUANTITY} kilts (this one would "
                            f"hold {kilts}), the most we take in one order")
        self.save(basket_id, [*lines, line])

    def remove(self, basket_id: str, index: int) -> None:
        lines = self.lines(basket_id)
        if 0 <= index < len(lines):
            del lines[index]
            self.save(basket_id, lines)


def basket_id(request: web.Request) -> str:
    return request.cookies.get(COOKIE, "")[:64]


class ShopPages:
    """The catalogue, the product pages and the basket (``GET /``, ``/kilts/<slug>``,
    ``/basket``)."""

    def __init__(self, db: Database) -> None:
        self.basket = Basket(db)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.catalogue)
        app.router.add_get("/kilts/{slug}", self.product)
        app.router.add_get("/basket", self.basket_page)
        app.router.add_post("/basket", self.add_to_basket)
        app.router.add_post("/basket/{index:\\d+}/remove", self.remove_from_basket)

    def count(self, request: web.Request) -> int:
        return sum(int(line["qty"]) for line in self.basket.lines(basket_id(request)))

    async def catalogue(self, request: web.Request) -> web.Response:
        return render("shop.html", tartans=TARTAN_LIST, swatch=swatch_svg,
                      style_notes=STYLE_NOTES, basket_count=self.count(request))

    async def product(self, request: web.Request) -> web.Response:
        tartan = BY_SLUG.get(request.match_info["slug"])
        if tartan is None:
            raise web.HTTPNotFound(text="we don't weave that tartan")
        return render("product.html", tartan=tartan, swatch=swatch_svg,
                      prices=style_prices(tartan.name), style_notes=STYLE_NOTES, form={},
                      error="", basket_count=self.count(request))

    async def add_to_basket(self, request: web.Request) -> web.Response:
        posted = await request.post()
        form = {name: str(value).strip()[:100] for name, value in posted.items()}
        the_id = basket_id(request) or secrets.token_urlsafe(16)
        try:
            self.basket.add(the_id, basket_line(form))
        except FormError as exc:
            tartan = BY_SLUG.get(form.get("slug", "")) or TARTAN_LIST[0]
            return render("product.html", tartan=tartan, swatch=swatch_svg,
                          prices=style_prices(tartan.name), style_notes=STYLE_NOTES,
                          form=form, error=str(exc), basket_count=self.count(request),
                          http_status=400)
        response = web.HTTPSeeOther("/basket")
        response.set_cookie(COOKIE, the_id, httponly=True, samesite="Lax")
        raise response

    async def remove_from_basket(self, request: web.Request) -> web.Response:
        self.basket.remove(basket_id(request), int(request.match_info["index"]))
        raise web.HTTPSeeOther("/basket")

    async def basket_page(self, request: web.Request) -> web.Response:
        lines = self.basket.lines(basket_id(request))
        return render("basket.html", lines=lines, total=total_pence(lines),
                      slugs={t.name: t.slug for t in TARTAN_LIST}, swatch=swatch_svg,
                      by_slug=BY_SLUG, basket_count=sum(int(x["qty"]) for x in lines))
