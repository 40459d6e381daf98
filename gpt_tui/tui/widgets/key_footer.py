"""The footer, fitted to the terminal's width.

Textual's footer lists every shown binding in one line and cuts what does not fit, so at 80
columns the keys a newcomer needs most (F1 among them) were the ones cut. Below `NARROW` cells
this footer leaves out the keys that matter least and shortens a few labels; F1 lists them all.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey  # the footer's own key widget, to filter them

NARROW = 100  # cells: below this the footer keeps only the keys in neither list below
OPTIONAL = frozenset({"continue_generation", "regenerate", "save_session", "remove_column"})
SHORT = {"generate": "Run", "run": "Run", "add_column": "Column"}


class KeyFooter(Footer):
    """A compact footer that leaves out optional keys when the terminal is narrow."""

    def __init__(self) -> None:
        super().__init__(compact=True)
        self._narrow: bool | None = None

    @property
    def narrow(self) -> bool:
        return self.app.size.width < NARROW

    def compose(self) -> ComposeResult:
        self._narrow = narrow = self.narrow
        for widget in super().compose():
            if narrow and isinstance(widget, FooterKey):
                if widget.action in OPTIONAL:
                    continue
                widget.description = SHORT.get(widget.action, widget.description)
            yield widget

    def on_resize(self) -> None:
        if self._narrow is not None and self._narrow != self.narrow:
            self.call_after_refresh(self.recompose)
