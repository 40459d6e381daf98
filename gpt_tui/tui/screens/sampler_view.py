"""The sampler view (s, or "Sampler view" in the command palette): what each sampling stage
does to the selected token's step, live.

The step's logits are computed once in a thread worker (`StepLab.open`: one position over the
kv cache); the screen has the sampling panel beside the table, and every move of a slider runs
the stages again (a worker too, the newest move replacing an older one) and redraws. The
panel's changes also reach the app (its `Changed` message bubbles up), so they are the
playground's settings, saved as ever. Keys: d draws N times from the final distribution and
counts; r resamples the token under the settings shown and continues from it as a new branch;
e expands the step: its likeliest alternatives each continued for a few tokens, as branches;
t puts temperature last (or back). Escape closes the view.

The screen dismisses with what the app should do to the reply (`Resampled`, `Expanded`), or
None.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import get_current_worker

from gpt_tui.backends.openai.step import ServerStep
from gpt_tui.display import percent, visible_token
from gpt_tui.engine import Alternative, SamplingParams, TokenEvent
from gpt_tui.engine.sampling import DEFAULT_ORDER, SamplerView, temperature_last
from gpt_tui.playground.sampler_lab import (
    BANNED_IN_EXPAND,
    EXPAND_TOKENS,
    N_DRAWS,
    N_EXPAND,
    Drawn,
    StepLab,
    StepRequest,
    expand,
)
from gpt_tui.playground.streaming import ThreadCounter
from gpt_tui.tui.widgets.key_footer import KeyFooter
from gpt_tui.tui.widgets.sampling_panel import SamplingPanel
from gpt_tui.tui.widgets.stage_table import StageTable, heading

SERVER_NOTE = "a server sends its top tokens only: the stages need the local engine"
SERVER_ROWS = 10  # the tokens asked of a server that says what its sampling does


@dataclass(frozen=True)
class Resampled:
    """Take `alternative` at reply token `position` and continue (drawn with `sampled_prob`)."""

    position: int
    alternative: Alternative
    sampled_prob: float


@dataclass(frozen=True)
class Expanded:
    """New branches from reply token `position`, each its events from there on."""

    position: int
    branches: list[list[TokenEvent]]


class SamplerViewScreen(Screen[Resampled | Expanded | None]):
    """One step's distribution after every sampling stage, under the settings of the panel."""

    DEFAULT_CSS = """
        SamplerViewScreen #sv-title {
            height: 1;
            padding: 0 1;
            text-style: bold;
            text-wrap: nowrap;
            text-overflow: ellipsis;
        }
        SamplerViewScreen #sv-body {
            height: 1fr;
        }
        SamplerViewScreen #sv-table {
            width: 1fr;
        }
        SamplerViewScreen #sv-sampling {
            width: 32;
            height: auto;
            max-height: 100%;
        }
        SamplerViewScreen.-wide #sv-sampling {
            width: 44;
        }
        SamplerViewScreen #sv-status {
            height: 2;
            padding: 0 1;
            background: $panel;
            color: $text-muted;
        }
    """

    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to the output"),
        Binding("d", "draws", "Draws", tooltip=f"Draw {N_DRAWS:,} times with the seed and count"),
        Binding("r", "resample", "Resample",
                tooltip="Draw this token again under these settings and go on: a new branch"),
        Binding("e", "expand", "Expand",
                tooltip=f"The {N_EXPAND} likeliest alternatives, each continued for "
                        f"{EXPAND_TOKENS} tokens, as branches"),
        Binding("t", "temperature_last", "Temp last",
                tooltip="Temperature last (the truncations see the model's own distribution), "
                        "or back in its place"),
    ]  # fmt: skip

    class Opened(Message):
        def __init__(self, lab: StepLab) -> None:
            super().__init__()
            self.lab = lab

    class Viewed(Message):
        def __init__(self, params: SamplingParams, view: SamplerView, drawn: Drawn | None,
                     seconds: float) -> None:  # fmt: skip
            super().__init__()
            self.params, self.view, self.drawn, self.seconds = params, view, drawn, seconds

    class Failed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    class ServerViewed(Message):
        def __init__(self, params: SamplingParams, step: ServerStep, seconds: float) -> None:
            super().__init__()
            self.params, self.step, self.seconds = params, step, seconds

    class ExpandDone(Message):
        def __init__(self, expanded: Expanded) -> None:
            super().__init__()
            self.expanded = expanded

    def __init__(
        self,
        request: StepRequest | None,
        engine_lock: threading.Lock,
        threads: ThreadCounter,
        params: SamplingParams,
        n_top: int,
        speculative: str,
        *,
        server_event: TokenEvent | None = None,
        token_text: str = "",
        where: str = "",
        column_note: str = "",
        server_step: Callable[[SamplingParams], ServerStep] | None = None,
        server_note: str = SERVER_NOTE,
    ) -> None:
        """`request` None: a server's token (`server_event`), shown as the server gave it:
        with `server_step` (llama-server), asked again under the panel's settings, before and
        after the server's sampling; `server_note` says in one line what cannot be shown.
        `column_note`: opened on a compare column, whose settings these are (the panel's moves
        stay here, not the playground's; the note says what the column takes of them)."""
        super().__init__()
        self.request = request
        self._engine_lock = engine_lock
        self._threads = threads
        self.params = params
        self._n_top = n_top
        self._speculative = speculative
        self._server_event = server_event
        self._token_text = token_text
        self._where = where
        self._column_note = column_note
        self._server_step = server_step
        self._server_note = server_note
        self.lab: StepLab | None = None
        self.view: SamplerView | None = None
        self.drawn: Drawn | None = None
        self.n_draws = 0  # 0: no draws shown
        self.busy = ""  # what a long action is doing ("" when idle)
        self.redraw_seconds: float | None = None
        # from the key (s, or a slider's move) to the table drawn with the result
        self._asked_at = time.perf_counter()
        self.shown_seconds: float | None = None
        self.server_view: ServerStep | None = None  # a server's step, as last answered

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="sv-title")
        with Horizontal(id="sv-body"):
            yield StageTable(id="sv-table")
            yield SamplingPanel(self.params, self._n_top, self._speculative, id="sv-sampling")
        yield Static("Computing the step…", id="sv-status")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "sampler view"
        table = self.query_one(StageTable)
        table.focus()
        if self._column_note:
            self.notify(self._column_note, title="Sampler view", timeout=8)
        if self.request is None:
            event = self._server_event
            if event is not None:
                table.show_server(event.top, event.token_id)
            self._status(self._server_note)
            self._redraw()
            return
        self._open_worker(self.request)

    def _title(self) -> str:
        request = self.request
        if request is None:
            return f"“{visible_token(self._token_text)}” · {self._where} · from the server"
        lens = request.lens
        token = visible_token(lens.tokenizer.token_text(lens.target))
        before = visible_token(lens.tokenizer.token_text(lens.ids[lens.position]))
        return f"“{token}” · {lens.where} · drawn after “{before}”"

    def _status(self, text: str) -> None:
        self.query_one("#sv-status", Static).update(text)

    # --- computing ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="sv-open", exit_on_error=False)
    def _open_worker(self, request: StepRequest) -> None:
        with self._threads.running():
            try:
                lab = StepLab.open(request, self._engine_lock)
            except Exception as exc:  # noqa: BLE001 - shown on the screen, the app goes on
                self.post_message(self.Failed(f"{type(exc).__name__}: {exc}"))
                return
            self.post_message(self.Opened(lab))

    def on_sampler_view_screen_opened(self, message: Opened) -> None:
        self.lab = message.lab
        self._redraw()

    def _redraw(self) -> None:
        if self.lab is not None:
            self._view_worker(self.lab, self.params, self.n_draws)
        elif self._server_step is not None:
            self._status(f"{self._server_note}\nasking the server…")
            self._server_worker(self._server_step, self.params)

    @work(thread=True, exclusive=True, group="sv-server", exit_on_error=False)
    def _server_worker(self, ask: Callable[[SamplingParams], ServerStep], params: SamplingParams
                       ) -> None:  # fmt: skip
        start = time.perf_counter()
        try:
            step = ask(params)
        except Exception as exc:  # noqa: BLE001 - shown on the screen, the app goes on
            self.post_message(self.Failed(f"{type(exc).__name__}: {exc}"))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.ServerViewed(params, step, time.perf_counter() - start))

    def on_sampler_view_screen_server_viewed(self, message: ServerViewed) -> None:
        event = self._server_event
        if message.params is not self.params or event is None:
            return  # asked for settings since changed: the newer answer follows
        self.server_view = message.step
        self.query_one(StageTable).show_server_step(message.step, event.token_id,
                                                    self._token_text, SERVER_ROWS)  # fmt: skip
        drawn = next((a.text for a in message.step.after or () if a.token_id ==
                      message.step.drawn), None)  # fmt: skip
        line = f"asked in {message.seconds:.2f} s"
        if drawn is not None:
            line += f" · it would draw “{visible_token(drawn)}” here now"
        self._status(f"{self._server_note}\n{line}")

    @work(thread=True, exclusive=True, group="sv-view", exit_on_error=False)
    def _view_worker(self, lab: StepLab, params: SamplingParams, n_draws: int) -> None:
        start = time.perf_counter()
        try:
            view = lab.view(params)
            drawn = lab.draws(view, n_draws, params.seed) if n_draws else None
        except Exception as exc:  # noqa: BLE001 - a setting the stages refuse: say so
            self.post_message(self.Failed(f"{type(exc).__name__}: {exc}"))
            return
        if not get_current_worker().is_cancelled:  # a newer move replaced it
            self.post_message(self.Viewed(params, view, drawn, time.perf_counter() - start))

    def on_sampler_view_screen_viewed(self, message: Viewed) -> None:
        lab = self.lab
        if lab is None or message.params is not self.params:
            return  # drawn for settings since changed: the newer view follows
        self.view, self.drawn = message.view, message.drawn
        self.redraw_seconds = message.seconds
        rows = lab.rows(message.view)
        texts = {t: lab.token_text(t) for t in rows}
        self.query_one(StageTable).show(message.view, rows, texts, lab.request.token,
                                        message.drawn)  # fmt: skip
        self._show_summary()
        asked = self._asked_at
        self.call_after_refresh(self._shown, asked)

    def _shown(self, asked: float) -> None:
        self.shown_seconds = time.perf_counter() - asked

    def _show_summary(self) -> None:
        lab, view = self.lab, self.view
        if lab is None or view is None:
            return
        how = "over the cache" if lab.over_cache else "over a fresh pass"
        order = " → ".join(heading(n) for n in view.order) or "none: every sampler is off"
        taken = lab.request.token
        p = float(view.final.probs[taken])
        lines = [
            f"stages: {order} · ▶ taken: {percent(p) if p else 'removed'} now",
            f"step {how} in {lab.seconds:.2f} s · stages {(self.redraw_seconds or 0) * 1e3:.0f} ms",
        ]
        if self.drawn is not None:
            lines[1] += f" · {self.drawn.n:,} draws, seed {self.drawn.seed}"
        if self.busy:
            lines[1] = self.busy
        self._status("\n".join(lines))

    def on_sampler_view_screen_failed(self, message: Failed) -> None:
        self._status(f"cannot show the sampler view: {message.error}")
        self.notify(message.error, severity="error", title="Sampler view", timeout=12)

    # --- the panel ---------------------------------------------------------------------------

    def on_sampling_panel_changed(self, message: SamplingPanel.Changed) -> None:
        # not stopped: the app takes the new settings too (and saves them), unless they are a
        # compare column's
        if self._column_note:
            message.stop()
        self._asked_at = time.perf_counter()
        self.params = message.params
        self._redraw()

    def set_params(self, params: SamplingParams) -> None:
        """Settings changed elsewhere (the palette): shown in the panel, and the view redrawn."""
        self.params = params
        self.query_one(SamplingPanel).set_values(params, self._n_top)
        self._redraw()

    # --- keys --------------------------------------------------------------------------------

    def action_draws(self) -> None:
        if self.lab is None:
            self.notify("Draws need the whole distribution: the local engine", severity="warning")
            return
        self.n_draws = 0 if self.n_draws else N_DRAWS
        self._redraw()

    def action_temperature_last(self) -> None:
        order = self.params.sampler_order
        last = temperature_last(order)
        if order == last:  # back to where the default order has it
            names = set(order)
            order = tuple(n for n in DEFAULT_ORDER if n in names)
            if order == last:
                order = DEFAULT_ORDER
        else:
            order = last
        panel = self.query_one(SamplingPanel)
        panel.set_order(order)  # announces the change: the view and the app follow

    def _branchable(self) -> StepRequest | None:
        request = self.request
        if self.lab is None or self.view is None or request is None:
            self.notify("Wait for the view first (a server's token cannot be redrawn)",
                        severity="warning")  # fmt: skip
            return None
        if request.reply_position is None:
            self.notify("Only the reply's tokens branch (in a chat, the latest reply's)",
                        severity="warning")  # fmt: skip
            return None
        return request

    def action_resample(self) -> None:
        request = self._branchable()
        if request is None or self.lab is None or self.view is None:
            return
        token, p = self.lab.resample(self.view, self.params.seed)
        text = self.lab.token_text(token)
        if token == request.token:
            self.notify(f"These settings draw “{visible_token(text)}” here again ({percent(p)})",
                        timeout=4)  # fmt: skip
            return
        model_p = float(self.view.stages[0].probs[token])
        alternative = Alternative(token, text, model_p)
        assert request.reply_position is not None
        self.dismiss(Resampled(request.reply_position, alternative, p))

    def action_expand(self) -> None:
        request = self._branchable()
        if request is None or self.lab is None or self.view is None or self.busy:
            return
        tokens = self.lab.alternatives(self.view, N_EXPAND)
        if not tokens:
            self.notify("These settings leave no other token here", severity="warning")
            return
        self.busy = f"expanding {len(tokens)} alternatives, {EXPAND_TOKENS} tokens each…"
        if self.params.banned_strings:
            self.notify(BANNED_IN_EXPAND, severity="warning", title="Expand", timeout=8)
        self._show_summary()
        self._expand_worker(request, tokens, self.params)

    @work(thread=True, exclusive=True, group="sv-expand", exit_on_error=False)
    def _expand_worker(self, request: StepRequest, tokens: list[int], params: SamplingParams
                       ) -> None:  # fmt: skip
        worker = get_current_worker()
        with self._threads.running():
            try:
                branches = expand(request, tokens, params, self._engine_lock,
                                  cancelled=lambda: worker.is_cancelled)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - shown on the screen, the app goes on
                self.post_message(self.Failed(f"{type(exc).__name__}: {exc}"))
                return
        assert request.reply_position is not None
        self.post_message(self.ExpandDone(Expanded(request.reply_position, branches)))

    def on_sampler_view_screen_expand_done(self, message: ExpandDone) -> None:
        self.busy = ""
        self.dismiss(message.expanded)

    def action_close(self) -> None:
        self.workers.cancel_group(self, "sv-view")
        self.workers.cancel_group(self, "sv-server")
        self.workers.cancel_group(self, "sv-expand")
        self.dismiss(None)
