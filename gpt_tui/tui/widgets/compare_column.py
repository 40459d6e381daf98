"""One column of the compare view: its own sampling settings, output and token inspector.

A column sets only what makes samples differ (temperature, top-p, top-k, seed); everything else
(max tokens, penalties, stop strings) comes from the main sampling panel, so columns differ only
where the user makes them differ. The settings are compact one-line inputs, validated by
`SamplingParams` itself: a bad value is reported with the engine's own message and the column
keeps its previous value. The output and inspector are the main view's widgets; the column
keeps their token selection to itself, so every column has its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.widgets import Input, Label

from gpt_tui.engine import FINISH_REASONS, RANGES, SamplingParams, TokenEvent
from gpt_tui.playground.transcript import Transcript
from gpt_tui.tui.widgets.inspector import TokenInspector
from gpt_tui.tui.widgets.output_view import OutputView

# Contrasting defaults, from nearly greedy to nearly random.
TEMPERATURES = (0.3, 0.8, 1.2, 1.6)
SEED_LIMIT = 2**63
NARROW = 32  # columns narrower than this say less in their borders

# (SamplingParams field, label) of the settings a column edits, in order on screen.
FIELDS = (("temperature", "temp"), ("top_p", "top-p"), ("top_k", "top-k"), ("seed", "seed"))


@dataclass(frozen=True)
class ColumnSettings:
    """A column's own settings, applied over the main panel's (`apply`)."""

    temperature: float
    top_p: float
    top_k: int
    seed: int | None

    def apply(self, base: SamplingParams) -> SamplingParams:
        return base.replace(**dataclasses.asdict(self))

    @classmethod
    def of(cls, params: SamplingParams) -> ColumnSettings:
        return cls(params.temperature, params.top_p, params.top_k, params.seed)


def default_settings(base: SamplingParams, index: int) -> ColumnSettings:
    """Column `index`'s starting settings: a contrasting temperature and, when the main panel
    is seeded, a seed of its own (the same seed would draw the same noise in every column)."""
    seed = None if base.seed is None else (base.seed + index) % SEED_LIMIT
    return ColumnSettings(TEMPERATURES[index % len(TEMPERATURES)], base.top_p, base.top_k, seed)


def format_setting(name: str, value: float | int | None) -> str:
    if value is None:
        return ""
    if name in ("top_k", "seed"):
        return str(int(value))
    return f"{value:g}"


def parse_setting(name: str, text: str) -> float | int | None:
    """The value typed for setting `name`; ValueError with a message a user can act on."""
    text = text.strip()
    if name == "seed":
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise ValueError(
                f"seed must be a whole number in [0, 2^63) or empty (random), not '{text}'"
            ) from None
    spec = RANGES[name]
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number in {spec.describe()}, not '{text}'") from None
    if spec.integer and value.is_integer():
        return int(value)
    return value


def settings_title(number: int, params: SamplingParams) -> str:
    """The column's border title: its number and the settings that make it differ."""
    if params.greedy:  # top-k, top-p and the seed change nothing then
        return f"{number} · greedy"
    parts = [f"{number}", f"temp {params.temperature:g}"]
    if params.top_p < 1:
        parts.append(f"top-p {params.top_p:g}")
    if params.top_k:
        parts.append(f"top-k {params.top_k}")
    parts.append(f"seed {params.seed}" if params.seed is not None else "random")
    return " · ".join(parts)


class CompareColumn(Vertical):
    """Settings inputs, an `OutputView` and a `TokenInspector`, for one stream of a batch."""

    DEFAULT_CSS = """
        CompareColumn {
            width: 1fr;
            height: 1fr;
        }
        CompareColumn .column-settings {
            grid-size: 4;
            grid-columns: auto 1fr auto 1fr;
            grid-gutter: 0 1;
            height: 2;
            padding: 0 1;
        }
        CompareColumn .setting-label {
            color: $text-muted;
        }
        CompareColumn:focus-within .setting-label {
            color: $text;
        }
        CompareColumn .column-settings Input {
            width: 1fr;
            height: 1;
        }
        CompareColumn .column-settings Input.-invalid {
            background: $error 30%;
        }
        CompareColumn OutputView {
            border-subtitle-color: $text-muted;
        }
        /* The same height in every column, selected or not, so the outputs line up. */
        CompareColumn TokenInspector {
            height: 14;
        }
        CompareColumn TokenInspector #alternatives {
            height: 1fr;
            margin-top: 0;
        }
    """

    BINDINGS = [
        Binding("escape", "leave_settings", "Back to the output", show=False),
    ]

    def __init__(
        self,
        number: int,
        settings: ColumnSettings,
        base: SamplingParams,
        tokenizer: Any,
        colouring: str = "off",
    ) -> None:
        super().__init__()
        self.number = number
        self.params = settings.apply(base)  # read by the compare worker before every token
        self.tokenizer = tokenizer
        self.finish: str | None = None
        self.running = False
        self._colouring = colouring

    def compose(self) -> ComposeResult:
        with Grid(classes="column-settings"):
            for name, label in FIELDS:
                yield Label(label, classes="setting-label")
                value = format_setting(name, getattr(self.params, name))
                field = Input(value, compact=True, id=f"set-{name}", classes="setting")
                field.placeholder = "random" if name == "seed" else ""
                field.tooltip = _tooltip(name)
                yield field
        output = OutputView(classes="column-output")
        output.colouring = self._colouring
        output.placeholder = "F5 runs every column."
        yield output
        yield TokenInspector(branchable=False, classes="column-inspector -empty")

    def on_mount(self) -> None:
        self._show_title()

    @property
    def output(self) -> OutputView:
        return self.query_one(OutputView)

    @property
    def inspector(self) -> TokenInspector:
        return self.query_one(TokenInspector)

    @property
    def settings(self) -> ColumnSettings:
        return ColumnSettings.of(self.params)

    def set_number(self, number: int) -> None:
        self.number = number
        self._show_title()

    def set_colouring(self, mode: str) -> None:
        self._colouring = mode
        self.output.colouring = mode

    # --- a run -----------------------------------------------------------------------------

    def show_prompt(self, transcript: Transcript, assistant: str) -> None:
        """The context alone, as before a run (and at the start of one)."""
        self.output.show_transcript(transcript, assistant)
        self.finish = None
        self.output.border_subtitle = ""

    def start(self, transcript: Transcript, assistant: str) -> None:
        self.show_prompt(transcript, assistant)
        self.running = True
        self._show_status()

    def add_tokens(self, events: list[TokenEvent]) -> None:
        self.output.add_tokens(events)
        if events and events[-1].finish_reason:
            self.end(events[-1].finish_reason)
        else:
            self._show_status()

    def end(self, finish: str) -> None:
        """The stream stopped (the first reason given stands: a stop after the end is moot)."""
        self.running = False
        if self.finish is None:
            self.finish = finish
        self._show_status()

    def on_resize(self) -> None:
        self._show_status()

    def _show_status(self) -> None:
        if not self.running and self.finish is None:  # not run yet
            self.output.border_subtitle = ""
            return
        n = self.output.token_count
        narrow = 0 < self.size.width < NARROW  # "100 tokens · max tokens" would be cut short
        tokens = f"{n} tok" if narrow else f"{n} token{'s' if n != 1 else ''}"
        if self.running:
            state = "generating…"
        elif self.finish == "user":
            state = "stopped by you"
        elif self.finish == "error":
            state = "failed"
        else:
            state = FINISH_REASONS.get(self.finish or "", self.finish or "")
        self.output.border_subtitle = f"{tokens} · {state}" if state else tokens

    def _show_title(self) -> None:
        self.output.border_title = settings_title(self.number, self.params)

    # --- token selection: this column's own ------------------------------------------------

    def on_output_view_token_selected(self, message: OutputView.TokenSelected) -> None:
        message.stop()  # the app's handler would show it in the main view's inspector
        text = None
        if message.event is not None:
            try:
                text = self.tokenizer.token_text(message.event.token_id)
            except ValueError:
                text = None
        self.inspector.set_class(message.event is None, "-empty")  # hidden in a short screen
        self.inspector.show(message.event, message.index, text)

    def on_output_view_prompt_token_selected(self, message: OutputView.PromptTokenSelected) -> None:
        message.stop()  # this column's own, like its output tokens
        token = message.token
        try:
            text = self.tokenizer.token_text(token.token_id)
        except ValueError:
            text = token.score.text if token.score is not None else ""
        self.inspector.set_class(False, "-empty")
        self.inspector.show_prompt_token(token, message.index, text)

    # --- settings --------------------------------------------------------------------------

    def commit(self) -> bool:
        """Apply every input as typed (a run reads them); False if one was invalid (reported,
        and put back to the value in use)."""
        return all([self._report(field) for field in self.query(".setting").results(Input)])

    def on_input_changed(self, event: Input.Changed) -> None:
        """Mark an invalid value as it is typed; apply nothing yet. (Applying each valid
        step would let an emptied seed input, on its way to a new seed, mean "random".)"""
        event.stop()
        event.input.set_class(self._apply(event.input, dry_run=True) is not None, "-invalid")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._report(event.input)

    def on_descendant_blur(self, event: Any) -> None:
        if isinstance(event.widget, Input):
            self._report(event.widget)

    def _report(self, field: Input) -> bool:
        error = self._apply(field)
        if error is None:
            field.remove_class("-invalid")
            return True
        name = _field_name(field)
        kept = format_setting(name, getattr(self.params, name)) or "random"
        self.notify(f"{error}; kept {kept}", severity="error", title=f"Column {self.number}")
        with self.prevent(Input.Changed):
            field.value = format_setting(name, getattr(self.params, name))
        field.remove_class("-invalid")
        return False

    def _apply(self, field: Input, dry_run: bool = False) -> str | None:
        """Apply `field`'s text to the column's settings (a running column picks it up at the
        next token); the error message if it is invalid."""
        name = _field_name(field)
        try:
            params = self.params.replace(**{name: parse_setting(name, field.value)})
        except ValueError as exc:
            return str(exc)
        if params != self.params and not dry_run:
            self.params = params
            self._show_title()
        return None

    def take_settings(self, params: SamplingParams) -> None:
        """The column's own settings (temperature, top-p, top-k, seed) as `params` has them,
        from the sampler view opened on it; the others stay the ones compare opened with."""
        own = ColumnSettings.of(params)
        if own == self.settings:
            return
        self.params = own.apply(self.params)
        for field in self.query(".setting").results(Input):
            name = _field_name(field)
            with self.prevent(Input.Changed):
                field.value = format_setting(name, getattr(self.params, name))
        self._show_title()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_settings":  # else escape stops the run (or leaves the screen)
            focused = self.screen.focused
            return isinstance(focused, Input) and self in focused.ancestors
        return True

    def action_leave_settings(self) -> None:
        self.output.focus()


def _field_name(field: Input) -> str:
    assert field.id is not None
    return field.id.removeprefix("set-")


def _tooltip(name: str) -> str:
    if name == "seed":
        return "A whole number makes this column repeatable; empty = a new draw each run"
    spec = RANGES[name]
    return f"{name} {spec.describe()}: {spec.help}\nenter applies; escape returns to the output"
