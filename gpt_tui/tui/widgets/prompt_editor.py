"""The prompt: Textual's TextArea (paste, undo, selection) and a line counting its tokens.

The count is the editor's own business: it is measured off the UI thread (a long prompt takes a
while to encode) with the counter the playground core gives it (`count_with`), debounced while the
user types, and announced with `Counted` so the status line can show the same context.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static, TextArea

from gpt_tui.engine.generate import window_keep
from gpt_tui.playground.core import PromptCount

COUNT_DELAY = 0.15  # seconds of quiet typing before the prompt's tokens are counted
Counter = Callable[[str], PromptCount]
# Not a sample prompt ("Once upon a time…" in grey read as text that would be sent).
PROMPT_PLACEHOLDER = "Your prompt, e.g. Once upon a time (empty: from nothing)"


class PromptEditor(Vertical):
    """The editor and its token count."""

    DEFAULT_CSS = """
    PromptEditor {
        height: auto;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    PromptEditor:focus-within {
        border: round $accent;
        border-title-color: $accent;
    }
    PromptEditor #prompt {
        height: auto;
        min-height: 3;
        max-height: 25vh;
        background: transparent;
    }
    PromptEditor #prompt-info {
        height: 1;
        color: $text-muted;
    }
    """

    class Counted(Message):
        """The text in the editor counted (only the latest edit's count reaches the parent)."""

        def __init__(self, count: PromptCount, version: int) -> None:
            super().__init__()
            self.count = count
            self.version = version

    def __init__(self, text: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._initial = text
        self.border_title = "Prompt"
        self._chat = False
        self._counter: Counter | None = None
        self._count_version = 0
        self._count_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield TextArea(
            self._initial,
            id="prompt",
            soft_wrap=True,
            tab_behavior="focus",
            placeholder=PROMPT_PLACEHOLDER,
            compact=True,
        )
        yield Static("", id="prompt-info")

    @property
    def _text_area(self) -> TextArea:
        return self.query_one("#prompt", TextArea)

    @property
    def text(self) -> str:
        return self._text_area.text

    def load_text(self, text: str) -> None:
        self._text_area.load_text(text)

    def clear(self) -> None:
        self._text_area.clear()

    def focus_text(self) -> None:
        """Put the cursor in the editor."""
        self._text_area.focus()

    def set_chat(self, chat: bool) -> None:
        self._chat = chat
        self.border_title = "Message" if chat else "Prompt"
        self._text_area.placeholder = "Ask something…" if chat else PROMPT_PLACEHOLDER

    # --- the token count --------------------------------------------------------------------

    def count_with(self, counter: Counter | None) -> None:
        """Count the text again, now and after each edit, with `counter` (None: no model)."""
        self._counter = counter
        self._schedule_count()

    @on(TextArea.Changed, "#prompt")
    def _text_changed(self) -> None:
        self._schedule_count()

    def _schedule_count(self) -> None:
        if self._count_timer is not None:
            self._count_timer.stop()
        self._count_timer = self.set_timer(COUNT_DELAY, self._count)

    def _count(self) -> None:
        self._count_timer = None
        if not self.is_attached:  # a timer that fired while the app shuts down
            return
        self._count_version += 1
        if self._counter is None:
            self._show_count(None)
            return
        self._count_worker(self._count_version, self.text, self._counter)

    @work(thread=True, exclusive=True, group="count", exit_on_error=False)
    def _count_worker(self, version: int, text: str, counter: Counter) -> None:
        self.post_message(self.Counted(counter(text), version))

    def on_prompt_editor_counted(self, message: Counted) -> None:
        if message.version != self._count_version:
            message.stop()  # an edit since, or a new model: a newer count is on its way
            return
        self._show_count(message.count)

    def _show_count(self, count: PromptCount | None) -> None:
        """In the line under the text: its tokens, or a warning when the context the next
        generation starts from (in chat: the whole conversation) is too long."""
        info = self.query_one("#prompt-info", Static)
        if count is None:
            info.update(Content.styled("no model loaded", "$text-muted"))
            return
        n_context, n_ctx = count.n_context, count.n_ctx
        if n_context >= n_ctx:
            dropped = n_context - window_keep(n_ctx)
            info.update(
                Content.styled(
                    f"{n_context} tokens: longer than the {n_ctx}-token context; the first "
                    f"{dropped} will be dropped",
                    "$warning",
                )
            )
        else:
            # Only the box's own tokens: the status line shows the context, one count of it.
            what = "message " if self._chat else ""
            info.update(Content.styled(f"{what}{count.n_prompt} tokens", "$text-muted"))
