"""The key to the output's colours, shown under it while colouring is on."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from gpt_tui.tui.colouring import legend


class ColourLegend(Widget):
    DEFAULT_CSS = """
        ColourLegend {
            height: 1;
            padding: 0 1;
        }
    """
    mode: reactive[str] = reactive("off")

    def render(self) -> Content:
        return legend(self.mode)

    def watch_mode(self, mode: str) -> None:
        self.display = mode != "off"
