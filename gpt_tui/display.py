"""How a token and a probability are written for a person: shared by the CLI and the app."""

from __future__ import annotations

import math

# Whitespace is invisible in a table cell, yet which space a token carries is the point of
# looking at it (" the" and "the" are different tokens): show it with visible marks.
_VISIBLE = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})


def visible_token(text: str) -> str:
    """A token's text with its whitespace made visible; the empty string shows as ∅."""
    return text.translate(_VISIBLE) if text else "∅"


def percent(p: float) -> str:
    """Probabilities span many orders of magnitude: three significant digits, never "0.0%";
    "?" where it is not known (a server that reported none)."""
    if p != p:  # NaN
        return "?"
    return f"{p * 100:.3g}%"


# Eight heights of a block character, for a probability drawn in one cell.
_BLOCKS = " ▁▂▃▄▅▆▇█"


def heat(p: float) -> str:
    """One cell whose height is p (0..1): the row where the answer appears stands out."""
    return _BLOCKS[round(max(0.0, min(1.0, p)) * (len(_BLOCKS) - 1))]


def patch_colour(value: float) -> str:
    """A patching heat map's cell colour (#rrggbb) for a normalised value: blue towards 1
    (the patch restores the clean run), red towards -1, dark near 0."""
    v = max(-1.0, min(1.0, value)) if math.isfinite(value) else 0.0
    dark = 40 * (1 - abs(v))
    rgb = (dark, dark + 90 * v, dark + 215 * v) if v >= 0 else (dark - 215 * v, dark, dark)
    return "#{:02x}{:02x}{:02x}".format(*(int(round(c)) for c in rgb))


def short_percent(p: float) -> str:
    """A probability in at most 6 characters: a lens row's target is often one in 10^40."""
    return percent(p) if p >= 1e-4 else "<0.01%"


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def human_count(n: int) -> str:
    """124439808 -> "124M"; 1557611200 -> "1.56B"."""
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    if n >= 1e3:
        return f"{n / 1e3:.0f}k"
    return str(n)


def human_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"
