"""Colouring output tokens by what the model thought of them.

Three modes besides "off": "probability" (red for unlikely through yellow to green for likely, on
a log scale, because the difference between 0.1% and 1% matters as much as between 10% and 100%),
"rank" (GLTR's buckets: was the token the model's first choice, in its top 10, its top 100, or
beyond?) and "surprisal" (-log2 p, in bits: one hue getting darker the more a token surprised the
model, so that the surprising ones stand out of a pale text, as in a heat map). Colours are
backgrounds with a text colour of their own, readable on light and dark themes alike.
"""

from __future__ import annotations

import math
from functools import lru_cache

from rich.color import Color
from rich.style import Style
from textual.content import Content

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
_TEXT = Color.parse("#111111")

# Surprisal scale: 0 bits pale violet, MAX_BITS (p = 1/4096) or more deep violet.
_PALE, _VIOLET, _DEEP = (0xF2, 0xF0, 0xF7), (0x9E, 0x9A, 0xC8), (0x54, 0x27, 0x8F)
MAX_BITS = 12.0
_LIGHT_TEXT = Color.parse("#ffffff")  # on the darker half of the scale


@lru_cache(maxsize=8)
def _bucket_style(label: str) -> Style:
    return Style(color=_TEXT, bgcolor=Color.parse(RANK_COLOURS[label]))


def probability_level(p: float) -> float:
    """0 (p <= 0.1%) .. 1 (p = 1), linear in log10(p)."""
    if p <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 + math.log10(p) / _DECADES))


def _blend(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


@lru_cache(maxsize=64)
def _level_style(step: int) -> Style:
    level = step / 32
    rgb = _blend(_LOW, _MID, level * 2) if level < 0.5 else _blend(_MID, _HIGH, level * 2 - 1)
    return Style(color=_TEXT, bgcolor=Color.from_rgb(*rgb))


def probability_style(p: float) -> Style:
    return _level_style(round(probability_level(p) * 32))


def surprisal_bits(p: float) -> float:
    """-log2 p: how many bits of information the token carried for the model."""
    return -math.log2(p) if p > 0 else math.inf


def surprisal_level(bits: float) -> float:
    """0 (no surprise) .. 1 (MAX_BITS or more), linear in bits."""
    return min(1.0, max(0.0, bits / MAX_BITS))


@lru_cache(maxsize=64)
def _surprisal_step_style(step: int) -> Style:
    level = step / 32
    if level < 0.5:
        rgb = _blend(_PALE, _VIOLET, level * 2)
    else:
        rgb = _blend(_VIOLET, _DEEP, level * 2 - 1)
    return Style(color=_TEXT if level < 0.55 else _LIGHT_TEXT, bgcolor=Color.from_rgb(*rgb))


def surprisal_style(bits: float) -> Style:
    return _surprisal_step_style(round(surprisal_level(bits) * 32))


def token_style(mode: str, prob: float, rank: int, rank_known: bool = True) -> Style | None:
    """The background for a token under colouring `mode` (None: no colouring, also where the
    figure is unknown: a server that reported no probability, a rank beyond what it listed)."""
    if math.isnan(prob) or rank <= 0:
        return None
    if mode == "probability":
        return probability_style(prob)
    if mode == "rank":
        return _bucket_style(rank_bucket(rank)) if rank_known else None
    if mode == "surprisal":
        return surprisal_style(surprisal_bits(prob))
    return None


def legend(mode: str) -> Content:
    """One line explaining the colours of `mode`."""
    if mode == "rank":
        parts: list[str | tuple[str, str]] = ["rank: "]
        for label, colour in RANK_COLOURS.items():
            parts += [(f" {label} ", f"#111111 on {colour}"), " "]
        return Content.assemble(*parts)
    if mode == "probability":
        parts = ["probability: "]
        for p, label in ((1e-3, "≤0.1%"), (1e-2, "1%"), (10**-1.5, "3%"), (1e-1, "10%"),
                         (0.5, "50%"), (1.0, "100%")):  # fmt: skip
            style = probability_style(p)
            assert style.bgcolor is not None
            parts += [(f" {label} ", f"#111111 on {style.bgcolor.get_truecolor().hex}"), " "]
        return Content.assemble(*parts)
    if mode == "surprisal":
        parts = ["surprisal: "]
        for bits in range(0, int(MAX_BITS) + 1, 2):
            style = surprisal_style(bits)
            assert style.bgcolor is not None and style.color is not None
            label = f"{bits}+" if bits == MAX_BITS else str(bits)
            colours = f"{style.color.get_truecolor().hex} on {style.bgcolor.get_truecolor().hex}"
            parts += [(f" {label} ", colours), " "]
        return Content.assemble(*parts, "bits")
    return Content("")
