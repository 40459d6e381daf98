"""The sampler view as a table: a step's likeliest tokens through every sampling stage.

One row per token (the model's likeliest, the final distribution's likeliest, the token taken),
one column per stage in the order they run, headed by its name: each cell the token's
probability after that stage, coloured as the output's probability colouring colours it. Where
a stage removes a token, its cell is what it had, marked ✗, struck through and dimmed; after
that a dot. Under the tokens, per stage: how many tokens are still possible, and the entropy
in bits. With draws on, a last column counts how often each token came out of N draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from rich.text import Text
from textual.widgets import DataTable

from gpt_tui.backends.openai.step import ServerStep
from gpt_tui.display import short_percent, visible_token
from gpt_tui.engine import Alternative
from gpt_tui.engine.sampling import SamplerView
from gpt_tui.playground.sampler_lab import Drawn
from gpt_tui.tui.colouring import probability_style

#: short headings, so that several stages fit at 80 columns (the status line names them whole)
HEADINGS = {
    "model": "model",
    "logit_bias": "bias",
    "banned_tokens": "banned",
    "penalties": "penalty",
    "dry": "DRY",
    "temperature": "temp",
    "top_k": "top-k",
    "top_p": "top-p",
    "min_p": "min-p",
    "typical_p": "typical",
    "top_n_sigma": "top-nσ",
    "xtc": "XTC",
    "mirostat": "mirostat",
}
LABEL_WIDTH = 11
TAKEN = "▶"
REMOVED = "✗"  # a cell whose token this stage removed (also struck, where a terminal can)


def heading(name: str) -> str:
    return HEADINGS.get(name, name)


class StageTable(DataTable):
    """The stages of one step (`show`), or what a server gave for it (`show_server`)."""

    DEFAULT_CSS = """
        StageTable {
            height: 1fr;
        }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.token_ids: list[int] = []  # the rows' tokens, in order

    def show(
        self,
        view: SamplerView,
        rows: Sequence[int],
        token_text: dict[int, str],
        taken: int,
        drawn: Drawn | None = None,
    ) -> None:
        """Draw `view` for the tokens `rows`; `taken` is the token the step took."""
        row = self.cursor_row
        self.clear(columns=True)
        self.add_column("token", key="token")
        for stage in view.stages:
            self.add_column(heading(stage.name), key=stage.name)
        if drawn is not None:
            self.add_column("drawn", key="draws")
        self.token_ids = list(rows)
        for token in rows:
            cells: list[Text] = [_label(token_text[token], token == taken)]
            before = math.nan
            for stage in view.stages:
                p = float(stage.probs[token])
                cells.append(_cell(p, before))
                before = p
            if drawn is not None:
                cells.append(Text(f"{int(drawn.counts[token]):,}", justify="right"))
            self.add_row(*cells, key=str(token))
        kept = [Text("possible", style="dim italic")]
        kept += [Text(f"{s.kept:,}", style="dim", justify="right") for s in view.stages]
        entropy = [Text("entropy bits", style="dim italic")]
        entropy += [Text(_bits(s.entropy), style="dim", justify="right") for s in view.stages]
        if drawn is not None:
            n_drawn = int(np.count_nonzero(drawn.counts))
            kept.append(Text(f"{n_drawn:,}", style="dim", justify="right"))
            entropy.append(Text(f"of {drawn.n:,}", style="dim", justify="right"))
        self.add_row(*kept, key="kept")
        self.add_row(*entropy, key="entropy")
        if self.row_count:
            self.move_cursor(row=min(max(row, 0), self.row_count - 1), animate=False)

    def show_server(self, top: Sequence[Alternative], taken: int) -> None:
        """What a server sent for the step: its alternatives, in one column."""
        self.clear(columns=True)
        self.add_column("token", key="token")
        self.add_column("server", key="server")
        self.token_ids = [a.token_id for a in top]
        for alt in top:
            self.add_row(_label(alt.text, alt.token_id == taken), _cell(alt.prob, math.nan),
                         key=str(alt.token_id))  # fmt: skip

    def show_server_step(self, step: ServerStep, taken: int, taken_text: str, n: int) -> None:
        """A server's step (llama-server): its top `n` before its sampling and after it. A
        token not listed after is removed there when the server listed fewer than `n` (its
        chain kept fewer), else unknown (past its top n): "?"."""
        row = self.cursor_row
        self.clear(columns=True)
        self.add_column("token", key="token")
        self.add_column("model", key="model")
        self.add_column("sampled", key="sampled")
        before = {a.token_id: a for a in step.before}
        after = {a.token_id: a for a in step.after or ()}
        complete = len(after) < n  # the chain kept fewer than n: every other token is gone
        rows = [*before, *(t for t in after if t not in before)]
        if taken not in before and taken not in after:
            rows.append(taken)
        self.token_ids = rows
        for token in rows:
            alt = before.get(token) or after.get(token)
            text = alt.text if alt is not None else taken_text
            p_before = before[token].prob if token in before else math.nan
            if token in after:
                cell = _cell(after[token].prob, p_before)
            elif complete:
                cell = _cell(0.0, p_before if token in before else 0.0)
            else:
                cell = _unknown()
            first = _cell(p_before, math.nan) if token in before else _unknown()
            self.add_row(_label(text, token == taken), first, cell, key=str(token))
        kept = "≥" + str(n) if not complete else f"{len(after):,}"
        self.add_row(Text("possible", style="dim italic"), Text(""),
                     Text(kept, style="dim", justify="right"), key="kept")  # fmt: skip
        if self.row_count:
            self.move_cursor(row=min(max(row, 0), self.row_count - 1), animate=False)


def _unknown() -> Text:
    """A probability the server did not say (past the top tokens it listed)."""
    return Text("?", style="dim", justify="right")


def _label(text: str, taken: bool) -> Text:
    label = visible_token(text)
    if len(label) > LABEL_WIDTH - 2:
        label = label[: LABEL_WIDTH - 3] + "…"
    if taken:
        return Text.assemble((TAKEN + " ", "bold"), (label, "bold"))
    return Text("  " + label)


def _cell(p: float, before: float) -> Text:
    """A token's probability after a stage: coloured; struck where this stage removed it."""
    if p > 0.0:
        return Text(short_percent(p), style=probability_style(p), justify="right")
    if before > 0.0:  # removed here: what it had, marked and struck through
        return Text(REMOVED + short_percent(before), style="dim strike", justify="right")
    if math.isnan(before):  # the model gives it nothing (a -inf logit)
        return Text("0%", style="dim", justify="right")
    return Text("·", style="dim", justify="right")


def _bits(entropy_nats: float) -> str:
    return f"{max(entropy_nats, 0.0) / math.log(2) + 0.0:.2f}"
