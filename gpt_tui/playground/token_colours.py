"""Colouring tokens by what the model thought of them, as plain hex colours.

Three modes besides "off": "probability" (red for unlikely through yellow to green for likely, on
a log scale, because the difference between 0.1% and 1% matters as much as between 10% and 100%),
"rank" (GLTR's buckets: was the token the model's first choice, in its top 10, its top 100, or
beyond?) and "surprisal" (-log2 p, in bits: one hue getting darker the more a token surprised the
model, so that the surprising ones stand out of a pale text, as in a heat map). Colours are
backgrounds with a text colour of their own, readable on light and dark themes alike.

The app (`gpt_tui.tui.colouring`, as rich styles) and the shared HTML page
(`playground/session_page.py`, as CSS) both colour through `token_colours`, so they cannot drift.
"""

from __future__ import annotations

import math
from functools import lru_cache

from gpt_tui.engine import rank_bucket

MODES = ("off", "probability", "rank", "surprisal")
MODE_LABELS = {
    "off": "off",
    "probability": "by probability",
    "rank": "by rank",
    "surprisal": "by surprisal",
}

# GLTR's buckets (`gpt_tui.engine.scoring.RANK_BUCKETS`), by label.
RANK_COLOURS = {"top-1": "#66bb6a", "top-10": "#ffee58", "top-100": "#ffa726", "beyond": "#ef5350"}

# Probability scale: p = 10^-3 (or less) is red, 10^-1.5 yellow, 1 green.
_LOW, _MID, _HIGH = (0xEF, 0x53, 0x50), (0xFF, 0xEE, 0x58), (0x66, 0xBB, 0x6A)
_DECADES = 3
DARK_TEXT = "#111111"

# Surprisal scale: 0 bits pale violet, MAX_BITS (p = 1/4096) or more deep violet.
_PALE, _VIOLET, _DEEP = (0xF2, 0xF0, 0xF7), (0x9E, 0x9A, 0xC8), (0x54, 0x27, 0x8F)
MAX_BITS = 12.0
_LIGHT_TEXT = "#ffffff"  # on the darker half of the scale

# Each scale is drawn in 33 steps: finer differences would not be seen, and the app caches a
# style per step.
_STEPS = 32

Colours = tuple[str, str]  # (text, background), "#rrggbb"


def probability_level(p: float) -> float:
    """0 (p <= 0.1%) .. 1 (p = 1), linear in log10(p)."""
    if p <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 + math.log10(p) / _DECADES))


def surprisal_bits(p: float) -> float:
    """-log2 p: how many bits of information the token carried for the model."""
    return -math.log2(p) if p > 0 else math.inf


def surprisal_level(bits: float) -> float:
    """0 (no surprise) .. 1 (MAX_BITS or more), linear in bits."""
    return min(1.0, max(0.0, bits / MAX_BITS))


def _blend(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    r, g, b_ = (round(a[i] + (b[i] - a[i]) * t) for i in range(3))
    return f"#{r:02x}{g:02x}{b_:02x}"


@lru_cache(maxsize=64)
def _probability_step(step: int) -> Colours:
    level = step / _STEPS
    rgb = _blend(_LOW, _MID, level * 2) if level < 0.5 else _blend(_MID, _HIGH, level * 2 - 1)
    return DARK_TEXT, rgb


@lru_cache(maxsize=64)
def _surprisal_step(step: int) -> Colours:
    level = step / _STEPS
    if level < 0.5:
        rgb = _blend(_PALE, _VIOLET, level * 2)
    else:
        rgb = _blend(_VIOLET, _DEEP, level * 2 - 1)
    return (DARK_TEXT if level < 0.55 else _LIGHT_TEXT), rgb


def probability_colours(p: float) -> Colours:
    return _probability_step(round(probability_level(p) * _STEPS))


def surprisal_colours(bits: float) -> Colours:
    return _surprisal_step(round(surprisal_level(bits) * _STEPS))


def token_colours(mode: str, prob: float, rank: int, rank_known: bool = True) -> Colours | None:
    """(text, background) for a token under colouring `mode` (None: no colouring, also where the
    figure is unknown: a server that reported no probability, a rank beyond what it listed)."""
    if math.isnan(prob) or rank <= 0:
        return None
    if mode == "probability":
        return probability_colours(prob)
    if mode == "rank":
        return (DARK_TEXT, RANK_COLOURS[rank_bucket(rank)]) if rank_known else None
    if mode == "surprisal":
        return surprisal_colours(surprisal_bits(prob))
    return None


def legend_stops(mode: str) -> list[tuple[str, Colours]]:
    """The labelled colours that explain `mode`'s scale, in order (none for "off")."""
    if mode == "rank":
        return [(label, (DARK_TEXT, colour)) for label, colour in RANK_COLOURS.items()]
    if mode == "probability":
        stops = ((1e-3, "≤0.1%"), (1e-2, "1%"), (10**-1.5, "3%"), (1e-1, "10%"), (0.5, "50%"),
                 (1.0, "100%"))  # fmt: skip
        return [(label, probability_colours(p)) for p, label in stops]
    if mode == "surprisal":
        return [
            (f"{bits}+" if bits == MAX_BITS else str(bits), surprisal_colours(bits))
            for bits in range(0, int(MAX_BITS) + 1, 2)
        ]
    return []


# What a legend calls each mode's scale, and the unit after it.
LEGEND_TITLES = {"rank": ("rank", ""), "probability": ("probability", ""),
                 "surprisal": ("surprisal", "bits")}  # fmt: skip
