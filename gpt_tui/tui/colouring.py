"""Colouring output tokens by what the model thought of them.

Two modes besides "off": "probability" (red for unlikely through yellow to green for likely, on a
log scale, because the difference between 0.1% and 1% matters as much as between 10% and 100%) and
"rank" (GLTR's buckets: was the token the model's first choice, in its top 10, its top 100, or
beyond?). Colours are backgrounds with dark text, readable on light and dark themes alike.
"""

from __future__ import annotations

import math
from functools import lru_cache

from rich.color import Color
from rich.style import Style
from textual.content import Content

from gpt_tui.engine import rank_bucket

MODES = ("off", "probability", "rank")
MODE_LABELS = {"off": "off", "probability": "by probability", "rank": "by rank"}

# GLTR's buckets (`gpt_tui.engine.scoring.RANK_BUCKETS`), by label.
RANK_COLOURS = {"top-1": "#66bb6a", "top-10": "#ffee58", "top-100": "#ffa726", "beyond": "#ef5350"}

# Probability scale: p = 10^-3 (or less) is red, 10^-1.5 yellow, 1 green.
_LOW, _MID, _HIGH = (0xEF, 0x53, 0x50), (0xFF, 0xEE, 0x58), (0x66, 0xBB, 0x6A)
_DECADES = 3
_TEXT = Color.parse("#111111")


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


def token_style(mode: str, prob: float, rank: int) -> Style | None:
    """The background for a token under colouring `mode` (None: no colouring)."""
    if mode == "probability":
        return probability_style(prob)
    if mode == "rank":
        return _bucket_style(rank_bucket(rank))
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
    return Content("")
