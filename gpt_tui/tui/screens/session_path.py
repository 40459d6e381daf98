"""Where to save a session, or which one to open: a path in a small dialog.

A text input rather than a file browser: the default (a dated name in the documents folder, or
the file the session came from) is nearly always right, and a path is quick to edit. A line
under the input says what will happen (a file replaced, no file there) before enter is pressed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

TITLES = {"save": "Save session", "open": "Open session"}
HINTS = {
    "save": "JSON to reopen (--open FILE), .md and .html beside it · enter saves",
    "open": "a session file saved by gpt-tui · enter opens",
}


class SessionPathScreen(ModalScreen[str | None]):
    """Ask for a session file's path; dismisses with it, or None (escape)."""

    DEFAULT_CSS = """
        SessionPathScreen {
            align: center middle;
        }
        SessionPathScreen #session-path {
            width: 90;
            max-width: 95%;
            height: auto;
            border: thick $accent;
            background: $surface;
            padding: 0 1;
        }
        SessionPathScreen #session-path-note {
            height: 1;
            color: $warning;
        }
    """

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, purpose: Literal["save", "open"], path: str) -> None:
        super().__init__()
        self.purpose = purpose
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical(id="session-path") as box:
            box.border_title = f"{TITLES[self.purpose]} · escape cancels"
            yield Static(HINTS[self.purpose], classes="dim")
            yield Input(self.path, id="session-path-input", select_on_focus=False)
            yield Static("", id="session-path-note")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._describe(self.path)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._describe(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.dismiss(event.value.strip())

    def _describe(self, value: str) -> None:
        path = Path(value.strip()).expanduser() if value.strip() else None
        if path is None:
            note = "type a path"
        elif self.purpose == "open":
            note = "" if path.is_file() else "no file there yet"
        elif path.is_dir():
            note = "a folder: a dated file name is added"
        elif path.exists():
            note = "a file of that name exists: saving replaces it"
        else:
            note = ""
        self.query_one("#session-path-note", Static).update(note)
