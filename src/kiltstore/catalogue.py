"""The shop's catalogue: each tartan's thread count (its sett) and a swatch drawn from it.

A tartan is woven from a *thread count*: colour letters with the number of threads of
each (``K4 R24 ...``), mirrored about its ends (a symmetric sett), the same across the
warp and the weft. :func:`swatch_svg` draws it as an SVG pattern: weft stripes across,
warp stripes down at half opacity, so where two colours cross they mix as in the cloth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

from kiltstore.domain import STYLES, TARTANS, unit_price

#: Colours of the thread-count letters.
COLOURS: dict[str, str] = {
    "K": "#151515",  # black
    "B": "#1b2a49",  # navy blue
    "G": "#1f4d2b",  # green
    "R": "#a3162b",  # red
    "Y": "#e3c21a",  # yellow
    "W": "#f2f2f2",  # white
    "P": "#6b5b95",  # purple
    "T": "#2f6f6f",  # teal
    "O": "#8a6d12",  # old gold
}

#: Each tartan's thread count (half sett, mirrored at both ends).
THREAD_COUNTS: dict[str, str] = {
    "Black Watch": "B22 K2 B2 K2 B2 K16 G16 K2 G16 K16 B16 K2",
    "Royal Stewart": "R56 B8 K12 Y2 K12 W2 K2 G16 R8 K2 R4 W2",
    "MacGrudder Hunting": "G24 K8 B8 K2 O4 K2 B8 K8 G6 R2",
    "Dress Gordon": "W24 B16 K2 B2 K2 B2 K16 G16 Y4 G16",
    "MacLeod of Lewis": "Y32 K16 R2 K16 Y4",
    "Isle of Skye": "P16 T8 G12 K4 P6 W2",
}

#: What each kilt style is, for the catalogue.
STYLE_NOTES: dict[str, str] = {
    "Traditional 8-yard": "eight yards of cloth, knife-pleated to the sett",
    "Casual 5-yard": "lighter, five yards, for every day",
    "Box-pleated": "deep box pleats, the old Highland way",
}

_STRIPE = re.compile(r"^([A-Z])(\d{1,3})$")


@dataclass(frozen=True)
class Tartan:
    name: str
    slug: str
    price_pence: int  # the traditional kilt
    thread_count: str


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


TARTAN_LIST: tuple[Tartan, ...] = tuple(
    Tartan(name, slug(name), price, THREAD_COUNTS.get(name, "K8 G8"))
    for name, price in TARTANS.items()
)
BY_SLUG: dict[str, Tartan] = {tartan.slug: tartan for tartan in TARTAN_LIST}


def stripes(thread_count: str) -> list[tuple[str, int]]:
    """The full sett of a thread count: (colour, threads), mirrored about its ends.
    ``ValueError`` for an unknown colour or a malformed stripe."""
    half: list[tuple[str, int]] = []
    for part in thread_count.split():
        match = _STRIPE.match(part)
        if match is None or match.group(1) not in COLOURS or int(match.group(2)) == 0:
            raise ValueError(f"not a thread-count stripe: {part!r}")
        half.append((COLOURS[match.group(1)], int(match.group(2))))
    if len(half) < 2:
        return half
    return half + half[-2:0:-1]


def swatch_svg(tartan: Tartan, *, size: int = 160, scale: float = 1.0, label: str = "") -> str:
    """An inline SVG swatch of ``tartan``, ``size`` pixels square (``scale`` pixels per
    thread)."""
    sett = stripes(tartan.thread_count)
    width = sum(threads for _, threads in sett) * scale
    pattern_id = f"sett-{tartan.slug}-{size}"
    weft: list[str] = []
    warp: list[str] = []
    offset = 0.0
    for colour, threads in sett:
        band = threads * scale
        weft.append(f'<rect x="0" y="{offset:g}" width="{width:g}" height="{band:g}" '
                    f'fill="{colour}"/>')
        warp.append(f'<rect x="{offset:g}" y="0" width="{band:g}" height="{width:g}" '
                    f'fill="{colour}" fill-opacity="0.55"/>')
        offset += band
    title = escape(label or f"{tartan.name} tartan ({tartan.thread_count})")
    return (
        f'<svg class="tartan-swatch" xmlns="http://www.w3.org/2000/svg" width="{size}" '
        f'height="{size}" viewBox="0 0 {size} {size}" role="img" '
        f'data-tartan="{escape(tartan.name)}"><title>{title}</title>'
        f'<defs><pattern id="{pattern_id}" width="{width:g}" height="{width:g}" '
        f'patternUnits="userSpaceOnUse">{"".join(weft)}{"".join(warp)}</pattern></defs>'
        f'<rect width="{size}" height="{size}" fill="url(#{pattern_id})"/></svg>'
    )


def style_prices(tartan: str) -> dict[str, int]:
    """Price of a kilt of ``tartan`` in each style, in pence."""
    return {style: unit_price(tartan, style) for style in STYLES}
