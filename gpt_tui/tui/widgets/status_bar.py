"""One line at the bottom: model, state, speed, time to first token, context used, mode."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from gpt_tui.playground.streaming import RunStats

STATES = {
    "idle": ("ready", "$text-muted"),
    "no-model": ("no model: ctrl+o picks one", "$warning"),
    "loading": ("loading model…", "$warning"),
    "generating": ("generating…", "$success"),
    "length": ("stopped: max tokens", "$text-muted"),
    "eos": ("stopped: end of text", "$text-muted"),
    "stop": ("stopped: stop string", "$text-muted"),
    "user": ("stopped by you", "$text-muted"),
    "error": ("failed", "$error"),
}


class StatusBar(Widget):
    """What the playground is doing, and how fast."""

    DEFAULT_CSS = """
        StatusBar {
            height: 1;
            background: $panel;
        }
    """

    model: reactive[str] = reactive("")
    # A server's kind, model and what it cannot do (the probe's findings); "" for the engine.
    backend: reactive[str] = reactive("")
    state: reactive[str] = reactive("idle")
    stats: reactive[RunStats | None] = reactive(None)
    context: reactive[tuple[int, int] | None] = reactive(None)  # (used, n_ctx)
    mode: reactive[str] = reactive("completion")
    # The prompt's perplexity and mean surprisal in bits per token, once a run has scored it.
    prompt_score: reactive[tuple[float, float] | None] = reactive(None)
    note: reactive[str] = reactive("")  # e.g. the window slid past the prompt's start

    def render(self) -> Content:
        text, colour = STATES.get(self.state, (self.state, "$text"))
        shown = self.backend or self.model or "no model"
        parts: list[str | tuple[str, str]] = [(f" {shown} ", "bold")]
        sep = (" │ ", "$text-muted")
        parts += [sep, (text, colour)]
        stats = self.stats
        if stats is not None and stats.n_tokens:
            rate = stats.tokens_per_second
            parts += [sep, f"{rate:.1f} tok/s" if rate is not None else "– tok/s"]
            if stats.tokens_per_pass is not None and stats.drafts_held is not None:
                held = f"{stats.drafts_held:.0%} held"
                parts += [sep, f"{stats.tokens_per_pass:.1f} tok/pass · {held}"]
            if stats.ttft is not None:
                parts += [sep, f"TTFT {stats.ttft:.2f} s"]
        if self.prompt_score is not None:
            perplexity, bits = self.prompt_score
            ppl = f"{perplexity:.1f}" if perplexity < 1000 else f"{perplexity:.0f}"
            parts += [sep, f"prompt ppl {ppl} · {bits:.1f} bits/tok"]
        if self.context is not None:
            used, n_ctx = self.context
            style = "$warning" if used >= n_ctx else ""
            parts += [sep, (f"ctx {used}/{n_ctx}", style)]
        parts += [sep, self.mode]
        if self.note:
            parts += [sep, (self.note, "$warning")]
        return Content.assemble(*parts)
