"""A one-line slider: a track, a thumb and the value, for keyboard and mouse.

Textual has no slider. This one moves by `step` with left/right (`big_step` with shift), jumps to
the ends with home/end, follows mouse clicks and drags, and accepts a typed number: start typing
while it has focus, enter to apply, escape to cancel. A typed value is not applied here: the
slider posts `Typed`, and its owner validates it (and says what range is allowed).

Parameters spanning decades (top-k: 0..50257, max tokens: 1..65536) use a logarithmic track, so
the useful small values get most of its length.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rich.segment import Segment
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

VALUE_WIDTH = 6
_STARTS_NUMBER = set("0123456789.-+")  # typing one of these starts entering a value


class Slider(Widget, can_focus=True):
    """A value in [minimum, maximum] on a grid of `step`, drawn as ━━━━●───── 0.70."""

    DEFAULT_CSS = """
        Slider {
            width: 1fr;
            height: 1;
        }
        Slider:focus {
            background: $boost;
        }
        Slider > .slider--fill {
            color: $accent;
        }
        Slider > .slider--thumb {
            color: $accent;
            text-style: bold;
        }
        Slider:focus > .slider--thumb {
            color: $warning;
        }
        Slider > .slider--track {
            color: $panel-lighten-2;
        }
        Slider > .slider--value {
            color: $text;
        }
        Slider > .slider--editing {
            color: $text;
            background: $accent 30%;
        }
    """

    BINDINGS = [
        Binding("left", "nudge(-1)", "Less", show=False),
        Binding("right", "nudge(1)", "More", show=False),
        Binding("shift+left", "nudge(-1, True)", "Much less", show=False),
        Binding("shift+right", "nudge(1, True)", "Much more", show=False),
        Binding("home", "to_end(-1)", "Minimum", show=False),
        Binding("end", "to_end(1)", "Maximum", show=False),
    ]

    COMPONENT_CLASSES = {
        "slider--track",
        "slider--fill",
        "slider--thumb",
        "slider--value",
        "slider--editing",
    }

    value: reactive[float] = reactive(0.0, init=False)
    editing: reactive[str | None] = reactive(None, init=False)

    class Changed(Message):
        """The value changed through the keyboard or the mouse."""

        def __init__(self, slider: Slider, value: float) -> None:
            super().__init__()
            self.slider = slider
            self.value = value

        @property
        def control(self) -> Slider:
            return self.slider

    class Typed(Message):
        """The user typed `text` and pressed enter: the owner validates and applies it."""

        def __init__(self, slider: Slider, text: str) -> None:
            super().__init__()
            self.slider = slider
            self.text = text

        @property
        def control(self) -> Slider:
            return self.slider

    def __init__(
        self,
        minimum: float,
        maximum: float,
        value: float,
        *,
        step: float = 1.0,
        big_step: float | None = None,
        integer: bool = False,
        log_scale: bool = False,
        format: Callable[[float], str] | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.minimum = minimum
        self.maximum = maximum
        self.step = step
        self.big_step = big_step if big_step is not None else step * 10
        self.integer = integer
        self.log_scale = log_scale
        self._format = format
        self._drag = False
        self.set_reactive(Slider.value, self.snap(value))

    # --- value <-> position ----------------------------------------------------------------

    def snap(self, value: float) -> float:
        """`value` clamped to the range and rounded to the step grid."""
        value = min(self.maximum, max(self.minimum, value))
        if self.integer:
            return float(round(value))
        steps = round((value - self.minimum) / self.step)
        snapped = self.minimum + steps * self.step
        decimals = max(0, -math.floor(math.log10(self.step))) + 1
        return min(self.maximum, max(self.minimum, round(snapped, decimals)))

    def position_of(self, value: float) -> float:
        """0..1 along the track."""
        span = self.maximum - self.minimum
        if span <= 0:
            return 0.0
        if self.log_scale:
            return math.log1p(value - self.minimum) / math.log1p(span)
        return (value - self.minimum) / span

    def value_at(self, position: float) -> float:
        position = min(1.0, max(0.0, position))
        span = self.maximum - self.minimum
        if self.log_scale:
            raw = self.minimum + math.expm1(position * math.log1p(span))
            return self.snap(_two_significant(raw))
        return self.snap(self.minimum + position * span)

    def format_value(self, value: float | None = None) -> str:
        value = self.value if value is None else value
        if self._format is not None:
            return self._format(value)
        if self.integer:
            return str(int(value))
        decimals = max(0, -math.floor(math.log10(self.step) + 1e-9))
        return f"{value:.{decimals}f}"

    # --- actions ---------------------------------------------------------------------------

    def action_nudge(self, direction: int, big: bool = False) -> None:
        if self.log_scale:
            # On a log track a fixed step means nothing at both ends: move along the track.
            delta = (0.1 if big else 0.025) * direction
            new = self.value_at(self.position_of(self.value) + delta)
            if new == self.value:
                new = self.snap(self.value + direction * self.step)
        else:
            new = self.snap(self.value + direction * (self.big_step if big else self.step))
        self._set_by_user(new)

    def action_to_end(self, direction: int) -> None:
        self._set_by_user(self.maximum if direction > 0 else self.minimum)

    def _set_by_user(self, value: float) -> None:
        value = self.snap(value)
        if value != self.value:
            self.value = value
            self.post_message(self.Changed(self, value))

    # --- typing a value --------------------------------------------------------------------

    def on_key(self, event: events.Key) -> None:
        if self.editing is not None:
            if event.key == "enter":
                text, self.editing = self.editing, None
                if text.strip():
                    self.post_message(self.Typed(self, text.strip()))
            elif event.key == "escape":
                self.editing = None
            elif event.key == "backspace":
                self.editing = self.editing[:-1]
            elif event.character and event.character.isprintable():
                self.editing += event.character
            else:
                return
            event.stop()
            event.prevent_default()
        elif event.character and event.character in _STARTS_NUMBER:
            self.editing = event.character
            event.stop()
            event.prevent_default()

    def on_blur(self) -> None:
        if self.editing is not None:
            text, self.editing = self.editing, None
            if text.strip():
                self.post_message(self.Typed(self, text.strip()))

    # --- mouse -----------------------------------------------------------------------------

    def _track_width(self) -> int:
        return max(2, self.content_size.width - VALUE_WIDTH - 1)

    def _set_from_x(self, x: int) -> None:
        self._set_by_user(self.value_at(x / (self._track_width() - 1)))

    def on_mouse_down(self, event: events.MouseDown) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.x >= self._track_width():
            return
        self.focus()
        self._drag = True
        self.capture_mouse()
        self._set_from_x(offset.x)
        event.stop()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._drag:
            self._set_from_x(event.get_content_offset_capture(self).x)
            event.stop()

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._drag:
            self._drag = False
            self.release_mouse()
            event.stop()

    def on_mouse_release(self) -> None:
        self._drag = False

    # --- drawing ---------------------------------------------------------------------------

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 1

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        base = self.rich_style
        if y != 0 or width <= 0:
            return Strip.blank(width, base)
        track = self._track_width()
        style = self.get_component_rich_style
        if self.editing is not None:
            text = (self.editing + "▏")[-(width - 1) :]
            segments = [Segment(text.ljust(width), base + style("slider--editing"))]
            return Strip(segments, width)
        thumb = round(self.position_of(self.value) * (track - 1))
        value = self.format_value().rjust(VALUE_WIDTH)[-VALUE_WIDTH:]
        segments = [
            Segment("━" * thumb, base + style("slider--fill")),
            Segment("●", base + style("slider--thumb")),
            Segment("─" * (track - thumb - 1), base + style("slider--track")),
            Segment(" ", base),
            Segment(value, base + style("slider--value")),
        ]
        return Strip(segments).crop_extend(0, width, base)

    def watch_value(self) -> None:
        self.refresh()

    def watch_editing(self) -> None:
        self.refresh()


def _two_significant(x: float) -> float:
    """Round to two significant digits (1234 -> 1200), so log-track values read as chosen."""
    if x < 10:
        return round(x)
    magnitude = 10 ** (math.floor(math.log10(x)) - 1)
    return round(x / magnitude) * magnitude
