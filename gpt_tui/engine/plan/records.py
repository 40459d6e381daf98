"""The plan's records: what was chosen, what each candidate measured, where the plan came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpt_tui.engine.cores import Settings

PLAN_VERSION = 6  # part of a plan's key: a kept plan of another version is measured again
# 2: the weights' layout is planned (blocks or rows); 3: and the prefill's chunk;
# 4: rows compute 2-8 rows as block @ x^T; 5: or as x @ block^T, planned by row count
PREFILL_ROWS = 256  # the rows a prefill chunk's splits are timed on (the smallest chunk)
LAYOUT_NAMES = {
    "blocks": "column blocks of 64 (engine/blocked.py)",
    "rows": "rows of W^T, rearranged at load (engine/rows.py)",
}
ONE_ROW = {"blocks": " (computed as 2 rows)", "rows": " (W^T @ x)"}


@dataclass(frozen=True)
class Timing:
    """One candidate's measured time for one kind of product (the fastest of the rounds)."""

    kind: str  # "decode 1 row", "prefill 256 rows", "attention 1024 keys", ...
    candidate: str
    seconds: float


@dataclass(frozen=True)
class Plan:
    settings: Settings
    key: dict[str, Any]
    timings: tuple[Timing, ...] = ()
    measured_s: float = 0.0  # how long measuring took (kept with the plan; 0: nothing measured)
    source: str = (
        "measured"  # "measured, kept in PATH", "... in memory", "loaded from PATH", "default"
    )
    notice: str | None = None  # a one-line message for the user (a plan file ignored, ...)

    @property
    def just_measured(self) -> bool:
        """Measured by this process, not loaded from a kept file: worth telling the user once."""
        return self.source.startswith("measured")

    def describe(self) -> list[tuple[str, str]]:
        """(kind of work, what the plan does) rows, for `gpt-tui bench`."""
        s = self.settings
        one_row = ONE_ROW.get(s.layout, "")
        rows = [("weights' layout", LAYOUT_NAMES.get(s.layout, s.layout))]
        rows += [(f"decode, {r} row{'s' * (r > 1)}", split.describe() + (one_row if r == 1 else ""))
                 for r, split in sorted(s.decode.items())]  # fmt: skip
        rows.append((f"prefill, chunks of {PREFILL_ROWS}", s.prefill.describe()))
        rows.append(("prefill chunk", f"{s.prefill_chunk} positions per step"))
        attention = (
            "one core"
            if s.attention_min_keys is None
            else f"shared between {s.attention_parts} cores from {s.attention_min_keys} keys"
        )
        rows.append(("decode attention", attention))
        shared = f", shared between {s.prefill_attention_parts} cores by heads"
        rows.append(("prefill attention", f"{s.query_tile} positions at a time"
                     + (shared if s.prefill_attention_parts > 1 else "")))  # fmt: skip
        return rows
