"""The keys, in one place (F1)."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.keys import key_to_character
from textual.screen import ModalScreen
from textual.widgets import Markdown

from gpt_tui.engine.scoring import SCORING_RULE

WIDGET_KEYS_TEMPLATE = """
### In the output
- **← / →** select the previous / next token; **↑ / ↓** the token above / below
- **home / end** the first / last token; **click** a token to select it
- **enter** or **1-9** (a token of the reply selected): choose another token in the inspector

### Branching (the loom)
- in the inspector's list: **↑ / ↓** or **1-9**, then **enter** (or a **click**): the reply is
  rewritten from that token with it, and generation goes on from there; the old text is kept
- **[ / ]** (alt+← / alt+→) the previous / next branch at the fork above the selected token
- **{ / }** (alt+↑ / alt+↓) select the fork before / after the selected token
- the **Branches** box lists the forks of the text shown: **click** a row (or **enter**) to go
  there. Regenerating adds a branch; continuing lengthens the one shown. In chat, the latest
  reply branches
- **ctrl+s** saves everything (every branch, with its probabilities) to reopen with
  `gpt-tui --open FILE`, and next to it a Markdown copy and a page to share (`.html`: tokens
  coloured, their alternatives on hover)

### On a slider
- **← / →** a step down / up; with **shift** a bigger step; **home / end** the ends
- type a number, then **enter**: an exact value (**escape** cancels)
- **click** or **drag** the track

### Comparing side by side (F4)
- **F5 / ctrl+j** run every column at once; **escape** stops them (when idle: back)
- **+ / -** add a column / remove the focused one (2 to 4); **1-4** focus a column's output
- each column's **temp, top-p, top-k, seed**: type a value, **enter** applies it
  (also mid-run, from the next token); other settings come from the main panel

### Looking inside (l)
- on a selected token (prompt or output, in a compare column too): the logit lens, attention and
  logit attribution of the step that predicted it, and patching; **1 / 2 / 3 / 4** switch tabs,
  **escape** goes back
- lens: **a** the rows after each attention; **◀** marks the layer from which the token stays
  the top prediction
- attention: **↑ / ↓** the block, **← / →** mean, max or one head, **f** hide the first token
- attribution: **h** each head, **v** the difference to one of the inspector's alternatives;
  **x** ablates the head, attention or MLP under the cursor in every run that follows (again:
  no longer), **m** sets it to its mean over the text instead; the view traces again at once
- patching: type **CORRUPT** (as many tokens as the text examined), **enter** runs the sweep
  (heat maps of blocks x positions and blocks x heads); **escape** stops it

### Interventions
- the list above the sampling panel (while any is active): **delete** removes the entry
- the palette's **Add steering vector…**: text A minus text B at a block, times a coefficient
- **shift+F4** the prompt with and without the interventions, the same seed, side by side

### The sampler view (s)
- on a selected token: the step's whole distribution after each sampler, in the order they run;
  **moving a slider** redraws it for the new settings; **d** 1,000 draws, **r** draw this token
  again (a new branch), **e** continue the likeliest alternatives as branches, **t** temperature
  last; **escape** goes back

### The numbers
- the prompt's scores (its tokens' colours, the inspector, the status line's **prompt ppl**)
  follow the rule of `gpt-tui score` and of transformers' perplexity guide: {rule}

### Elsewhere
- **tab / shift+tab** move between the prompt, the output, the sliders and the inputs
- **ctrl+p** the command palette: every action, and switching to any model
- **ctrl+q** quit (a generation or a download in progress is stopped first)
"""
WIDGET_KEYS = WIDGET_KEYS_TEMPLATE.replace("{rule}", SCORING_RULE)


def key_label(key: str) -> str:
    return " / ".join(_key_name(k.strip()) for k in key.split(","))


def _key_name(key: str) -> str:
    """A key as printed on it: "[" rather than Textual's "left_square_bracket"."""
    character = key_to_character(key)
    return character if character and character.isprintable() else key.replace("escape", "esc")


def help_markdown(bindings: Iterable[Binding]) -> str:
    lines = ["## Keys", ""]
    for b in bindings:
        if b.description:
            lines.append(f"- **{key_label(b.key)}** {b.tooltip or b.description}")
    return "\n".join(lines) + "\n" + WIDGET_KEYS


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
        HelpScreen {
            align: center middle;
        }
        HelpScreen #help {
            width: 84;
            max-width: 95%;
            height: 90%;
            border: thick $accent;
            background: $surface;
            padding: 0 1;
        }
    """
    BINDINGS = [Binding("escape,f1,q", "dismiss(None)", "Close")]

    def __init__(self, bindings: Iterable[Binding]) -> None:
        super().__init__()
        self.markdown = help_markdown(bindings)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help") as box:
            box.border_title = "Help · escape closes"
            yield Markdown(self.markdown)
