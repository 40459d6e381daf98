"""The output: the prompt (or the chat so far) and the model's tokens, each one selectable.

A Line API widget: the text is kept as pieces (one per token, plus prompt and chat labels),
word-wrapped incrementally by `WrappedText`, and only the visible lines are drawn. Tokens carry
their index in the style's meta, so a click needs no geometry; the keyboard moves the selection
(←/→ by token, ↑/↓ by line). Selecting posts `TokenSelected` for the inspector.

Once the prompt (or a chat's messages) has been read by the model, it is drawn as tokens too, with
their scores (`prompt_tokens`): coloured like the output and selectable in document order, one
selection across prompt and output. A selected prompt token posts `PromptTokenSelected`.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Offset, Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from gpt_tui.engine import TokenEvent
from gpt_tui.playground.prompt_tokens import PromptToken, Span, prompt_spans
from gpt_tui.playground.transcript import Transcript
from gpt_tui.tui.colouring import token_style
from gpt_tui.tui.text import display_text
from gpt_tui.tui.wrap import WrappedText

PLACEHOLDER = "Write a prompt above and press ctrl+j (or F5) to generate."


@dataclass(slots=True)
class Piece:
    text: str
    # "prompt", "user", "role", "plain", "token", "prompt-token", "user-token" or "rewound" (text
    # a banned string made the run undo: shown struck through, never part of the document)
    kind: str
    token: int = -1  # index into OutputView.events for tokens, .prompt_tokens for prompt tokens


# Pieces the selection moves through; a prompt token is drawn in its turn's style underneath.
SELECTABLE = ("token", "prompt-token", "user-token")
PROMPT_TOKEN_KINDS = {"prompt": "prompt-token", "user": "user-token"}


class OutputView(ScrollView, can_focus=True):
    """The document, with every generated token selectable and optionally coloured."""

    DEFAULT_CSS = """
        OutputView {
            height: 1fr;
            border: round $panel-lighten-2;
            border-title-color: $text-muted;
            padding: 0 1;
            scrollbar-gutter: stable;
            scrollbar-size-vertical: 1;
            overflow-x: hidden;
        }
        OutputView:focus {
            border: round $accent;
            border-title-color: $accent;
        }
        OutputView > .output-view--prompt {
            color: $text-muted;
        }
        OutputView > .output-view--user {
            color: $text;
        }
        OutputView > .output-view--role {
            color: $accent;
            text-style: bold;
        }
        OutputView > .output-view--selected {
            text-style: reverse bold;
        }
        OutputView > .output-view--placeholder {
            color: $text-muted;
            text-style: italic;
        }
        OutputView > .output-view--rewound {
            color: $text-disabled;
            text-style: strike;
        }
    """

    BINDINGS = [
        Binding("left", "select_step(-1)", "Previous token", show=False),
        Binding("right", "select_step(1)", "Next token", show=False),
        Binding("up", "select_line(-1)", "Token above", show=False),
        Binding("down", "select_line(1)", "Token below", show=False),
        Binding("home", "select_edge(-1)", "First token", show=False),
        Binding("end", "select_edge(1)", "Last token", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
    ]

    COMPONENT_CLASSES = {
        "output-view--prompt",
        "output-view--user",
        "output-view--role",
        "output-view--selected",
        "output-view--placeholder",
        "output-view--rewound",
    }

    selected: reactive[int | None] = reactive(None, init=False)
    selected_prompt: reactive[int | None] = reactive(None, init=False)  # into .prompt_tokens
    colouring: reactive[str] = reactive("off", init=False)

    class TokenSelected(Message):
        """Token `index` (None: no token) is selected; `event` says what the model thought."""

        def __init__(self, view: OutputView, index: int | None, event: TokenEvent | None) -> None:
            super().__init__()
            self.view = view
            self.index = index
            self.event = event

        @property
        def control(self) -> OutputView:
            return self.view

    class PromptTokenSelected(Message):
        """Prompt token `index` (in `OutputView.prompt_tokens`) is selected."""

        def __init__(self, view: OutputView, index: int, token: PromptToken) -> None:
            super().__init__()
            self.view = view
            self.index = index
            self.token = token

        @property
        def control(self) -> OutputView:
            return self.view

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.events: list[TokenEvent] = []
        self.exact_ranks = True  # False: a rank past the alternatives listed only says "> n"
        self._pieces: list[Piece] = []
        self._token_pieces: list[int] = []  # piece index of each token
        self.prompt_tokens: list[PromptToken] = []
        self._prompt_pieces: list[int] = []  # piece index of each prompt token
        self._selectable: list[int] = []  # piece indices of SELECTABLE pieces, in order
        self._layout = WrappedText(80)
        self._styles: dict[str, Style] = {}
        self.placeholder = PLACEHOLDER

    @property
    def token_count(self) -> int:
        return len(self.events)

    @property
    def text(self) -> str:
        """The document as written (text undone for banned strings left out)."""
        return "".join(p.text for p in self._pieces if p.kind != "rewound")

    # --- content ---------------------------------------------------------------------------

    def show_transcript(self, transcript: Transcript, assistant: str = "Assistant") -> None:
        """Draw `transcript` from scratch (new document, regenerate, mode or model change)."""
        self.events = []
        self._pieces = []
        self._token_pieces = []
        self.prompt_tokens = []
        self._prompt_pieces = []
        self._selectable = []
        self._layout.clear()
        spans = prompt_spans(transcript)
        previous = None
        for i, turn in enumerate(transcript.turns):
            if turn.role == "prompt":
                self._add_prompt(spans.get(i), turn.text, "prompt")
            elif turn.role in ("user", "system"):
                label = "You" if turn.role == "user" else "System"
                lead = "\n\n" if self._pieces and not self.text.endswith("\n\n") else ""
                self._add_pieces([Piece(f"{lead}{label}\n", "role")])
                self._add_prompt(spans.get(i), turn.text, "user")
                self._add_pieces([Piece("\n\n", "user")])
            elif turn.role == "assistant" and (previous is None or previous.role != "assistant"):
                self._add_pieces([Piece(f"{assistant}\n", "role")])
            if turn.is_reply:
                self._add_events(turn.events)
            previous = turn
        self.selected = None
        self.selected_prompt = None
        self.post_message(self.TokenSelected(self, None, None))
        self._update_size()
        self.scroll_end(animate=False, immediate=True)
        self.refresh()

    def add_tokens(self, new_events: list[TokenEvent]) -> None:
        """Append tokens of the reply being generated; the view follows the end if it was
        there already (a user who scrolled up to read stays where they are)."""
        if not new_events:
            return
        at_end = self.scroll_y >= self.max_scroll_y - 1
        first_changed = self._layout.line_count - 1  # appending re-wraps only the last line
        self._add_events(new_events)
        self._update_size()
        if at_end and self.max_scroll_y != self.scroll_y:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)  # repaints all
        else:
            # Redrawing only the changed lines keeps a refresh cheap however long the text.
            self.refresh_lines(first_changed, self._layout.line_count - first_changed)

    def _add_events(self, new_events: list[TokenEvent]) -> None:
        pieces = []
        for event in new_events:
            if event.rewound:  # where a banned string made the run go back: what was undone
                pieces.append(Piece(_rewound_text(event), "rewound"))
            self._token_pieces.append(len(self._pieces) + len(pieces))
            pieces.append(Piece(display_text(event.text), "token", len(self.events)))
            self.events.append(event)
        self._add_pieces(pieces)

    def _add_prompt(self, spans: list[Span] | None, text: str, kind: str) -> None:
        """A prompt or user turn: as tokens where `spans` has them, else as one piece."""
        if spans is None:
            self._add_pieces([Piece(display_text(text), kind)])
            return
        pieces = []
        for span in spans:
            if span.token is None:
                pieces.append(Piece(display_text(span.text), kind))
                continue
            self._prompt_pieces.append(len(self._pieces) + len(pieces))
            pieces.append(Piece(display_text(span.text), PROMPT_TOKEN_KINDS[kind],
                                len(self.prompt_tokens)))  # fmt: skip
            self.prompt_tokens.append(span.token)
        self._add_pieces(pieces)

    def _add_pieces(self, pieces: list[Piece]) -> None:
        first = len(self._pieces)
        self._selectable += [first + i for i, p in enumerate(pieces) if p.kind in SELECTABLE]
        self._pieces.extend(pieces)
        self._layout.extend([p.text for p in pieces])

    def _update_size(self) -> None:
        self.virtual_size = Size(self._layout.width, self._layout.line_count)

    def on_resize(self) -> None:
        width = max(1, self.scrollable_content_region.width)
        if width != self._layout.width:
            self._layout.set_width(width)
            self._update_size()
            piece = self._selected_piece()
            if piece is not None:
                self._scroll_to_piece(piece)

    # --- selection -------------------------------------------------------------------------

    def select(self, index: int | None) -> None:
        if index is not None:
            index = max(0, min(len(self.events) - 1, index)) if self.events else None
        if index is not None:
            self.selected_prompt = None
        self.selected = index

    def select_prompt(self, index: int) -> None:
        """Select prompt token `index` (of `prompt_tokens`)."""
        if not self.prompt_tokens:
            return
        self.selected = None
        self.selected_prompt = max(0, min(len(self.prompt_tokens) - 1, index))

    def _select_piece(self, piece: int) -> None:
        p = self._pieces[piece]
        if p.kind == "token":
            self.select(p.token)
        else:
            self.select_prompt(p.token)

    def _selected_piece(self) -> int | None:
        if self.selected is not None:
            return self._token_pieces[self.selected]
        if self.selected_prompt is not None:
            return self._prompt_pieces[self.selected_prompt]
        return None

    def watch_selected(self, index: int | None) -> None:
        event = self.events[index] if index is not None else None
        if index is not None:
            self._scroll_to_token(index)
        self.post_message(self.TokenSelected(self, index, event))
        self.refresh()

    def watch_selected_prompt(self, index: int | None) -> None:
        if index is not None:
            self._scroll_to_piece(self._prompt_pieces[index])
            self.post_message(self.PromptTokenSelected(self, index, self.prompt_tokens[index]))
        self.refresh()

    def watch_colouring(self) -> None:
        self.refresh()

    def action_select_step(self, step: int) -> None:
        """The previous/next token in the document, prompt and output alike."""
        if not self._selectable:
            return
        current = self._selected_piece()
        if current is None:
            k = len(self._selectable) - 1 if step < 0 else 0
        else:
            k = bisect_left(self._selectable, current) + step
            k = max(0, min(len(self._selectable) - 1, k))
        self._select_piece(self._selectable[k])

    def action_select_edge(self, direction: int) -> None:
        if self._selectable:
            self._select_piece(self._selectable[-1 if direction > 0 else 0])
        else:
            self.scroll_end() if direction > 0 else self.scroll_home()

    def action_select_line(self, direction: int) -> None:
        """The token on the next line above/below nearest to the selected one's column."""
        current = self._selected_piece()
        if current is None:
            self.scroll_relative(y=direction, animate=False)
            return
        line, frag = self._layout.fragment_of(current)
        x = frag.x if frag is not None else 0
        y = line + direction
        while 0 <= y < self._layout.line_count:
            best = None
            for f in self._layout.lines[y]:
                if self._pieces[f.piece].kind in SELECTABLE:
                    distance = abs(f.x - x)
                    if best is None or distance < best[0]:
                        best = (distance, f.piece)
            if best is not None:
                self._select_piece(best[1])
                return
            y += direction

    def on_click(self, event: events.Click) -> None:
        token = event.style.meta.get("token")
        prompt_token = event.style.meta.get("prompt_token")
        if token is not None:
            self.focus()
            self.select(token)
        elif prompt_token is not None:
            self.focus()
            self.select_prompt(prompt_token)

    def token_offset(self, index: int) -> Offset | None:
        """Where token `index` is drawn, relative to the widget (None: scrolled out of view)."""
        return self._piece_offset(self._token_pieces[index])

    def prompt_token_offset(self, index: int) -> Offset | None:
        """Where prompt token `index` is drawn (None: scrolled out of view)."""
        return self._piece_offset(self._prompt_pieces[index])

    def _piece_offset(self, piece: int) -> Offset | None:
        line, frag = self._layout.fragment_of(piece)
        if frag is None:
            return None
        region = self.content_region.translate(-self.region.offset)
        x, y = region.x + frag.x, region.y + line - self.scroll_offset.y
        return Offset(x, y) if region.contains(x, y) else None

    def _scroll_to_token(self, index: int) -> None:
        self._scroll_to_piece(self._token_pieces[index])

    def _scroll_to_piece(self, piece: int) -> None:
        line, frag = self._layout.fragment_of(piece)
        x = frag.x if frag is not None else 0
        self.scroll_to_region(Region(x, line, 1, 1), animate=False, immediate=True)

    # --- drawing ---------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()

    def _style(self, name: str) -> Style:
        """The widget's base style ("base") or a component class's, cached until CSS changes:
        looking them up costs more than drawing a line."""
        style = self._styles.get(name)
        if style is None:
            style = self.rich_style if name == "base" else self.get_component_rich_style(name)
            self._styles[name] = style
        return style

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self._style("base")
        if not self._pieces:
            lines = _wrap_words(self.placeholder, width)  # whole, in a narrow terminal too
            if y < len(lines):
                style = base + self._style("output-view--placeholder")
                return Strip([Segment(lines[y], style)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        line_no = scroll_y + y
        if line_no >= self._layout.line_count:
            return Strip.blank(width, base)
        segments = []
        for frag in self._layout.lines[line_no]:
            piece = self._pieces[frag.piece]
            text = piece.text[frag.start : frag.end]
            segments.append(Segment(text, base + self._style_of(piece)))
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, base)

    def _style_of(self, piece: Piece) -> Style:
        if piece.kind in ("prompt-token", "user-token"):
            return self._prompt_token_style(piece)
        if piece.kind != "token":
            if piece.kind == "plain":
                return Style()
            return self._style(f"output-view--{piece.kind}")
        event = self.events[piece.token]
        known = self.exact_ranks or event.rank <= len(event.top)
        style = token_style(self.colouring, event.prob, event.rank, known) or Style()
        if piece.token == self.selected:
            style += self._style("output-view--selected")
        return style + Style.from_meta({"token": piece.token})

    def _prompt_token_style(self, piece: Piece) -> Style:
        """Its turn's style, coloured by its score (the first token has none: left plain)."""
        style = self._style("output-view--prompt" if piece.kind == "prompt-token" else
                            "output-view--user")  # fmt: skip
        score = self.prompt_tokens[piece.token].score
        if score is not None:
            known = self.exact_ranks or score.rank <= len(score.top)
            style += token_style(self.colouring, score.prob, score.rank, known) or Style()
        if piece.token == self.selected_prompt:
            style += self._style("output-view--selected")
        return style + Style.from_meta({"prompt_token": piece.token})


def _rewound_text(event: TokenEvent) -> str:
    """The text last undone at a token, struck through before it; "⟲N " first when it was
    undone N > 1 times there (only the last undone text is kept)."""
    times = f"⟲{event.rewinds} " if event.rewinds > 1 else "⟲"
    return times + display_text(event.rewound)


def _wrap_words(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` cells, broken between words."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]
