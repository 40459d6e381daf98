"""Colouring output tokens by what the model thought of them, as rich styles.

The colours themselves are `gpt_tui.playground.token_colours`' (shared with the HTML page a session
exports); this module turns them into the styles the app draws with, and draws the legend.
"""

from __future__ import annotations

from functools import lru_cache

from rich.color import Color
from rich.style import Style
from textual.content import Content

from gpt_tui.playground.token_colours import (
    LEGEND_TITLES,
    MAX_BITS,
    MODE_LABELS,
    MODES,
    legend_stops,
    probability_colours,
    probability_level,
    surprisal_bits,
    surprisal_colours,
    surprisal_level,
    token_colours,
)

__all__ = [
    "MAX_BITS",
    "MODES",
    "MODE_LABELS",
    "legend",
    "probability_level",
    "probability_style",
    "surprisal_bits",
    "surprisal_level",
    "surprisal_style",
    "token_style",
]


@lru_cache(maxsize=256)
def _style(text: str, background: str) -> Style:
    return Style(color=Color.parse(text), bgcolor=Color.parse(background))


def probability_style(p: float) -> Style:
    return _style(*probability_colours(p))


def surprisal_style(bits: float) -> Style:
    return _style(*surprisal_colours(bits))


def token_style(mode: str, prob: float, rank: int, rank_known: bool = True) -> Style | None:
    """The style for a token under colouring `mode` (`token_colours` says when there is none)."""
    colours = token_colours(mode, prob, rank, rank_known)
    return None if colours is None else _style(*colours)


def legend(mode: str) -> Content:
    """One line explaining the colours of `mode`."""
    stops = legend_stops(mode)
    if not stops:
        return Content("")
    title, unit = LEGEND_TITLES[mode]
    parts: list[str | tuple[str, str]] = [f"{title}: "]
    for label, (text, background) in stops:
        parts += [(f" {label} ", f"{text} on {background}"), " "]
    return Content.assemble(*parts, unit)
