"""The keys, in one place (F1)."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

WIDGET_KEYS = """
### In the output
- **← / →** select the previous / next token; **↑ / ↓** the token above / below
- **home / end** the first / last token; **click** a token to select it

### On a slider
- **← / →** a step down / up; with **shift** a bigger step; **home / end** the ends
- type a number, then **enter**: an exact value (**escape** cancels)
- **click** or **drag** the track

### Elsewhere
- **tab / shift+tab** move between the prompt, the output, the sliders and the inputs
- **ctrl+p** the command palette: every action, and switching to any model
- **ctrl+q** quit (a generation or a download in progress is stopped first)
"""


def key_label(key: str) -> str:
    return " / ".join(k.strip().replace("escape", "esc") for k in key.split(","))


def help_markdown(bindings: Iterable[Binding]) -> str:
    lines = ["## Keys", ""]
    for b in bindings:
        if b.description:
            lines.append(f"- **{key_label(b.key)}** {b.tooltip or b.description}")
    return "\n".join(lines) + "\n" + WIDGET_KEYS


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss(None)", "Close")]

    def __init__(self, bindings: Iterable[Binding]) -> None:
        super().__init__()
        self.markdown = help_markdown(bindings)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help") as box:
            box.border_title = "Help · escape closes"
            yield Markdown(self.markdown)
