"""The compare view's status line: model, state, how many columns, the batch's speed."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from gpt_tui.playground.streaming import RunStats

NARROW = 120  # cells: below this the line keeps the state, the columns and the batch's speed

STATES = {
    "idle": ("ready: F5 runs every column", "$text-muted"),
    "generating": ("generating…", "$success"),
    "done": ("done", "$text-muted"),
    "user": ("stopped by you", "$text-muted"),
    "error": ("failed", "$error"),
}


class CompareStatus(Widget):
    """One line under the columns. The speed is the batch's: tokens of every column per second,
    which is what decoding them together buys over running them one after another."""

    DEFAULT_CSS = """
        CompareStatus {
            height: 1;
            background: $panel;
        }
    """

    model: reactive[str] = reactive("")
    state: reactive[str] = reactive("idle")
    n_columns: reactive[int] = reactive(0)
    n_prompt: reactive[int] = reactive(0)
    stats: reactive[RunStats | None] = reactive(None)
    shown: reactive[tuple[int, int] | None] = reactive(None)  # (first, last) when not all fit

    def render(self) -> Content:
        text, colour = STATES.get(self.state, (self.state, "$text"))
        sep = (" │ ", "$text-muted")
        parts: list[str | tuple[str, str]] = [(f" {self.model} ", "bold"), sep, (text, colour)]
        if self.shown is not None:
            first, last = self.shown
            which = f"{first}–{last}" if last > first else f"{first}"
            parts += [sep, (f"columns {which} of {self.n_columns} (1-{self.n_columns}: show)",
                            "$warning")]  # fmt: skip
        else:
            parts += [sep, f"{self.n_columns} columns"]
        stats = self.stats
        narrow = 0 < self.size.width < NARROW  # the speed says less; the prompt's size goes
        if stats is not None and stats.n_tokens:
            rate = stats.decode_rate
            if rate is not None and self.n_columns:
                each = "" if narrow else f" ({rate / self.n_columns:.1f} per column)"
                parts += [sep, f"{rate:.1f} tok/s batch{each}"]
            if stats.ttft is not None and not narrow:
                parts += [sep, f"TTFT {stats.ttft:.2f} s"]
        if not narrow:
            parts += [sep, f"prompt {self.n_prompt} tokens"]
        return Content.assemble(*parts)

    def on_resize(self) -> None:
        self.refresh()  # what fits depends on the width
