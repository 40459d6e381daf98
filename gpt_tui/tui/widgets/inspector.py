"""The probability inspector: what the model considered at the selected token's step.

The top-k alternatives are shown as bars of their probability (on an absolute scale: a bar across
the whole width is 100%), the chosen token highlighted with its rank; a token chosen from outside
the top-k is added below them. The alternatives are an `OptionList`: picking one (enter or a
click) posts `AlternativePicked`, and the app branches the output there.
"""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from gpt_tui.backends.base import Capabilities
from gpt_tui.display import percent, visible_token
from gpt_tui.engine import FINISH_REASONS, Alternative, TokenEvent
from gpt_tui.playground.prompt_tokens import PromptToken

HINT = "Select a token of the prompt or the output (click it, or focus the output and use ←/→) "
HINT += "to see what else the model considered."
LOOK_INSIDE_KEY = "l look inside · s sampler view"
COLUMN_KEYS = "l look inside the model"  # a compare column: no sampler view there yet
_EIGHTHS = " ▏▎▍▌▋▊▉"
MAX_LABEL = 14
COMPACT_BELOW = 26  # cells: narrower inspectors list alternatives as "label percent"


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

    DEFAULT_CSS = """
        TokenInspector {
            height: auto;
            border: round $panel-lighten-2;
            border-title-color: $text-muted;
            padding: 0 1;
        }
        TokenInspector #inspector-summary {
            height: auto;
        }
        TokenInspector #alternatives {
            height: auto;
            max-height: 24;
            border: none;
            padding: 0;
            margin-top: 1;
            background: transparent;
        }
        TokenInspector.-short #alternatives {
            max-height: 8;
        }
        TokenInspector #inspector-keys {
            height: 1;
            color: $text-muted;
            text-style: italic;
        }
    """

    class AlternativePicked(Message):
        """The user picked `alternative` of `event`, token `index` of the output: branch there."""

        def __init__(
            self, inspector: TokenInspector, index: int, event: TokenEvent, alternative: Alternative
        ) -> None:
            super().__init__()
            self.inspector = inspector
            self.index = index
            self.event = event
            self.alternative = alternative

        @property
        def control(self) -> TokenInspector:
            return self.inspector

    def __init__(self, *, branchable: bool = True, **kwargs) -> None:
        """`branchable` False: the alternatives are shown only, not picked (a compare column)."""
        super().__init__(**kwargs)
        self.branchable = branchable
        self.border_title = "Inspector"
        self.event: TokenEvent | None = None
        self.index: int | None = None
        self.token_text = ""
        self.prompt_token: PromptToken | None = None  # shown instead of `event` when set
        self.capabilities = Capabilities()  # what the model's backend knows of its figures
        self._reveal = False

    def compose(self) -> ComposeResult:
        yield Static(HINT, id="inspector-summary")
        alternatives = OptionList(id="alternatives")
        alternatives.can_focus = self.branchable
        yield alternatives
        keys = Static(LOOK_INSIDE_KEY if self.branchable else COLUMN_KEYS, id="inspector-keys")
        keys.display = False  # until a token with a prediction is shown
        yield keys

    def show(
        self, event: TokenEvent | None, index: int | None = None, token_text: str | None = None
    ) -> None:
        """Show `event` (token `index` of the output); `token_text` is the token's own text
        (the event's may be cut by a stop string, or empty inside a UTF-8 character)."""
        self.event, self.index = event, index
        self.prompt_token = None
        self.token_text = token_text if token_text is not None else (event.text if event else "")
        self._render_event()
        if event is not None:
            # In a small terminal the sidebar scrolls: bring the whole inspector into view,
            # now and again once its new height is laid out (that comes as a resize).
            self._reveal = True
            self.call_after_refresh(self._scroll_into_view)

    def highlight_alternative(self, rank: int | None = None) -> bool:
        """Focus the alternatives with the `rank`-th highlighted (None: the chosen token), so
        that enter picks it; False when there is no such alternative."""
        alternatives = self.query_one("#alternatives", OptionList)
        if self.event is None or not alternatives.option_count or not self.branchable:
            return False
        if rank is None:
            ids = [f"alt-{a.token_id}" for a in self.event.top]
            chosen = f"alt-{self.event.token_id}"
            row = ids.index(chosen) if chosen in ids else 0
        elif 1 <= rank <= len(self.event.top):
            row = rank - 1
        else:
            return False
        alternatives.focus()
        alternatives.highlighted = row
        return True

    def on_option_list_option_selected(self, message: OptionList.OptionSelected) -> None:
        message.stop()
        if not self.branchable or self.event is None or self.index is None:
            return
        if message.option_id is None:
            return
        token_id = int(message.option_id.removeprefix("alt-"))
        alternative = next((a for a in self.event.top if a.token_id == token_id), None)
        if alternative is not None:  # None: the chosen token's own row, below the top-k
            self.post_message(self.AlternativePicked(self, self.index, self.event, alternative))

    def show_prompt_token(self, token: PromptToken, index: int, token_text: str) -> None:
        """Show prompt token `token` (`index` among the prompt's tokens drawn): what the model
        expected there when it read the prompt. Nothing to branch on: `event` is None."""
        self.event, self.index = None, index
        self.prompt_token = token
        self.token_text = token_text
        self._render_event()
        self._reveal = True
        self.call_after_refresh(self._scroll_into_view)

    def on_resize(self) -> None:
        if self.event is not None or self.prompt_token is not None:
            self._render_event()
        if self._reveal:
            self._reveal = False
            self._scroll_into_view()

    def _scroll_into_view(self) -> None:
        self.scroll_visible(animate=False, top=True)

    def _render_event(self) -> None:
        keys = self.query_one("#inspector-keys", Static)
        prompt = self.prompt_token
        keys.display = self.event is not None or (prompt is not None and prompt.position > 0)
        summary = self.query_one("#inspector-summary", Static)
        alternatives = self.query_one("#alternatives", OptionList)
        event = self.event
        if self.prompt_token is not None:
            self._render_prompt_token(self.prompt_token, summary, alternatives)
            return
        if event is None:
            summary.update(HINT)
            alternatives.clear_options()
            alternatives.display = False
            return
        position = [_dim(f"token {self.index + 1}")] if self.index is not None else []
        finish = FINISH_REASONS.get(event.finish_reason or "", event.finish_reason)
        rank = self._rank_text(event.rank, len(event.top))
        summary.update(
            _packed(
                [
                    [self._token_label(), *position, _dim(f"id {event.token_id}")],
                    [_field("p", percent(event.prob)), _field("rank", rank),
                     *self._sampled(event.sampled_prob)],
                    [_field("entropy", self._entropy_text(event.entropy), "nats"),
                     *([Content.assemble(("· last: ", "dim"), (finish, "italic"))] if finish
                       else [])],
                    *([[_rewound(event)]] if event.rewinds else []),
                ],
                self._summary_width(summary),
            )
        )  # fmt: skip
        width = max(10, alternatives.scrollable_content_region.width or self.size.width - 4)
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
            rank_shown = self._rank_text(event.rank, len(event.top))
            options.append(_row(rank_shown, alt, True, label_width, width))
        alternatives.set_options(options)
        alternatives.display = True

    def _rank_text(self, rank: int, n_listed: int) -> str:
        if rank <= 0:
            return "?"  # a server that reported no probabilities
        if not self.capabilities.exact_ranks and rank > n_listed:
            return f">{n_listed}"  # beyond the alternatives the server listed
        return str(rank)

    def _entropy_text(self, entropy: float) -> str:
        if math.isnan(entropy):
            return "?"
        # A server's entropy is a lower bound, from the alternatives it lists.
        return f"{entropy:.2f}" if self.capabilities.entropy else f"≥{entropy:.2f}"

    def _sampled(self, sampled_prob: float) -> list[Content]:
        if not math.isnan(sampled_prob):
            return [Content.assemble(("sampled ", "dim"), percent(sampled_prob))]
        if not self.capabilities.sampled_prob:
            return []  # a server says nothing of its sampling distribution
        return [Content.styled("picked by you", "italic")]  # a branch: not drawn, no odds

    def _token_label(self) -> Content:
        return Content.styled(f"“{visible_token(self.token_text)}”", "bold")

    def _summary_width(self, summary: Static) -> int:
        """The cells a line of the summary has (none known yet: no wrapping)."""
        return summary.size.width or max(0, self.size.width - 4) or 10_000

    def _render_prompt_token(
        self, token: PromptToken, summary: Static, alternatives: OptionList
    ) -> None:
        head = [
            self._token_label(),
            _dim(f"prompt token {token.position + 1}"),
            _dim(f"id {token.token_id}"),
        ]
        width = self._summary_width(summary)
        score = token.score
        if score is None:
            why = "nothing precedes it" if token.position == 0 else "outside the context window"
            no = Content.assemble(("no prediction: ", "italic"), why)
            summary.update(_packed([head, [no]], width))
            alternatives.clear_options()
            alternatives.display = False
            return
        summary.update(
            _packed(
                [
                    head,
                    [_field("p", percent(score.prob)), _field("rank", str(score.rank)),
                     _dim(score.bucket)],
                    [_field("log p", f"{score.logprob:.3f}", "nats"),
                     _field("surprisal", f"{score.surprisal_bits:.2f}", "bits")],
                    [_field("entropy", self._entropy_text(score.entropy), "nats"),
                     _dim("· expected here:")],
                ],
                width,
            )
        )  # fmt: skip
        width = max(10, alternatives.scrollable_content_region.width or self.size.width - 4)
        rows = list(score.top)
        label_width = min(MAX_LABEL, max((len(visible_token(a.text)) for a in rows), default=4))
        options: list[Option | None] = [
            _row(rank, alt, alt.token_id == token.token_id, label_width, width)
            for rank, alt in enumerate(rows, start=1)
        ]
        if all(alt.token_id != token.token_id for alt in rows):
            options.append(None)  # a separator, then the token itself at its rank
            alt = Alternative(token.token_id, self.token_text, score.prob)
            rank_shown = self._rank_text(score.rank, len(score.top))
            options.append(_row(rank_shown, alt, True, label_width, width))
        alternatives.set_options(options)
        alternatives.display = True


def _rewound(event: TokenEvent) -> Content:
    """Banned strings made the run go back here: how often, and the text last undone."""
    times = "once" if event.rewinds == 1 else f"{event.rewinds} times"
    return Content.assemble((f"rewound {times} here, undoing ", "dim"),
                            (visible_token(event.rewound), "strike dim"))  # fmt: skip


def _dim(text: str) -> Content:
    return Content.styled(text, "dim")


def _field(name: str, value: str, unit: str = "") -> Content:
    """A figure as the summary shows it: its name dim, its value bold, then its unit."""
    return Content.assemble((f"{name} ", "dim"), (value, "bold"), *([(f" {unit}", "dim")] if unit
                            else []))  # fmt: skip


def _packed(lines: list[list[Content]], width: int) -> Content:
    """The summary's lines, fields two spaces apart; a field that would run past `width` starts
    a line of its own, so that no figure is split across lines in a narrow sidebar."""
    out: list[Content] = []
    for n, fields in enumerate(lines):
        if n:
            out.append(Content("\n"))
        used = 0
        for field in fields:
            if used and used + 2 + field.cell_length > width:
                out.append(Content("\n"))
                used = 0
            elif used:
                out.append(Content("  "))
                used += 2
            out.append(field)
            used += field.cell_length
    return Content.assemble(*out)


def _row(rank: int | str, alt: Alternative, chosen: bool, label_width: int, width: int) -> Option:
    style = "bold $accent" if chosen else ""
    if width < COMPACT_BELOW:  # a narrow column (4 compare columns at 80 wide): no rank, no bar
        share = percent(alt.prob)
        label = visible_token(alt.text)[: max(1, width - len(share) - 3)]
        return Option(
            Content.assemble(("▶" if chosen else " ", style), (label, style), (f" {share}", style)),
            id=f"alt-{alt.token_id}",
        )
    # The label and then the bar give way so that a row stays one line: marker, rank and
    # percentage take 15 cells, 2 are margin.
    room = max(0, width - 17)
    label_width = max(3, min(label_width, room - 4))
    bar_width = max(0, room - label_width)
    label = visible_token(alt.text)
    if len(label) > label_width:
        label = label[: label_width - 1] + "…"
    content = Content.assemble(
        ("▶" if chosen else " ", style),
        (f"{rank:>3} ", "dim" if not chosen else style),
        (label.ljust(label_width), style),
        " ",
        (bar(alt.prob, bar_width) if bar_width else "", "$primary" if not chosen else "$accent"),
        (f" {percent(alt.prob):>8}", style),
    )
    return Option(content, id=f"alt-{alt.token_id}")
