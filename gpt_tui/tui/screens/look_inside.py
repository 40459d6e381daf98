"""Look inside (l, or "Look inside" in the command palette): how the model arrived at the
selected token. Four tabs: the logit lens, the attention from the position that predicted
it, the direct logit attribution (also against one of the inspector's alternatives), and
activation patching from its text into one the user types (tui/widgets/patching_view.py).

The trace runs in a thread worker (`tui/look_inside.run_request`): over the app's kv cache
when it holds the token's context (under the engine lock, so never while a generation writes
it), else over a fresh pass of the context. Escape closes the screen.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Header, Static, TabbedContent, TabPane

from gpt_tui.display import percent, visible_token
from gpt_tui.engine.hooked import Interventions
from gpt_tui.playground.intervention_list import interventions_line
from gpt_tui.playground.look_inside import LensReport
from gpt_tui.playground.look_inside_requests import LensRequest, run_request
from gpt_tui.playground.streaming import ThreadCounter
from gpt_tui.tui.widgets.attention_view import AttentionView
from gpt_tui.tui.widgets.attribution_table import AttributionTable
from gpt_tui.tui.widgets.key_footer import KeyFooter
from gpt_tui.tui.widgets.lens_table import LensTable
from gpt_tui.tui.widgets.patching_view import PatchingView


class LookInsideScreen(Screen[None]):
    """The logit lens, attention and logit attribution of one prediction."""

    DEFAULT_CSS = """
        LookInsideScreen #lens-title {
            height: 1;
            padding: 0 1;
            text-style: bold;
            text-wrap: nowrap;
            text-overflow: ellipsis;
        }
        LookInsideScreen #lens-tabs {
            height: 1fr;
        }
        /* The tables scroll themselves (↓, End, PageDown follow their cursor), not the tabs. */
        LookInsideScreen #lens-tabs ContentSwitcher {
            height: 1fr;
        }
        LookInsideScreen #lens-tabs TabPane {
            height: 1fr;
            padding: 0;
        }
        LookInsideScreen .lens-note {
            height: auto;
            padding: 0 1;
            color: $text-muted;
        }
        LookInsideScreen #lens-status {
            height: 1;
            padding: 0 1;
            background: $panel;
            color: $text-muted;
        }
    """

    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to where you were"),
        # The tabs' labels name these keys; the footer has the views' own.
        Binding("1", "tab('lens')", "Lens", show=False, tooltip="Each layer's prediction"),
        Binding(
            "2", "tab('attention')", "Attention", show=False, tooltip="What the position looked at"
        ),
        Binding(
            "3", "tab('attribution')", "Attribution", show=False, tooltip="What pushed the logit"
        ),
        Binding(
            "4",
            "tab('patching')",
            "Patching",
            show=False,
            tooltip="Which blocks, positions and heads carry what another text changes",
        ),
    ]

    class Traced(Message):
        def __init__(self, report: LensReport, over_cache: bool, seconds: float) -> None:
            super().__init__()
            self.report = report
            self.over_cache = over_cache
            self.seconds = seconds

    class Failed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    def __init__(
        self, request: LensRequest, engine_lock: threading.Lock, threads: ThreadCounter
    ) -> None:
        super().__init__()
        self.request = request
        self._engine_lock = engine_lock
        self._threads = threads
        self.report: LensReport | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self._title(), id="lens-title")
        with TabbedContent(id="lens-tabs"):
            with TabPane("1 Lens", id="lens"):
                yield Static("", id="lens-note", classes="lens-note")
                yield LensTable(id="lens-table")
            with TabPane("2 Attention", id="attention"):
                yield AttentionView(id="attention-view")
            with TabPane("3 Attribution", id="attribution"):
                yield Static("", id="attribution-note", classes="lens-note")
                yield AttributionTable(id="attribution-table")
            with TabPane("4 Patching", id="patching"):
                yield PatchingView(id="patching-view")
        yield Static("Tracing…", id="lens-status")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "look inside"
        self.query_one(LensTable).focus()
        r = self.request
        self.query_one(PatchingView).setup(r.model, r.tokenizer, r.ids, r.interventions)
        self._trace_worker(self.request)

    def _title(self) -> str:
        r = self.request
        target = visible_token(r.tokenizer.token_text(r.target))
        before = visible_token(r.tokenizer.token_text(r.ids[r.position]))
        return f"“{target}” · {r.where} · predicted after “{before}” (position {r.position})"

    @work(thread=True, exclusive=True, group="lens", exit_on_error=False)
    def _trace_worker(self, request: LensRequest) -> None:
        with self._threads.running():
            start = time.perf_counter()
            try:
                report, over_cache = run_request(request, self._engine_lock)
            except Exception as exc:  # noqa: BLE001 - shown on the screen, the app goes on
                self.post_message(self.Failed(f"{type(exc).__name__}: {exc}"))
                return
            self.post_message(self.Traced(report, over_cache, time.perf_counter() - start))

    def on_look_inside_screen_traced(self, message: Traced) -> None:
        report = self.report = message.report
        self.query_one(LensTable).show(report)
        self.query_one(AttentionView).show(report, getattr(self.request.model, "n_kv_head", None))
        self.query_one(AttributionTable).show(report)
        self._show_notes()
        how = "over the cached context" if message.over_cache else "over a fresh pass"
        n = len(report.tokens)
        under = self.request.interventions
        self.query_one("#lens-status", Static).update(
            f"traced {how} of {n} token{'s' if n != 1 else ''} in {message.seconds:.2f} s"
            + (f" · {interventions_line(under)}" if under else "")
        )

    def on_look_inside_screen_failed(self, message: Failed) -> None:
        self.query_one("#lens-status", Static).update(f"cannot look inside: {message.error}")
        self.notify(message.error, severity="error", title="Look inside failed", timeout=12)

    def on_attribution_table_against_changed(self) -> None:
        self._show_notes()

    def _show_notes(self) -> None:
        report = self.report
        if report is None:
            return
        last = report.layers[-1].score
        target = visible_token(report.target.text)
        self.query_one("#lens-note", Static).update(
            f"“{target}”: p {percent(last.prob)}, rank {last.rank} at the output · ◀ where it "
            "becomes the top prediction · a: rows after attention"
        )
        table = self.query_one(AttributionTable)
        self.query_one("#attribution-note", Static).update(
            f"What pushed {table.title()}: each part's direct effect, the final norm's scale "
            "frozen · h: per head · v: versus an alternative"
        )

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab  # focused in `on_tabbed_content_...`

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """The tab's view takes the focus, so its keys work at once."""
        view = event.pane.query("LensTable, AttentionView, AttributionTable, Input").first()
        self.call_after_refresh(view.focus)

    def retrace(self, interventions: Interventions) -> None:
        """Trace the same prediction again under `interventions` (the app's new set)."""
        self.request = dataclasses.replace(self.request, interventions=interventions or None)
        r = self.request
        self.query_one(PatchingView).setup(r.model, r.tokenizer, r.ids, r.interventions)
        self.query_one("#lens-status", Static).update("Tracing under the new interventions…")
        self._trace_worker(self.request)

    def action_close(self) -> None:
        """Escape: stops a patching sweep under way; else back."""
        patching = self.query_one(PatchingView)
        if patching.running:
            patching.cancel()
            return
        self.workers.cancel_group(self, "lens")
        self.dismiss(None)
