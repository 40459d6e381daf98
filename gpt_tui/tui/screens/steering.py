"""Add a steering vector (the palette's "Add steering vector…"): two texts, a block and a
coefficient, in a small dialog.

The vector is the residual entering the block at the last token of text A minus the same for
text B, times the coefficient, added at every position of every run that follows (engine/
interventions.py). The texts are read as the prompt box's text is read. Enter in text A moves
to text B; anywhere else it applies (block and coefficient have defaults); a value the model
cannot take is said in one line under the fields, and the dialog stays open.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

HINT = "residual at A's last token − B's, × coefficient, added entering the block"


class SteeringScreen(ModalScreen[bool]):
    """Ask for a steering vector; `apply(add, sub, block, coef)` returns None when it took
    it (the dialog closes with True), else the reason (shown; the dialog stays)."""

    DEFAULT_CSS = """
        SteeringScreen {
            align: center middle;
        }
        SteeringScreen #steering {
            width: 70;
            max-width: 98%;
            height: auto;
            border: thick $accent;
            background: $surface;
            padding: 0 1;
        }
        SteeringScreen .steering-row {
            height: 1;
        }
        SteeringScreen .steering-row Label {
            width: 8;
            color: $text-muted;
        }
        SteeringScreen .steering-row Input {
            width: 1fr;
            height: 1;
            border: none;
            padding: 0;
        }
        SteeringScreen #steering-note {
            height: auto;
            color: $warning;
        }
    """

    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel")]
    AUTO_FOCUS = "#steering-add"

    def __init__(
        self, apply: Callable[[str, str, str, str], str | None], n_layer: int, block: int = 0
    ) -> None:
        super().__init__()
        self._apply = apply
        self._n_layer = n_layer
        self._block = block or max(1, n_layer // 2)

    def compose(self) -> ComposeResult:
        with Vertical(id="steering") as box:
            box.border_title = "Add steering vector · enter applies · escape cancels"
            yield Static(HINT, classes="dim")
            for label, value, placeholder, key in (
                ("text A", "", "e.g. I love this. It is wonderful", "add"),
                ("text B", "", "e.g. I hate this. It is terrible", "sub"),
                ("block", str(self._block), f"1-{self._n_layer}", "block"),
                ("coef", "4", "e.g. 4, or -4 to push the other way", "coef"),
            ):
                with Horizontal(classes="steering-row"):
                    yield Label(label)
                    yield Input(value, placeholder=placeholder, id=f"steering-{key}")
            yield Static("", id="steering-note")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        values = [self.query_one(f"#steering-{k}", Input).value
                  for k in ("add", "sub", "block", "coef")]  # fmt: skip
        if event.input.id == "steering-add" or not values[1]:  # text A: on to text B
            self.query_one("#steering-sub" if values[0] else "#steering-add", Input).focus()
            return
        error = self._apply(*values)
        if error:
            self.query_one("#steering-note", Static).update(error)
            return
        self.dismiss(True)
