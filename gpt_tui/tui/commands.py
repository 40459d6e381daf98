"""The command palette (ctrl+p): every playground action, and a command per catalog model."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from gpt_tui.models.catalog import CATALOG
from gpt_tui.settings import BUILTIN_PRESETS, load_presets


class PaletteHost(Protocol):
    """What the palette asks of the app: typed here, so that commands.py need not import the app
    that imports it."""

    def run_action(self, action: str) -> Any: ...

    def switch_model(self, name: str) -> None: ...

    def load_preset(self, name: str) -> None: ...

    def set_speculative(self, choice: str) -> None: ...

    def speculation_unavailable(self, choice: str) -> str | None: ...


ACTIONS = (
    ("Generate", "generate", "Generate from the prompt (ctrl+j / F5)"),
    ("Stop", "stop", "Stop the generation (escape)"),
    ("Continue", "continue_generation", "Continue the output from where it stopped (ctrl+n)"),
    ("Regenerate", "regenerate", "Replace the last output, reusing the cached prompt (ctrl+r)"),
    ("Switch model…", "pick_model", "Choose a model from the catalog or a path (ctrl+o)"),
    (
        "Toggle colouring",
        "cycle_colouring",
        "Colour tokens: off → probability → rank → surprisal (F2)",
    ),
    ("Toggle chat mode", "toggle_chat", "Switch between completion and chat (F3)"),
    ("Clear output", "clear_output", "Start afresh: clear the output (or the chat)"),
    ("Copy output", "copy_output", "Copy the output text to the clipboard"),
    ("Reset sampling settings", "reset_sampling", "Every slider back to its default"),
    ("Cancel download", "cancel_download", "Stop getting a model ready (resumes next time)"),
    ("Look inside", "look_inside", "Logit lens, attention, logit attribution of the token (l)"),
    (
        "Sampler view",
        "sampler_view",
        "What each sampling stage does to the selected token's step, live (s)",
    ),
    (
        "Add steering vector…",
        "add_steering",
        "Push every run along text A minus text B at a block (interventions)",
    ),
    (
        "Interventions: with and without, side by side",
        "compare_interventions",
        "The prompt with and without them, same seed, side by side (shift+F4)",
    ),
    ("Save sampling preset…", "save_preset", "Keep the sampling settings under a name"),
    (
        "Toggle temperature last",
        "temperature_last",
        "Temperature after the truncations (top-k, top-p, ...), or back in its place",
    ),
    ("Compare side by side", "compare", "2 to 4 samples at once, each with its own settings (F4)"),
    (
        "Save session…",
        "save_session",
        "JSON to reopen (--open), Markdown and a page to share (ctrl+s)",
    ),  # fmt: skip
    ("Open session…", "open_session", "Open a session saved by gpt-tui"),
    ("Next branch", "sibling(1)", "The next branch at the fork above the selected token (])"),
    ("Previous branch", "sibling(-1)", "The previous branch at that fork ([)"),
    ("Fork above", "branch_point(-1)", "Select where the text forks, before the selection ({)"),
    ("Fork below", "branch_point(1)", "Select where the text forks, after the selection (})"),
    ("Help", "help", "The keys (F1)"),
)


SPECULATIVE = (
    ("prompt lookup", "lookup",
     "The same text, faster where it copies: drafts from the prompt and output so far"),
    ("off", "off", "One token per forward pass"),
    ("draft with 124M", "124M",
     "GPT-2 124M drafts for a larger GPT-2 (same tokenizer): the same text, faster"),
)  # fmt: skip


class PlaygroundCommands(Provider):
    """Actions of `GptTuiApp` and `Switch model: NAME` for every catalog model."""

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app = cast(PaletteHost, self.app)
        commands: list[tuple[str, Callable[[], object], str]] = [
            (name, partial(app.run_action, action), help_text)
            for name, action, help_text in ACTIONS
        ]
        for spec in CATALOG:
            commands.append(
                (f"Switch model: {spec.name}", partial(app.switch_model, spec.name),
                 spec.description)
            )  # fmt: skip
        saved, _ = load_presets()
        commands += [
            (f"Load preset: {name}", partial(app.load_preset, name), help_text)
            for name, help_text in [*BUILTIN_PRESETS.items(),
                                    *((n, f"saved: {p.source}") for n, p in sorted(saved.items()))]
        ]  # fmt: skip
        commands += [
            (f"Speculative decoding: {label}", partial(app.set_speculative, choice), help_text)
            for label, choice, help_text in SPECULATIVE
            if app.speculation_unavailable(choice) is None  # only what can work with this model
        ]
        return commands

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
