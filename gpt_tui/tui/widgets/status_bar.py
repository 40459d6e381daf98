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
    "rewinds": ("stopped: too many rewinds (banned strings)", "$warning"),
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
    # The interventions every run is under ("ablated L1 H2, L2 MLP"); "" for none.
    interventions: reactive[str] = reactive("")
    # What loading is doing, when it says more than "loading" (not `loading`: Textual's own).
    loading_text: reactive[str] = reactive("")

    def on_resize(self) -> None:
        self.refresh()  # which fields fit depends on the width

    def render(self) -> Content:
        """The fields that fit the width, in their places; the most important are placed first
        (`_fields`' ranks: the model, the state and a note; then the context, the prompt's
        perplexity, the mode, the speed, tokens per pass, the time to the first token), and a
        less important one still shows if it fits where a longer one did not."""
        sep = (" │ ", "$text-muted")
        fields = self._fields()
        width = self.size.width or 10_000
        lengths = [Content.assemble(*parts).cell_length for _, parts in fields]
        kept: set[int] = set()
        used = 0
        for i in sorted(range(len(fields)), key=lambda i: fields[i][0]):
            extra = lengths[i] + (3 if kept else 0)
            if fields[i][0] == 0 or used + extra <= width:  # (the first two always show)
                kept.add(i)
                used += extra
        parts: list[str | tuple[str, str]] = []
        for i in sorted(kept):
            parts += [sep, *fields[i][1]] if parts else fields[i][1]
        return Content.assemble(*parts)

    def _fields(self) -> list[tuple[int, list[str | tuple[str, str]]]]:
        """(rank, parts) of each field in the order shown; the higher the rank, the sooner it
        gives way in a narrow terminal."""
        text, colour = STATES.get(self.state, (self.state, "$text"))
        if self.state == "loading" and self.loading_text:
            text = self.loading_text
        shown = self.backend or self.model or "no model"
        fields: list[tuple[int, list[str | tuple[str, str]]]] = [
            (0, [(f" {shown} ", "bold")]),
            (0, [(text, colour)]),
        ]
        stats = self.stats
        if stats is not None and stats.n_tokens:
            rate = stats.tokens_per_second
            fields.append((5, [f"{rate:.1f} tok/s" if rate is not None else "– tok/s"]))
            if stats.tokens_per_pass is not None and stats.drafts_held is not None:
                held = f"{stats.drafts_held:.0%} held"
                fields.append((6, [f"{stats.tokens_per_pass:.1f} tok/pass · {held}"]))
            if stats.ttft is not None:
                fields.append((8, [f"TTFT {stats.ttft:.2f} s"]))
            if stats.rewinds:  # banned strings: draws undone and taken again without them
                s = "" if stats.rewinds == 1 else "s"
                fields.append((3, [(f"{stats.rewinds} rewind{s} (banned strings)", "$warning")]))
        if self.prompt_score is not None:
            perplexity, bits = self.prompt_score
            ppl = f"{perplexity:.1f}" if perplexity < 1000 else f"{perplexity:.0f}"
            fields.append((3, [f"prompt ppl {ppl} · {bits:.1f} bits/tok"]))
        if self.context is not None:
            used, n_ctx = self.context
            style = "$warning" if used >= n_ctx else ""
            fields.append((2, [(f"ctx {used}/{n_ctx}", style)]))
        fields.append((4, [self.mode]))
        if self.note:
            fields.append((1, [(self.note, "$warning")]))
        if self.interventions:
            fields.append((1, [(self.interventions, "$accent")]))
        return fields
