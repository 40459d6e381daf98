"""The logit lens as a table: one row per layer, the target's probability as a bar.

Row "embed" decodes the embeddings, row l the residual stream after block l, the last row the
model's own distribution; with `a`, the rows after each attention (before its MLP) are shown
between them. The first layer from which the target stays the top prediction is marked: that
is where the answer appears.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from gpt_tui.display import short_percent, visible_token
from gpt_tui.engine import Alternative
from gpt_tui.engine.trace import LensRow
from gpt_tui.playground.look_inside import LensReport, layer_name
from gpt_tui.tui.widgets.inspector import bar

BAR_WIDTH = 8
N_TOP = 3


def answer_layer(rows: tuple[LensRow, ...]) -> int | None:
    """Index in `rows` of the first row from which the target is the top-1 in every later row."""
    first = None
    for i, row in enumerate(rows):
        top = row.score.rank == 1
        first = (i if first is None else first) if top else None
    return first


class LensTable(DataTable):
    """The rows of a `LensReport`; `a` shows or hides the rows after each attention."""

    DEFAULT_CSS = """
        LensTable {
            height: 1fr;
        }
    """

    BINDINGS = [
        Binding("a", "toggle_mid", "After attention", tooltip="Rows inside each block"),
        Binding("pagedown", "page_down", "Page", tooltip="The next rows (also ↓, End)"),
        # Rows, not columns: home and end go to the first and last row.
        Binding("home", "scroll_top", "First row", show=False),
        Binding("end", "scroll_bottom", "Last row", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.report: LensReport | None = None
        self.show_mid = False

    def on_mount(self) -> None:
        for label, key in [("layer", "layer"), ("p target", "bar"), ("", "p"), ("rank", "rank"),
                           ("H", "entropy"), ("KL", "kl"), ("top predictions", "top")]:  # fmt: skip
            self.add_column(label, key=key)

    def show(self, report: LensReport) -> None:
        self.report = report
        self._fill()

    def action_toggle_mid(self) -> None:
        self.show_mid = not self.show_mid
        self._fill()

    def _fill(self) -> None:
        report = self.report
        if report is None:
            return
        self.clear()
        rows = report.rows if self.show_mid else report.layers
        answer = answer_layer(rows)
        for i, row in enumerate(rows):
            s = row.score
            style = "bold green" if i == answer else ("dim" if row.stage == "attention" else "")
            top = self._top_text(s.top[:N_TOP])
            self.add_row(
                Text(layer_name(row) + (" ◀" if i == answer else ""), style=style),
                Text(bar(s.prob, BAR_WIDTH), style="green" if s.rank == 1 else "yellow"),
                Text(short_percent(s.prob), style=style, justify="right"),
                Text(str(s.rank), style=style, justify="right"),
                Text(f"{s.entropy:.2f}", justify="right"),
                Text(f"{row.kl:.2f}", justify="right"),
                Text(top, style="dim" if row.stage == "attention" else ""),
                key=f"{row.stage}-{row.layer}",
            )
        self.move_cursor(row=len(rows) - 1)

    def _top_text(self, top: Sequence[Alternative]) -> str:
        """The top predictions that fit the table's width whole (in 80 columns the table has
        about 30 cells left for them: the last would be cut mid-token)."""
        room = max(12, self.size.width - 50) if self.size.width else 0
        shown: list[str] = []
        for a in top:
            part = visible_token(a.text)[:10] + f" {short_percent(a.prob)}"
            if room and shown and len("  ".join([*shown, part])) > room:
                break
            shown.append(part)
        return "  ".join(shown)

    def on_resize(self) -> None:
        if self.report is not None and self.row_count:
            row = self.cursor_row
            self._fill()  # as many top predictions as the new width holds
            self.move_cursor(row=row)
