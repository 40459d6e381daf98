"""Attention from the examined position over the context: each token shaded by its weight.

One layer at a time (↑/↓), as the mean over heads, the max over heads, or one head (←/→; a
grouped-query model's query heads each have their own row, and the kv head they read is named).
Most attention often lands on the first token (an "attention sink"); `f` hides it, and the
shading is then relative to the largest weight among the others.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from gpt_tui.display import visible_token
from gpt_tui.playground.look_inside import LensReport
from gpt_tui.tui.text import display_text

# Backgrounds from faint to strong, with a text colour that stays readable on each.
SHADES = ("#3a2a18", "#5a3a12", "#7a4a0c", "#9a5a06", "#bb6a00", "#dd7c00", "#ff9020", "#ffb060")
N_LISTED = 5
MEAN, MAX = -2, -1  # head modes besides a single head


def shade(weight: float, largest: float) -> str:
    """The rich style of a token with `weight`, on a scale where `largest` is the strongest."""
    if largest <= 0 or weight < 0.02 * largest:
        return ""
    level = min(len(SHADES) - 1, int(weight / largest * len(SHADES)))
    return f"{'black' if level >= 5 else 'white'} on {SHADES[level]}"


class AttentionView(VerticalScroll, can_focus=True):
    """The context shaded by one layer's attention from the examined position."""

    DEFAULT_CSS = """
        AttentionView {
            height: 1fr;
            padding: 0 1;
        }
        AttentionView:focus {
            background: $boost;
        }
        AttentionView #attention-text {
            margin: 1 0;
        }
        AttentionView #attention-top {
            color: $text-muted;
        }
    """

    BINDINGS = [
        Binding("up", "layer(-1)", "Layer up", tooltip="The previous layer"),
        Binding("down", "layer(1)", "Layer down", tooltip="The next layer"),
        Binding("left", "head(-1)", "Heads", tooltip="Mean, max over heads, or one head"),
        Binding("right", "head(1)", "Heads", show=False),
        Binding("f", "toggle_first", "First token", tooltip="Hide or show the first token"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.report: LensReport | None = None
        self.block = 0  # 0-based block index
        self.head_mode = MEAN
        self.hide_first = False
        self.n_kv_head: int | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="attention-title")
        yield Static("", id="attention-text")
        yield Static("", id="attention-top")

    def show(self, report: LensReport, n_kv_head: int | None = None) -> None:
        self.report = report
        self.n_kv_head = n_kv_head
        self.block = min(self.block, report.attention.shape[0] - 1)
        self._draw()

    def action_layer(self, step: int) -> None:
        if self.report is not None:
            self.block = (self.block + step) % self.report.attention.shape[0]
            self._draw()

    def action_head(self, step: int) -> None:
        if self.report is not None:
            n_head = self.report.attention.shape[1]
            modes = [MEAN, MAX, *range(n_head)]
            self.head_mode = modes[(modes.index(self.head_mode) + step) % len(modes)]
            self._draw()

    def action_toggle_first(self) -> None:
        self.hide_first = not self.hide_first
        self._draw()

    def weights(self) -> np.ndarray:
        """The weights shown, over keys 0..N [N + 1]."""
        assert self.report is not None
        layer = self.report.attention[self.block]  # [n_head, N + 1]
        if self.head_mode == MEAN:
            return layer.mean(axis=0)
        if self.head_mode == MAX:
            return layer.max(axis=0)
        return layer[self.head_mode]

    def _head_label(self) -> str:
        n_head = self.report.attention.shape[1]  # type: ignore[union-attr]
        if self.head_mode == MEAN:
            return f"mean over {n_head} heads"
        if self.head_mode == MAX:
            return f"max over {n_head} heads"
        label = f"head {self.head_mode + 1}/{n_head}"
        if self.n_kv_head and self.n_kv_head < n_head:  # grouped-query: the kv head it reads
            kv_head = self.head_mode // (n_head // self.n_kv_head)
            label += f" (kv head {kv_head + 1}/{self.n_kv_head})"
        return label

    def _draw(self) -> None:
        report = self.report
        if report is None:
            return
        n_layer = report.attention.shape[0]
        weights = self.weights()  # [N + 1]
        shown = weights[1:] if self.hide_first and len(weights) > 1 else weights
        largest = float(shown.max()) if len(shown) else 0.0
        title = f"block {self.block + 1}/{n_layer} · {self._head_label()}"
        title += " · first token hidden" if self.hide_first else ""
        self.query_one("#attention-title", Static).update(Text(title, style="bold"))
        text = Text()
        for k, (token, w) in enumerate(zip(report.tokens, weights, strict=False)):
            piece = display_text(token.text)
            if k == 0 and self.hide_first:
                text.append(piece, style="dim strike")
                continue
            style = shade(float(w), largest)
            if k == report.position:
                style = f"{style} underline bold".strip()
            text.append(piece, style=style)
        self.query_one("#attention-text", Static).update(text)
        first = 1 if self.hide_first else 0
        order = np.argsort(weights[first:])[::-1][:N_LISTED] + first
        listed = Text("most attended: ", style="dim")
        for k in order:
            listed.append(f"“{visible_token(report.tokens[k].text)}” ", style="bold")
            listed.append(f"#{k} {weights[k]:.2f}  ", style="dim")
        self.query_one("#attention-top", Static).update(listed)
