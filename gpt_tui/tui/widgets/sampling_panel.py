"""The sampling settings: a slider per parameter, the seed, the stop strings, and speculation.

Every value is validated at this boundary by `SamplingParams` itself, so the message a user sees
for a bad value names the parameter and its range exactly as the engine defines them. The panel
posts `Changed` with the new settings; the app reads them before every token, so a move applies
from the next token, also in the middle of a generation.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label

from gpt_tui.backends.base import Capabilities
from gpt_tui.engine import RANGES, SamplingParams
from gpt_tui.errors import SpeculationError
from gpt_tui.settings import SPECULATIVE_DEFAULT, SPECULATIVE_OFF, check_speculative
from gpt_tui.tui.text import format_stops, parse_stops
from gpt_tui.tui.widgets.slider import Slider

N_TOP_RANGE = (1, 100)


@dataclass(frozen=True)
class SliderSpec:
    name: str  # the SamplingParams field, or "n_top"
    label: str
    big_step: float
    log: bool = False


SLIDERS = (
    SliderSpec("temperature", "temperature", 0.25),
    SliderSpec("top_p", "top-p", 0.1),
    SliderSpec("top_k", "top-k", 10, log=True),
    SliderSpec("min_p", "min-p", 0.1),
    SliderSpec("repetition_penalty", "repetition", 0.25),
    SliderSpec("presence_penalty", "presence", 0.5),
    SliderSpec("frequency_penalty", "frequency", 0.5),
    SliderSpec("max_tokens", "max tokens", 64, log=True),
    SliderSpec("n_top", "show top", 10),
)

KEYS_HELP = "←/→ adjust · shift+←/→ faster · home/end · type a number, then enter"


class SamplingPanel(Vertical):
    """Sliders for the sampling parameters, plus seed and stop strings."""

    DEFAULT_CSS = """
        SamplingPanel {
            height: auto;
            border: round $panel-lighten-2;
            border-title-color: $text-muted;
            padding: 0 1;
        }
        SamplingPanel:focus-within {
            border: round $accent;
            border-title-color: $accent;
        }
        SamplingPanel .param-row {
            height: 1;
        }
        SamplingPanel .param-label {
            width: 12;
            color: $text-muted;
        }
        SamplingPanel .param-row.-unavailable .param-label {
            color: $text-disabled;
            text-style: strike;
        }
        SamplingPanel .param-row:focus-within .param-label {
            color: $accent;
            text-style: bold;
        }
        SamplingPanel .param-row Input {
            width: 1fr;
            height: 1;
        }
        SamplingPanel .param-row Input.-invalid {
            background: $error 30%;
        }
        /* Folded (a short terminal, a token inspected): its first row only, so that the
           inspector below is seen whole; focusing it (tab, a click) unfolds it. */
        SamplingPanel.-folded {
            height: 3;
        }
        SamplingPanel.-folded:focus-within {
            height: auto;
        }
    """

    class Changed(Message):
        def __init__(self, params: SamplingParams, n_top: int) -> None:
            super().__init__()
            self.params = params
            self.n_top = n_top

    class SpeculativeChanged(Message):
        """Speculative decoding set to off, lookup or a draft model (same text, other speed)."""

        def __init__(self, choice: str) -> None:
            super().__init__()
            self.choice = choice

    def __init__(
        self,
        params: SamplingParams,
        n_top: int,
        speculative: str = SPECULATIVE_DEFAULT,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.params = params
        self.n_top = n_top
        self.speculative = speculative
        self.border_title = "Sampling"

    def compose(self) -> ComposeResult:
        for spec in SLIDERS:
            with Horizontal(classes="param-row", id=f"row-{spec.name}"):
                yield Label(spec.label, classes="param-label")
                yield self._make_slider(spec)
        with Horizontal(classes="param-row", id="row-seed"):
            yield Label("seed", classes="param-label")
            seed = Input(
                "" if self.params.seed is None else str(self.params.seed),
                placeholder="random",
                compact=True,
                id="seed",
            )
            seed.tooltip = "A whole number makes sampling repeatable; empty = a new draw each time"
            yield seed
        with Horizontal(classes="param-row", id="row-stop"):
            yield Label("stop", classes="param-label")
            stop = Input(
                format_stops(self.params.stop),
                placeholder=r"e.g. \n\n, END",
                compact=True,
                id="stop",
            )
            stop.tooltip = (
                "Stop strings, comma-separated; \\n is a newline, \\, a comma, \\s a space"
            )
            yield stop
        with Horizontal(classes="param-row", id="row-speculative"):
            yield Label("speculative", classes="param-label")
            spec = Input(self.speculative, placeholder="off", compact=True, id="speculative")
            spec.tooltip = (
                "Speculative decoding: the same text, several tokens per forward pass when the "
                "drafts hold. lookup drafts from the prompt and output so far; a model name or "
                "path drafts with that model (same tokenizer); off decodes one token a pass"
            )
            yield spec

    def _make_slider(self, spec: SliderSpec) -> Slider:
        if spec.name == "n_top":
            low, high = N_TOP_RANGE
            slider = Slider(low, high, self.n_top, step=1, big_step=spec.big_step, integer=True,
                            id="slider-n_top")  # fmt: skip
            slider.tooltip = f"alternatives shown per token in the inspector, [{low}, {high}]\n"
            slider.tooltip += KEYS_HELP
            return slider
        r = RANGES[spec.name]
        low = r.low + r.step if r.low_open else r.low
        high = r.high - r.step if r.high_open else r.high
        slider = Slider(
            low,
            high,
            getattr(self.params, spec.name),
            step=r.step,
            big_step=spec.big_step,
            integer=r.integer,
            log_scale=spec.log,
            format=_off_when_zero if spec.name == "top_k" else None,
            id=f"slider-{spec.name}",
        )
        slider.tooltip = f"{spec.name} {r.describe()}: {r.help}\n{KEYS_HELP}"
        return slider

    def fold(self, folded: bool) -> None:
        """Show only the first setting (the inspector needs the room), or every one."""
        self.set_class(folded, "-folded")
        self.border_subtitle = "click: every setting" if folded else ""

    def show_available(self, capabilities: Capabilities) -> None:
        """Mark the settings the model's backend cannot honour (a server that ignores top-k):
        they keep their values, for a model that can, but read as not available here, and
        say why when hovered. Nothing is dropped silently."""
        for row in self.query(".param-row").results(Horizontal):
            name = (row.id or "").removeprefix("row-")
            feature = "alternatives" if name == "n_top" else name
            why_not = capabilities.why_not(feature) if name else None
            row.set_class(why_not is not None, "-unavailable")
            label = row.query_one(Label)
            label.tooltip = f"{why_not}: this setting is not used here" if why_not else None

    # --- keeping the widgets and the values in step ---------------------------------------

    def set_values(self, params: SamplingParams, n_top: int) -> None:
        """Show `params` (settings loaded, reset to defaults) without announcing a change."""
        self.params = params
        self.n_top = n_top
        for spec in SLIDERS:
            slider = self.query_one(f"#slider-{spec.name}", Slider)
            value = n_top if spec.name == "n_top" else getattr(params, spec.name)
            slider.set_reactive(Slider.value, float(value))
            slider.refresh()
        with self.prevent(Input.Changed):
            self.query_one("#seed", Input).value = "" if params.seed is None else str(params.seed)
            self.query_one("#stop", Input).value = format_stops(params.stop)

    def _apply(self, **changes: object) -> str | None:
        """Apply validated changes; returns the error message if they are invalid."""
        n_top = changes.pop("n_top", self.n_top)
        try:
            params = self.params.replace(**changes) if changes else self.params
        except (TypeError, ValueError) as exc:
            return str(exc)
        if params != self.params or n_top != self.n_top:
            self.params, self.n_top = params, int(n_top)  # type: ignore[arg-type]
            self.post_message(self.Changed(params, self.n_top))
        return None

    def on_slider_changed(self, event: Slider.Changed) -> None:
        event.stop()
        name = _param_name(event.slider)
        value = int(event.value) if event.slider.integer else event.value
        error = self._apply(**{name: value})
        if error:  # the slider's range is the parameter's, so this is a bug worth showing
            self.notify(error, severity="error", title="Invalid value")

    def on_slider_typed(self, event: Slider.Typed) -> None:
        event.stop()
        slider = event.slider
        name = _param_name(slider)
        error = self._typed_error(name, event.text, slider)
        if error:
            self.notify(error, severity="error", title="Invalid value")

    def _typed_error(self, name: str, text: str, slider: Slider) -> str | None:
        if name == "n_top":
            low, high = N_TOP_RANGE
            try:
                value: float = int(text)
            except ValueError:
                value = -1
            if not low <= value <= high:
                return f"alternatives must be a whole number in [{low}, {high}], not '{text}'"
            error = self._apply(n_top=value)
        else:
            r = RANGES[name]
            try:
                value = float(text)
            except ValueError:
                return f"{name} must be a number in {r.describe()}, not '{text}'"
            if r.integer and value.is_integer():
                value = int(value)
            error = self._apply(**{name: value})
        if error is None:
            slider.value = float(value)
        return error

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        error = self._input_error(event.input)
        event.input.set_class(error is not None, "-invalid")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._report_input(event.input)

    def on_descendant_blur(self, event) -> None:
        if isinstance(event.widget, Input):
            self._report_input(event.widget)

    def _report_input(self, widget: Input) -> None:
        error = self._input_error(widget)
        widget.set_class(error is not None, "-invalid")
        if error:
            self.notify(error, severity="error", title="Invalid value")

    def set_speculative(self, choice: str) -> None:
        """Show a speculative setting chosen elsewhere (the palette) without announcing it."""
        self.speculative = choice
        with self.prevent(Input.Changed):
            self.query_one("#speculative", Input).value = choice

    def _input_error(self, widget: Input) -> str | None:
        text = widget.value.strip()
        if widget.id == "speculative":
            try:
                choice = check_speculative(text or SPECULATIVE_OFF)
            except SpeculationError as exc:
                return str(exc)
            if choice != self.speculative:
                self.speculative = choice
                self.post_message(self.SpeculativeChanged(choice))
            return None
        if widget.id == "seed":
            if not text:
                return self._apply(seed=None)
            try:
                seed = int(text)
            except ValueError:
                return f"seed must be a whole number in [0, 2^63) or empty (random), not '{text}'"
            return self._apply(seed=seed)
        return self._apply(stop=parse_stops(widget.value))


def _param_name(slider: Slider) -> str:
    assert slider.id is not None
    return slider.id.removeprefix("slider-")


def _off_when_zero(value: float) -> str:
    return "off" if value == 0 else str(int(value))
