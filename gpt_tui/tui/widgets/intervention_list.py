"""The interventions every run is under, as a list above the sampling panel: shown only while
any is active; delete (or x) on an entry removes it (`Removed` says which)."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList


class InterventionList(OptionList):
    """One line per intervention (playground/intervention_list.py's `entries`)."""

    DEFAULT_CSS = """
        InterventionList {
            height: auto;
            max-height: 8;
            border: round $warning;
            border-title-color: $warning;
            padding: 0 1;
        }
        InterventionList:focus {
            border: round $accent;
        }
        InterventionList.-empty {
            display: none;
        }
    """

    BINDINGS = [
        Binding("delete,x", "remove", "Remove", tooltip="This intervention no longer applies"),
    ]

    class Removed(Message):
        """Entry `index` is to be removed."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def on_mount(self) -> None:
        self.border_title = "Interventions · del removes"
        self.add_class("-empty")

    def show(self, entries: list[str]) -> None:
        highlighted = self.highlighted
        self.clear_options()
        self.add_options(entries)
        self.set_class(not entries, "-empty")
        if entries:
            self.highlighted = min(highlighted or 0, len(entries) - 1)

    def action_remove(self) -> None:
        if self.highlighted is not None and self.option_count:
            self.post_message(self.Removed(self.highlighted))
