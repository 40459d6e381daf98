"""Compare samples side by side (F4): 2 to 4 continuations of one context, each with its own
sampling settings, generated together.

What is compared and how it runs is `gpt_tui/playground/compare.py`'s business: the request is
captured when the screen opens, and one thread worker runs `execute_compare`, whose events are
handed to each column by stream index. The batch uses caches of its own: the main view's kv
cache is left as it was.

Closing the screen returns the columns' settings, so that reopening it shows the same columns.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TypeVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Header, Static
from textual.worker import get_current_worker

from gpt_tui.engine import SamplingParams, TokenEvent
from gpt_tui.playground.compare import (
    BatchFinished,
    BatchStreamed,
    CompareEvent,
    CompareRequest,
    compare_request,
    execute_compare,
    first_difference,
)
from gpt_tui.playground.core import Playground
from gpt_tui.playground.events import PromptScored
from gpt_tui.playground.look_inside_requests import column_request
from gpt_tui.playground.sampler_lab import column_step
from gpt_tui.tui.screens.help import HelpScreen
from gpt_tui.tui.screens.look_inside import LookInsideScreen
from gpt_tui.tui.screens.sampler_view import SamplerViewScreen
from gpt_tui.tui.widgets.compare_column import ColumnSettings, CompareColumn, default_settings
from gpt_tui.tui.widgets.compare_status import CompareStatus
from gpt_tui.tui.widgets.key_footer import KeyFooter

T = TypeVar("T")

MIN_COLUMNS, MAX_COLUMNS = 2, 4
MIN_WIDTH = 36  # cells a column needs to stay legible; fewer are shown side by side, 1-4 page
DEFAULT_COLUMNS = 3
STATUS_INTERVAL = 0.25  # seconds between updates of the speed shown while generating


class CompareScreen(Screen[list[ColumnSettings]]):
    """Columns that stream together, each with its own settings, output and inspector."""

    DEFAULT_CSS = """
        CompareScreen #compare-prompt {
            height: 1;
            padding: 0 1;
            color: $text-muted;
            text-wrap: nowrap;
            text-overflow: ellipsis;
        }
        CompareScreen #compare-columns {
            height: 1fr;
        }
        /* A short screen: the room goes to the outputs; an inspector shows only where a token is
           selected. */
        CompareScreen.-short Header {
            display: none;
        }
        CompareScreen.-short CompareColumn TokenInspector {
            height: 10;
        }
        CompareScreen.-short CompareColumn TokenInspector.-empty {
            display: none;
        }
    """

    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]

    BINDINGS = [
        Binding("f5,ctrl+j", "run", "Run", tooltip="Generate every column at once"),
        Binding("escape", "stop", "Stop", tooltip="Stop every column"),
        Binding("escape", "close", "Back", show=False, tooltip="Back to the playground"),
        Binding("f4", "close", "Back", tooltip="Back to the playground (the columns are kept)"),
        Binding("plus", "add_column", "Add column", tooltip="Add a column (at most 4)"),
        Binding("minus", "remove_column", "Drop column",
                tooltip="Remove the focused column (or the last; at least 2 stay)"),
        Binding("1", "focus_column(0)", "Column 1", show=False),
        Binding("2", "focus_column(1)", "Column 2", show=False),
        Binding("3", "focus_column(2)", "Column 3", show=False),
        Binding("4", "focus_column(3)", "Column 4", show=False),
        Binding("f2", "cycle_colouring", "Colour", tooltip="Colour tokens (every column)"),
        Binding("s", "sampler_view", "Sampler view", show=False,
                tooltip="What each sampling stage does at the column's selected token, under "
                        "the column's settings"),
        Binding("l", "look_inside", "Look inside", show=False,
                tooltip="Logit lens, attention and attribution of the column's selected token"),
        Binding("f1", "help", "Help", tooltip="Show the keys"),
    ]  # fmt: skip

    class Update(Message):
        """An event of a comparison run (gpt_tui/playground/compare.py), from its worker."""

        def __init__(self, event: CompareEvent) -> None:
            super().__init__()
            self.event = event

    class CycleColouring(Message):
        """F2: the app cycles the colouring (it remembers it) and sets it here (`set_colouring`)."""

    def __init__(
        self,
        request: CompareRequest,
        core: Playground,
        columns: list[ColumnSettings] | None = None,
        colouring: str = "off",
    ) -> None:
        super().__init__()
        self.request = request
        self.core = core
        settings = columns or [default_settings(request.base, i) for i in range(DEFAULT_COLUMNS)]
        self._initial = settings[:MAX_COLUMNS]
        self._colouring = colouring
        self._run_id = 0
        self._status_shown = 0.0
        self._first_shown = 0  # the first column shown when they do not all fit
        self.running = False

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.request.summary, id="compare-prompt", markup=False)
        with Horizontal(id="compare-columns"):
            for i, settings in enumerate(self._initial):
                yield self._new_column(i + 1, settings)
        yield CompareStatus(id="compare-status")
        yield KeyFooter()

    def _new_column(self, number: int, settings: ColumnSettings) -> CompareColumn:
        request = self.request
        return CompareColumn(number, settings, request.base, request.tokenizer, self._colouring)

    def on_mount(self) -> None:
        self.sub_title = f"compare · {self.request.model_name}"
        status = self.status
        status.model = self.request.model_name
        status.n_prompt = len(self.request.context)
        status.n_columns = len(self.columns)
        for column in self.columns:
            column.show_prompt(self.request.display, self.request.model_name)
        self._fit_columns()
        self.columns[0].output.focus()

    @property
    def columns(self) -> list[CompareColumn]:
        return list(self.query(CompareColumn).results(CompareColumn))

    @property
    def status(self) -> CompareStatus:
        return self.query_one("#compare-status", CompareStatus)

    # --- as many columns side by side as stay legible --------------------------------------

    def on_resize(self) -> None:
        self._fit_columns()

    def on_descendant_focus(self) -> None:
        self._fit_columns()  # tab reached a column at the edge: its page follows

    def _fit_columns(self, show: int | None = None) -> None:
        """Show as many columns as fit `MIN_WIDTH` each: a page holding column `show` (else
        the focused one). Hidden columns still stream; 1-4 bring one into view."""
        columns = self.columns
        n_fit = max(1, self.size.width // MIN_WIDTH) if self.size.width else len(columns)
        if show is None:
            focused = self.focused
            show = next((i for i, c in enumerate(columns)
                         if focused is not None and c in focused.ancestors), None)  # fmt: skip
        first = min(self._first_shown, max(0, len(columns) - n_fit))
        if show is not None:
            first = min(max(first, show - n_fit + 1), show)
        self._first_shown = first
        shown = range(first, min(len(columns), first + n_fit))
        for i, column in enumerate(columns):
            column.display = i in shown
        self.status.shown = None if len(shown) == len(columns) else (first + 1, shown[-1] + 1)

    def set_colouring(self, mode: str) -> None:
        self._colouring = mode
        for column in self.columns:
            column.set_colouring(mode)

    # --- keys ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.running
        return True

    def action_close(self) -> None:
        self._stop()
        self.dismiss([column.settings for column in self.columns])

    def action_focus_column(self, index: int) -> None:
        columns = self.columns
        if index < len(columns):
            if columns[index].display:
                columns[index].output.focus()
            else:  # on another page: shown first, focused once it is laid out
                self._fit_columns(show=index)
                self.call_after_refresh(columns[index].output.focus)

    def action_cycle_colouring(self) -> None:
        self.post_message(self.CycleColouring())

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.BINDINGS))

    def _column_request(self, make: Callable[..., T]) -> tuple[CompareColumn, T] | None:
        """The focused column and what `make` (`column_request`, `column_step`) builds for its
        selection from (model, tokenizer, context, events, selected, prompt token, number);
        None, said why, when there is no column or selection."""
        focused = self.focused
        column = next((c for c in self.columns if focused is not None and c in focused.ancestors),
                      None)  # fmt: skip
        if column is None:
            self.notify("Select a token in a column first", severity="warning")
            return None
        output, r = column.output, self.request
        prompt = None if output.selected_prompt is None else output.prompt_tokens[
            output.selected_prompt]  # fmt: skip
        try:
            return column, make(r.model, r.tokenizer, r.context, output.events, output.selected,
                                prompt, column.number)  # fmt: skip
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return None

    def action_look_inside(self) -> None:
        made = self._column_request(column_request)
        if made is None:
            return
        column, lens = made
        # The column ran under its own interventions, or the core's: look inside the same model
        sets = self.request.interventions
        under = sets[column.number - 1] if sets else self.core.interventions or None
        lens = dataclasses.replace(lens, interventions=under)
        self.app.push_screen(LookInsideScreen(lens, self.core.engine_lock, self.core.threads))

    def action_sampler_view(self) -> None:
        """The sampler view of the column's selected token under the column's settings; the
        column takes the view's temperature, top-p, top-k and seed when it closes (the other
        settings are every column's, fixed when compare opened: the view only previews them)."""
        made = self._column_request(column_step)
        if made is None:
            return
        (column, request), core = made, self.core
        note = (f"Column {column.number}: its temperature, top-p, top-k and seed follow your "
                "moves; the other settings are every column's, shown here only")  # fmt: skip
        screen = SamplerViewScreen(request, core.engine_lock, core.threads, column.params,
                                   core.n_top, core.speculative, column_note=note)  # fmt: skip
        self.app.push_screen(screen, lambda _: column.take_settings(screen.params))

    async def action_add_column(self) -> None:
        if self.running:
            self.notify("Stop the run first (escape)", severity="warning")
            return
        columns = self.columns
        if len(columns) >= MAX_COLUMNS:
            self.notify(f"At most {MAX_COLUMNS} columns", severity="warning")
            return
        column = self._new_column(len(columns) + 1, self._next_settings(columns))
        await self.query_one("#compare-columns").mount(column)
        column.show_prompt(self.request.display, self.request.model_name)
        self._fit_columns(show=len(columns))
        self.status.n_columns = len(columns) + 1
        self.status.stats = None  # its per-column figure was for the old count

    def _next_settings(self, columns: list[CompareColumn]) -> ColumnSettings:
        """The first default temperature (and seed) no column uses yet."""
        used = {(c.params.temperature, c.params.seed) for c in columns}
        for i in range(MAX_COLUMNS):
            settings = default_settings(self.request.base, i)
            if (settings.temperature, settings.seed) not in used:
                return settings
        return default_settings(self.request.base, len(columns))

    async def action_remove_column(self) -> None:
        if self.running:
            self.notify("Stop the run first (escape)", severity="warning")
            return
        columns = self.columns
        if len(columns) <= MIN_COLUMNS:
            self.notify(f"At least {MIN_COLUMNS} columns", severity="warning")
            return
        focused = self.focused
        doomed = next((c for c in columns if focused is not None and c in focused.ancestors),
                      columns[-1])  # fmt: skip
        index = columns.index(doomed)
        await doomed.remove()
        rest = [c for c in columns if c is not doomed]
        for number, column in enumerate(rest, start=1):
            column.set_number(number)
        self._fit_columns(show=min(index, len(rest) - 1))
        rest[min(index, len(rest) - 1)].output.focus()
        self.status.n_columns = len(rest)
        self.status.stats = None

    # --- a run -----------------------------------------------------------------------------

    def action_run(self) -> None:
        columns = self.columns
        if not all([column.commit() for column in columns]):
            return  # a value the user meant to change was invalid: let them see it first
        self._run_id += 1
        extra = self.request.extra_stop
        sources = [_params_source(column, extra) for column in columns]
        for column in columns:
            column.start(self.request.display, self.request.model_name)
        self._set_running(True)
        self.status.state = "generating"
        self.status.stats = None
        self.status.n_columns = len(columns)
        self._compare_worker(self._run_id, sources)

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def _compare_worker(self, run_id: int, params: list[Callable[[], SamplingParams]]) -> None:
        worker = get_current_worker()
        emit = lambda event: self.post_message(self.Update(event))  # noqa: E731
        execute_compare(self.core, run_id, self.request, params, emit,
                        lambda: worker.is_cancelled)  # fmt: skip

    def on_compare_screen_update(self, message: Update) -> None:
        event = message.event
        if event.run_id != self._run_id:
            return
        if isinstance(event, BatchStreamed):
            self._streamed(event)
        elif isinstance(event, PromptScored):
            self._prompt_scored(event)
        else:
            self._done(event)

    def _streamed(self, message: BatchStreamed) -> None:
        columns = self.columns
        by_column: dict[int, list[TokenEvent]] = {}
        for stream, event in message.events:
            by_column.setdefault(stream, []).append(event)
        for stream, events in by_column.items():
            if stream < len(columns):
                columns[stream].add_tokens(events)
        now = time.monotonic()
        if now - self._status_shown >= STATUS_INTERVAL:  # a speed changing at every batch
            self._status_shown = now  # is unreadable
            self.status.stats = message.stats

    def _prompt_scored(self, message: PromptScored) -> None:
        """Draw the prompt as scored tokens in every column (it comes before their tokens)."""
        scored = dataclasses.replace(self.request.display, prompt_scores=list(message.scores))
        for column in self.columns:
            if column.output.token_count == 0:
                column.show_prompt(scored, self.request.model_name)

    def _done(self, message: BatchFinished) -> None:
        for column, finish in zip(self.columns, message.finishes, strict=False):
            column.end(finish)
        self._set_running(False)
        self.status.state = "error" if message.error else "done"
        if message.stats.n_tokens:
            self.status.stats = message.stats
        if message.error:
            self.notify(message.error, severity="error", title="Compare failed", timeout=12)
        elif self.request.interventions:
            self._mark_first_difference()

    def _mark_first_difference(self) -> None:
        """With and without interventions: the first token where the columns differ is
        selected in both (the inspector shows what each considered there)."""
        columns = self.columns[:2]
        ids = [[e.token_id for e in c.output.events] for c in columns]
        first = first_difference(*ids)
        if first is None:
            self.notify("With and without the interventions, the outputs are the same")
            return
        for column, tokens in zip(columns, ids, strict=True):
            if first < len(tokens):
                column.output.select(first)
        self.notify(f"The outputs differ from token {first + 1} on (selected in both)")

    def action_stop(self) -> None:
        if self._stop():
            self.status.state = "user"

    def _stop(self) -> bool:
        """Cancel the run, if any; the worker confirms within a token, and whatever it still
        sends is dropped. True if a run was stopped."""
        if not self.running:
            return False
        self.workers.cancel_group(self, "compare")
        self._run_id += 1
        for column in self.columns:
            if column.running:
                column.end("user")
        self._set_running(False)
        return True

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.refresh_bindings()  # escape: stop while running, back to the playground otherwise


def _params_source(
    column: CompareColumn, extra_stop: tuple[str, ...]
) -> Callable[[], SamplingParams]:
    """What the worker reads before each token: the column's settings as they are now."""
    if not extra_stop:
        return lambda: column.params
    return lambda: column.params.replace(stop=(*column.params.stop, *extra_stop))


__all__ = ["CompareScreen", "compare_request"]
