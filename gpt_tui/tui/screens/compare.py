"""Compare samples side by side (F4): 2 to 4 continuations of one context, each with its own
sampling settings, generated together.

The context is captured when the screen opens (`compare_request`): the main view's prompt in
completion mode, the rendered chat in chat mode. One thread worker runs `generate_batch`, which
computes the context once and decodes the columns as one batch, reading the weights once per step
for all of them; its events are posted in batches (`stream_batch`) and handed to each column by
stream index. The worker holds the app's engine lock, so it never overlaps a run of the main view,
and it uses caches of its own: the main view's kv cache is left as it was.

Closing the screen returns the columns' settings, so that reopening it shows the same columns.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import get_current_worker

from gpt_tui.engine import SamplingParams, TokenEvent, TokenScore, generate_batch
from gpt_tui.tui.chat_format import BASE_MODEL_STOP, encode_chat, has_chat_template
from gpt_tui.tui.generation import RunStats, ThreadCounter, stream_batch
from gpt_tui.tui.look_inside import column_request
from gpt_tui.tui.screens.help import HelpScreen
from gpt_tui.tui.screens.look_inside import LookInsideScreen
from gpt_tui.tui.transcript import Transcript, Turn
from gpt_tui.tui.widgets.compare_column import ColumnSettings, CompareColumn, default_settings
from gpt_tui.tui.widgets.compare_status import CompareStatus

MIN_COLUMNS, MAX_COLUMNS = 2, 4
DEFAULT_COLUMNS = 3
STATUS_INTERVAL = 0.25  # seconds between updates of the speed shown while generating


@dataclass(frozen=True)
class CompareRequest:
    """What the columns continue, fixed when the screen opens: editing the main view later does
    not change a comparison under way."""

    model: Any
    tokenizer: Any
    model_name: str
    context: list[int]  # token ids every column continues
    display: Transcript  # what each column shows before its tokens (never mutated)
    base: SamplingParams  # the main panel's settings; columns override a few
    n_top: int
    summary: str  # one line describing the context
    extra_stop: tuple[str, ...] = ()  # a base model in chat mode stops at the user's turn


def compare_request(
    loaded: Any,
    transcript: Transcript,
    editor_text: str,
    chat: bool,
    base: SamplingParams,
    n_top: int,
) -> CompareRequest:
    """The comparison the main view's state asks for; ValueError if there is nothing to continue.

    Completion: the prompt in the editor (empty: from the beginning-of-text token). Chat: the
    conversation plus the message in the editor; with the editor empty, the context of the last
    reply, so the columns are alternatives to it.
    """
    tokenizer = loaded.tokenizer
    if not chat:
        context = tokenizer.encode(editor_text)
        display = Transcript(turns=[Turn("prompt", editor_text), Turn("output")],
                             reply_prefix=context, tokenizer=tokenizer)  # fmt: skip
        shown = _one_line(editor_text) or "(empty: from the beginning-of-text token)"
        summary = f"Prompt · {len(context)} tokens · {shown}"
        return CompareRequest(loaded.model, tokenizer, loaded.name, context, display, base,
                              n_top, summary)  # fmt: skip
    turns = list(transcript.turns) if transcript.mode == "chat" else []
    if editor_text.strip():
        turns.append(Turn("user", editor_text))
    else:
        while turns and turns[-1].role == "assistant":
            turns.pop()
    if not turns or turns[-1].role != "user":
        raise ValueError("Type a message first: the columns answer it")
    display = Transcript(mode="chat", turns=[*turns, Turn("assistant")], tokenizer=tokenizer)
    context = encode_chat(tokenizer, display.messages(turns))
    display.reply_prefix = context  # the ids the columns continue: prompt tokens are drawn
    n_messages = sum(t.role in ("user", "assistant", "system") for t in turns)
    last = _one_line(turns[-1].text)
    messages = f"{n_messages} message{'s' if n_messages != 1 else ''}"
    summary = f"Chat · {messages}, {len(context)} tokens · last: {last}"
    extra = () if has_chat_template(tokenizer) else (BASE_MODEL_STOP,)
    return CompareRequest(loaded.model, tokenizer, loaded.name, context, display, base, n_top,
                          summary, extra)  # fmt: skip


@dataclass(frozen=True)
class CompareRun:
    """One batch run, as the worker sees it."""

    id: int
    request: CompareRequest
    params: list[Callable[[], SamplingParams]]  # one per column, read before every token
    engine_lock: threading.Lock
    threads: ThreadCounter


class CompareScreen(Screen[list[ColumnSettings]]):
    """Columns that stream together, each with its own settings, output and inspector."""

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
        Binding("l", "look_inside", "Look inside", show=False,
                tooltip="Logit lens, attention and attribution of the column's selected token"),
        Binding("f1", "help", "Help", tooltip="Show the keys"),
    ]  # fmt: skip

    class Streamed(Message):
        """A batch of (column, token) pairs from run `run_id`."""

        def __init__(
            self, run_id: int, events: list[tuple[int, TokenEvent]], stats: RunStats
        ) -> None:
            super().__init__()
            self.run_id = run_id
            self.events = events
            self.stats = stats

    class PromptScored(Message):
        """The prompt's tokens as run `run_id`'s prefill scored them."""

        def __init__(self, run_id: int, scores: list[TokenScore]) -> None:
            super().__init__()
            self.run_id = run_id
            self.scores = scores

    class Done(Message):
        """Run `run_id` ended; `finishes` says why, column by column."""

        def __init__(
            self, run_id: int, finishes: list[str], stats: RunStats, error: str | None = None
        ) -> None:
            super().__init__()
            self.run_id = run_id
            self.finishes = finishes
            self.stats = stats
            self.error = error

    def __init__(
        self,
        request: CompareRequest,
        columns: list[ColumnSettings] | None = None,
        colouring: str = "off",
    ) -> None:
        super().__init__()
        self.request = request
        settings = columns or [default_settings(request.base, i) for i in range(DEFAULT_COLUMNS)]
        self._initial = settings[:MAX_COLUMNS]
        self._colouring = colouring
        self._run_id = 0
        self._status_shown = 0.0
        self.running = False

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.request.summary, id="compare-prompt", markup=False)
        with Horizontal(id="compare-columns"):
            for i, settings in enumerate(self._initial):
                yield self._new_column(i + 1, settings)
        yield CompareStatus(id="compare-status")
        yield Footer(compact=True)

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
        self.columns[0].output.focus()
        # F2 here cycles the app's colouring (remembered with its settings): follow it.
        self.watch(self.app, "colouring", self._colouring_changed, init=False)

    @property
    def columns(self) -> list[CompareColumn]:
        return list(self.query(CompareColumn).results(CompareColumn))

    @property
    def status(self) -> CompareStatus:
        return self.query_one("#compare-status", CompareStatus)

    def _colouring_changed(self, mode: str) -> None:
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
            columns[index].output.focus()

    def action_cycle_colouring(self) -> None:
        app: Any = self.app
        app.action_cycle_colouring()  # the app remembers it; `_colouring_changed` follows

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.BINDINGS))

    def action_look_inside(self) -> None:
        focused = self.focused
        column = next((c for c in self.columns if focused is not None and c in focused.ancestors),
                      None)  # fmt: skip
        if column is None:
            self.notify("Select a token in a column first", severity="warning")
            return
        output, r = column.output, self.request
        prompt = output.selected_prompt
        try:
            lens = column_request(r.model, r.tokenizer, r.context, output.events, output.selected,
                                  None if prompt is None else output.prompt_tokens[prompt],
                                  column.number)  # fmt: skip
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        app: Any = self.app
        app.push_screen(LookInsideScreen(lens, app._engine_lock, app._threads))

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
        app: Any = self.app
        run = CompareRun(self._run_id, self.request, sources, app._engine_lock,
                         app._threads)  # fmt: skip
        for column in columns:
            column.start(self.request.display, self.request.model_name)
        self._set_running(True)
        self.status.state = "generating"
        self.status.stats = None
        self.status.n_columns = len(columns)
        self._compare_worker(run)

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def _compare_worker(self, run: CompareRun) -> None:
        worker = get_current_worker()
        n = len(run.params)
        with run.threads.running(), run.engine_lock:
            if worker.is_cancelled:
                self.post_message(self.Done(run.id, ["user"] * n, RunStats()))
                return
            try:
                request = run.request
                scored = lambda scores: self.post_message(  # noqa: E731
                    self.PromptScored(run.id, scores)
                )
                events = generate_batch(request.model, request.tokenizer, request.context,
                                        run.params, n_top=request.n_top,
                                        on_prompt_scored=scored)  # fmt: skip
                post = lambda batch, stats: self.post_message(  # noqa: E731
                    self.Streamed(run.id, batch, stats)
                )
                finishes, stats = stream_batch(events, n, post, lambda: worker.is_cancelled)
            except Exception as exc:  # noqa: BLE001 - an engine failure ends the run, not the app
                error = f"{type(exc).__name__}: {exc}"
                self.post_message(self.Done(run.id, ["error"] * n, RunStats(), error))
                return
        self.post_message(self.Done(run.id, finishes, stats))

    def on_compare_screen_streamed(self, message: Streamed) -> None:
        if message.run_id != self._run_id:
            return
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

    def on_compare_screen_prompt_scored(self, message: PromptScored) -> None:
        """Draw the prompt as scored tokens in every column (it comes before their tokens)."""
        if message.run_id != self._run_id:
            return
        scored = dataclasses.replace(self.request.display, prompt_scores=list(message.scores))
        for column in self.columns:
            if column.output.token_count == 0:
                column.show_prompt(scored, self.request.model_name)

    def on_compare_screen_done(self, message: Done) -> None:
        if message.run_id != self._run_id:
            return
        for column, finish in zip(self.columns, message.finishes, strict=False):
            column.end(finish)
        self._set_running(False)
        self.status.state = "error" if message.error else "done"
        if message.stats.n_tokens:
            self.status.stats = message.stats
        if message.error:
            self.notify(message.error, severity="error", title="Compare failed", timeout=12)

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


def _one_line(text: str) -> str:
    return " ".join(text.split())
