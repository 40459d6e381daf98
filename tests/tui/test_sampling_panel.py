"""The sampling panel marks what a model's backend cannot honour, and says why."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Label

from gpt_tui.backends.base import SAMPLING_SETTINGS, Capabilities
from gpt_tui.engine import SamplingParams
from gpt_tui.tui.widgets.sampling_panel import SamplingPanel


class PanelApp(App[None]):
    def compose(self) -> ComposeResult:
        yield SamplingPanel(SamplingParams(), 10, "lookup", id="sampling")


async def test_unavailable_settings_are_marked_with_their_reason():
    server = Capabilities(
        speculative=False,
        sampling=frozenset(SAMPLING_SETTINGS) - {"top_k", "min_p"},
        unavailable={"top_k": "this server has no top-k", "speculative": "remote: no drafts"},
    )
    app = PanelApp()
    async with app.run_test() as pilot:
        panel = app.query_one(SamplingPanel)
        panel.show_available(server)
        await pilot.pause()
        marked = {row.id for row in panel.query(".param-row.-unavailable")}
        assert marked == {"row-top_k", "row-min_p", "row-speculative"}
        label = panel.query_one("#row-top_k").query_one(Label)
        assert "this server has no top-k" in str(label.tooltip)
        assert "min p is not available here" in str(panel.query_one("#row-min_p Label").tooltip)
        panel.show_available(Capabilities(look_inside=True, speculative=True))  # a local model
        await pilot.pause()
        assert not panel.query(".param-row.-unavailable")
        assert panel.query_one("#row-top_k Label").tooltip is None
