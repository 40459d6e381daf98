"""The prompt: Textual's TextArea (paste, undo, selection) and a line counting its tokens."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static, TextArea

from gpt_tui.engine.generate import window_keep


class PromptEditor(Vertical):
    """The editor and its token count; the count is measured off the UI thread by the app."""

    def __init__(self, text: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._initial = text
        self.border_title = "Prompt"

    def compose(self) -> ComposeResult:
        yield TextArea(
            self._initial,
            id="prompt",
            soft_wrap=True,
            tab_behavior="focus",
            placeholder="Once upon a time…",
            compact=True,
        )
        yield Static("", id="prompt-info")

    @property
    def text_area(self) -> TextArea:
        return self.query_one("#prompt", TextArea)

    @property
    def text(self) -> str:
        return self.text_area.text

    def set_chat(self, chat: bool) -> None:
        self.border_title = "Message" if chat else "Prompt"
        self.text_area.placeholder = "Ask something…" if chat else "Once upon a time…"

    def show_count(self, n_prompt: int | None, n_context: int, n_ctx: int, chat: bool) -> None:
        """`n_prompt` tokens in the editor; the next generation starts from `n_context` of the
        model's `n_ctx` (in chat: the whole conversation so far; None: no model to count with)."""
        info = self.query_one("#prompt-info", Static)
        if n_prompt is None:
            info.update(Content.styled("no model loaded", "$text-muted"))
        elif n_context >= n_ctx:
            dropped = n_context - window_keep(n_ctx)
            info.update(
                Content.styled(
                    f"{n_context} tokens: longer than the {n_ctx}-token context; the first "
                    f"{dropped} will be dropped",
                    "$warning",
                )
            )
        else:
            what = "message " if chat else ""
            info.update(
                Content.styled(
                    f"{what}{n_prompt} tokens · context {n_context}/{n_ctx}", "$text-muted"
                )
            )
