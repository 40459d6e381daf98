"""Direct logit attribution as a table: how much each block's attention and MLP pushed the
target's logit (or its difference to an alternative), with a bar for each block's sum.

`h` shows each attention head instead of their sum; `v` cycles the alternative the target is
compared against (the inspector's alternatives), back to the plain logit. The rows add up to
the logit shown in the last one. `x` on a head's, a block's attention's or an MLP's cell
ablates that part in the runs that follow (again: no longer), `m` sets it to its mean over the
text's positions: `AblationToggled` says which.
"""

from __future__ import annotations

import dataclasses

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from gpt_tui.display import visible_token
from gpt_tui.engine.interventions import Ablation
from gpt_tui.engine.trace import Attribution
from gpt_tui.playground.look_inside import LensReport, Token

HALF_BAR = 8  # cells on each side of the bar's zero


def diverging_bar(value: float, largest: float, half: int = HALF_BAR) -> Text:
    """The value, then a bar left of the middle for a negative value (red), right of it for a
    positive one, `largest` reaching the end."""
    cells = round(abs(value) / largest * half) if largest > 0 else 0
    cells = min(half, max(cells, 1 if value else 0))
    left = ("█" * cells).rjust(half) if value < 0 else " " * half
    right = ("█" * cells).ljust(half) if value > 0 else " " * half
    text = _number(value)
    text.justify = "left"  # not right: the bar's trailing blanks would be trimmed away
    text.append(" " + left, style="red")
    text.append("│", style="dim")
    text.append(right, style="green")
    return text


def _number(value: float) -> Text:
    return Text(f"{value:+6.2f}", style="green" if value > 0 else "red" if value < 0 else "",
                justify="right")  # fmt: skip


class AttributionTable(DataTable):
    """The attribution of a `LensReport`'s target, against one of its contrasts or none."""

    DEFAULT_CSS = """
        AttributionTable {
            height: 1fr;
        }
    """

    BINDINGS = [
        Binding("h", "toggle_heads", "Per head", tooltip="Each attention head, or their sum"),
        Binding("v", "cycle_against", "Versus", tooltip="Logit difference to an alternative"),
        Binding(
            "x", "ablate", "Ablate", tooltip="Switch the head, attention or MLP off (again: on)"
        ),
        Binding(
            "m",
            "ablate(True)",
            "Mean-ablate",
            tooltip="Set the part to its mean over the text's positions (again: no longer)",
        ),
        Binding("pagedown", "page_down", "Page", tooltip="The next rows (also ↓, End)"),
        # Rows, not columns: home and end go to the first and last row.
        Binding("home", "scroll_top", "First row", show=False),
        Binding("end", "scroll_bottom", "Last row", show=False),
    ]

    class AgainstChanged(Message):
        """The token the target is compared against changed (None: the plain logit)."""

        def __init__(self, against: Token | None, attribution: Attribution) -> None:
            super().__init__()
            self.against = against
            self.attribution = attribution

    class AblationToggled(Message):
        """The part under the cursor is to be ablated, or no longer (blocks from 0)."""

        def __init__(self, ablation: Ablation) -> None:
            super().__init__()
            self.ablation = ablation

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="cell", **kwargs)
        self.report: LensReport | None = None
        self.per_head = False
        self.contrast = -1  # index into report.contrasts; -1: the plain logit

    def show(self, report: LensReport) -> None:
        """Draw `report`; the same prediction traced again (under other interventions) keeps
        the cursor, the alternative and the per-head view where they were."""
        again = self.report is not None and (
            (self.report.position, self.report.target) == (report.position, report.target)
        )
        cursor = self.cursor_coordinate
        self.report = report
        if not again or self.contrast >= len(report.contrasts):
            self.contrast = -1
        self._fill()
        if again:
            self.move_cursor(row=cursor.row, column=cursor.column)

    @property
    def attribution(self) -> Attribution | None:
        if self.report is None:
            return None
        if self.contrast < 0:
            return self.report.attribution
        return self.report.contrasts[self.contrast][1]

    @property
    def against(self) -> Token | None:
        if self.report is None or self.contrast < 0:
            return None
        return self.report.contrasts[self.contrast][0]

    def action_toggle_heads(self) -> None:
        self.per_head = not self.per_head
        self._fill()

    def part_at_cursor(self) -> Ablation | None:
        """The part whose cell the cursor is on: a head, a block's attention or its MLP."""
        if self.report is None or not self.row_count:
            return None
        row, column = self.coordinate_to_cell_key(self.cursor_coordinate)
        if row.value is None or not row.value.startswith("block-") or column.value is None:
            return None
        layer = int(row.value.removeprefix("block-"))
        if column.value == "attention":
            return Ablation(layer, "attn")
        if column.value == "mlp":
            return Ablation(layer, "mlp")
        if column.value.startswith("h"):
            return Ablation(layer, "head", int(column.value[1:]))
        return None

    def action_ablate(self, mean: bool = False) -> None:
        part = self.part_at_cursor()
        if part is None:
            self.notify("Put the cursor on a head's, an attention's or an MLP's cell to ablate it",
                        severity="warning")  # fmt: skip
            return
        self.post_message(self.AblationToggled(dataclasses.replace(part, mean=mean)))

    def action_cycle_against(self) -> None:
        if self.report is None or not self.report.contrasts:
            self.notify("No alternatives to compare with", severity="warning")
            return
        self.contrast = (self.contrast + 2) % (len(self.report.contrasts) + 1) - 1
        self._fill()
        self.post_message(self.AgainstChanged(self.against, self.attribution))  # type: ignore[arg-type]

    def _fill(self) -> None:
        a = self.attribution
        if a is None:
            return
        self.clear(columns=True)
        n_layer, n_head = a.heads.shape
        self.add_column("part", key="part")
        if self.per_head:
            for h in range(n_head):
                self.add_column(f"H{h + 1}", key=f"h{h}")
        else:
            self.add_column("attention", key="attention")
        self.add_column("MLP", key="mlp")
        self.add_column("  sum of the block", key="bar")
        totals = [float(a.attention[i] + a.mlps[i]) for i in range(n_layer)]
        largest = max([abs(v) for v in [*totals, a.embeddings, a.bias, a.steering]])
        blank = [""] * (n_head if self.per_head else 1)
        self.add_row("embed", *blank, "", diverging_bar(a.embeddings, largest), key="embed")
        for i in range(n_layer):
            attention = ([_number(float(v)) for v in a.heads[i]] if self.per_head
                         else [_number(float(a.attention[i]))])  # fmt: skip
            self.add_row(str(i + 1), *attention, _number(float(a.mlps[i])),
                         diverging_bar(totals[i], largest), key=f"block-{i}")  # fmt: skip
        # Summed, each block's attention holds its output bias; per head, the biases are here.
        bias = a.bias if self.per_head else a.bias - float(a.attn_biases.sum())
        self.add_row("bias", *blank, "", diverging_bar(bias, largest), key="bias")
        if a.steering:  # a steering vector added to the residual: a part of its own
            self.add_row("steering", *blank, "", diverging_bar(a.steering, largest),
                         key="steering")  # fmt: skip
        what = "logit" if a.against is None else "difference"
        total = Text(f"{a.total:+.2f} = {what} {a.logit:+.2f}", style="bold")
        self.add_row("sum", *blank, "", total, key="sum")

    def title(self) -> str:
        """What the table attributes, in words."""
        if self.report is None:
            return ""
        target = visible_token(self.report.target.text)
        against = self.against
        if against is None:
            return f"the logit of “{target}”"
        return f"“{target}” over “{visible_token(against.text)}” (the logit difference)"
