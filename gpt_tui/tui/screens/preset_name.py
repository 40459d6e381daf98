"""The name to save the sampling settings under, as a preset: a small dialog.

A line under the input says, as the name is typed, whether it can be used (letters, digits,
'-', '_' and '.'; not a built-in preset's) and whether it replaces a saved preset.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from gpt_tui.errors import InputError
from gpt_tui.settings import check_preset_name, load_presets

HINT = "the sampling settings (not the seed or the length) · enter saves"


class PresetNameScreen(ModalScreen[str | None]):
    """Ask for a preset's name; dismisses with it, or None (escape)."""

    DEFAULT_CSS = """
        PresetNameScreen {
            align: center middle;
        }
        PresetNameScreen #preset-name {
            width: 60;
            max-width: 95%;
            height: auto;
            border: thick $accent;
            background: $surface;
            padding: 0 1;
        }
        PresetNameScreen #preset-name-note {
            height: 1;
            color: $warning;
        }
    """

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="preset-name") as box:
            box.border_title = "Save sampling preset · escape cancels"
            yield Static(HINT, classes="dim")
            yield Input("", placeholder="a name, e.g. creative", id="preset-name-input")
            yield Static("", id="preset-name-note")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#preset-name-note", Static).update(_note(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            name = check_preset_name(event.value)
        except InputError as exc:
            self.query_one("#preset-name-note", Static).update(str(exc))
            return
        self.dismiss(name)


def _note(value: str) -> str:
    if not value.strip():
        return ""
    try:
        name = check_preset_name(value)
    except InputError as exc:
        return str(exc)
    saved, _ = load_presets()
    return f"a preset {name} exists: saving replaces it" if name in saved else ""
