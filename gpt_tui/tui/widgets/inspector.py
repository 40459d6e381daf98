"""The probability inspector: what the model considered at the selected token's step.

The top-k alternatives are shown as bars of their probability (on an absolute scale: a bar across
the whole width is 100%), the chosen token highlighted with its rank; a token chosen from outside
the top-k is added below them. The alternatives are an `OptionList` so that picking one can later
branch the output from that token.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from gpt_tui.display import percent, visible_token
from gpt_tui.engine import FINISH_REASONS, Alternative, TokenEvent

HINT = "Select a generated token (click it, or focus the output and use ←/→) to see what else "
HINT += "the model considered."
_EIGHTHS = " ▏▎▍▌▋▊▉"
MAX_LABEL = 14


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of `fraction` (0..1) of `width` cells, in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    if fraction > 0 and eighths == 0:
        eighths = 1  # a sliver: not zero
    full, part = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[part] if part else "")
    return text.ljust(width)


class TokenInspector(Vertical):
    """The selected token, its probability, rank and entropy, and the alternatives."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "Inspector"
        self.event: TokenEvent | None = None
        self.index: int | None = None
        self.token_text = ""
        self._reveal = False

    def compose(self) -> ComposeResult:
        yield Static(HINT, id="inspector-summary")
        alternatives = OptionList(id="alternatives")
        alternatives.can_focus = False  # nothing to do with an alternative yet: branching will
        yield alternatives

    def show(
        self, event: TokenEvent | None, index: int | None = None, token_text: str | None = None
    ) -> None:
        """Show `event` (token `index` of the output); `token_text` is the token's own text
        (the event's may be cut by a stop string, or empty inside a UTF-8 character)."""
        self.event, self.index = event, index
        self.token_text = token_text if token_text is not None else (event.text if event else "")
        self._render_event()
        if event is not None:
            # In a small terminal the sidebar scrolls: bring the whole inspector into view,
            # now and again once its new height is laid out (that comes as a resize).
            self._reveal = True
            self.call_after_refresh(self._scroll_into_view)

    def on_resize(self) -> None:
        if self.event is not None:
            self._render_event()
        if self._reveal:
            self._reveal = False
            self._scroll_into_view()

    def _scroll_into_view(self) -> None:
        self.scroll_visible(animate=False, top=True)

    def _render_event(self) -> None:
        summary = self.query_one("#inspector-summary", Static)
        alternatives = self.query_one("#alternatives", OptionList)
        event = self.event
        if event is None:
            summary.update(HINT)
            alternatives.clear_options()
            alternatives.display = False
            return
        position = f"  token {self.index + 1}" if self.index is not None else ""
        finish = FINISH_REASONS.get(event.finish_reason or "", event.finish_reason)
        summary.update(
            Content.assemble(
                (f"“{visible_token(self.token_text)}”", "bold"),
                (f"{position}  id {event.token_id}\n", "dim"),
                ("p ", "dim"),
                (percent(event.prob), "bold"),
                ("  rank ", "dim"),
                (str(event.rank), "bold"),
                ("  sampled ", "dim"),
                percent(event.sampled_prob),
                "\n",
                ("entropy ", "dim"),
                (f"{event.entropy:.2f}", "bold"),
                (" nats", "dim"),
                *((("  · last: ", "dim"), (finish, "italic")) if finish else ()),
            )  # fmt: skip
        )
        width = max(20, alternatives.scrollable_content_region.width or self.size.width - 4)
        rows = list(event.top)
        label_width = min(MAX_LABEL, max((len(visible_token(a.text)) for a in rows), default=4))
        options: list[Option | None] = []
        chosen_listed = False
        for rank, alt in enumerate(rows, start=1):
            chosen = alt.token_id == event.token_id
            chosen_listed |= chosen
            options.append(_row(rank, alt, chosen, label_width, width))
        if not chosen_listed:
            options.append(None)  # a separator
            alt = Alternative(event.token_id, self.token_text, event.prob)
            options.append(_row(event.rank, alt, True, label_width, width))
        alternatives.set_options(options)
        alternatives.display = True


def _row(rank: int, alt: Alternative, chosen: bool, label_width: int, width: int) -> Option:
    label = visible_token(alt.text)
    if len(label) > label_width:
        label = label[: label_width - 1] + "…"
    bar_width = max(4, width - label_width - 17)
    style = "bold $accent" if chosen else ""
    content = Content.assemble(
        ("▶" if chosen else " ", style),
        (f"{rank:>3} ", "dim" if not chosen else style),
        (label.ljust(label_width), style),
        " ",
        (bar(alt.prob, bar_width), "$primary" if not chosen else "$accent"),
        (f" {percent(alt.prob):>8}", style),
    )
    return Option(content, id=f"alt-{alt.token_id}")
