"""A session as one self-contained HTML page to share (ctrl+s writes it beside the Markdown;
`gpt-tui export SESSION.json --html`).

The page needs no network and no JavaScript to be read: every token is a span coloured as the
app colours it (`token_colours`, the app's own function, so the two cannot drift) with its figures
and alternatives in its `title`, and the colouring switch is radio buttons and CSS. Its small
script adds the rest: a token's alternatives drawn as bars when it is hovered or clicked.

Text reaches the page only through Jinja2's autoescaping (tokens can be `<script>`), and the data
for the script as JSON inside a `<script type="application/json">`, with `<`, `>` and `&`
escaped so that no token can close that element.
"""

from __future__ import annotations

import dataclasses
import json
import math
from functools import lru_cache
from typing import Any

from gpt_tui import __version__
from gpt_tui.display import percent, visible_token
from gpt_tui.engine.sampling import SamplingParams
from gpt_tui.playground.session import Session
from gpt_tui.playground.token_colours import (
    LEGEND_TITLES,
    MODE_LABELS,
    MODES,
    legend_stops,
    surprisal_bits,
    token_colours,
)

# The page opens coloured by probability (the app starts uncoloured; a shared page is for the
# colours), and offers no "off": the text is also written out plainly under Branches.
DEFAULT_MODE = "probability"
COLOUR_MODES = tuple(mode for mode in MODES if mode != "off")


@lru_cache(maxsize=1)
def _template() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined  # only needed to write a page

    env = Environment(
        loader=PackageLoader("gpt_tui.playground", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["script_json"] = _script_json
    return env.get_template("session_page.html.j2")


def session_page(session: Session) -> str:
    """The whole page: prompt, the current branch's tokens, every branch, settings and model."""
    tree = session.tree
    # A server's ranks beyond the alternatives it listed are guesses (see the app's OutputView).
    exact_ranks = "vocabulary" not in session.extra
    tokens = [_token(event, exact_ranks) for event in tree.events()]
    lead, prompt_tokens = _prompt_tokens(session, exact_ranks)
    current = tree.path()
    branches = [
        {"text": session.prompt + tree.text(leaf), "n": len(tree.events(leaf)),
         "current": leaf in current}
        for leaf in tree.leaves()
        if len(tree.nodes) > 1
    ]  # fmt: skip
    return _template().render(
        version=__version__,
        model=session.model,
        prompt=session.prompt,
        lead=lead,
        prompt_tokens=prompt_tokens,
        tokens=tokens,
        branches=branches,
        settings=_settings(session.sampling),
        modes=[(mode, MODE_LABELS[mode]) for mode in COLOUR_MODES],
        default_mode=DEFAULT_MODE,
        legends=[(mode, LEGEND_TITLES[mode], legend_stops(mode)) for mode in COLOUR_MODES],
        # The script's data for each span, in order: the prompt's tokens, then the output's.
        data=[
            {k: t[k] for k in ("shown", "figures", "alternatives")} for t in prompt_tokens + tokens
        ],
    )


def _prompt_tokens(session: Session, exact_ranks: bool) -> tuple[str, list[dict[str, Any]]]:
    """The prompt as the plain text before its first scored token, and its scored tokens (the
    first token has no score: nothing predicted it). A prompt whose scores are not its text
    (a chat's, scored through its template) is all plain text."""
    scored = "".join(score.text for score in session.prompt_scores)
    if not scored or not session.prompt.endswith(scored):
        return session.prompt, []
    lead = session.prompt[: len(session.prompt) - len(scored)]
    return lead, [_token(score, exact_ranks) for score in session.prompt_scores]


def _token(event: Any, exact_ranks: bool) -> dict[str, Any]:
    known = exact_ranks or event.rank <= len(event.top)
    bits = surprisal_bits(event.prob) if not math.isnan(event.prob) else math.nan
    figures = f"p {percent(event.prob)} · rank {event.rank if known else f'>{len(event.top)}'}"
    if math.isfinite(bits):
        figures += f" · {bits:.2f} bits"
    alternatives = [
        {"text": visible_token(a.text), "prob": a.prob if math.isfinite(a.prob) else None,
         "chosen": a.token_id == event.token_id}
        for a in event.top
    ]  # fmt: skip
    listed = "\n".join(f"{percent(a.prob):>7}  {visible_token(a.text)}" for a in event.top)
    colours = {mode: token_colours(mode, event.prob, event.rank, known) for mode in COLOUR_MODES}
    return {
        "text": event.text,
        "shown": visible_token(event.text),
        "title": f"{visible_token(event.text)}\n{figures}" + (f"\n\n{listed}" if listed else ""),
        "figures": figures,
        "alternatives": alternatives,
        # One CSS variable pair per mode: the page's CSS picks the pair the switch asks for.
        "style": "".join(
            f"--{mode[0]}-fg:{c[0]};--{mode[0]}-bg:{c[1]};"
            for mode, c in colours.items()
            if c is not None
        ),
    }


def _settings(params: SamplingParams) -> list[tuple[str, str, bool]]:
    """Each sampling setting: its name, its value, and whether it differs from the default."""
    default = SamplingParams()
    return [
        (
            f.name,
            _value(getattr(params, f.name)),
            getattr(params, f.name) != getattr(default, f.name),
        )
        for f in dataclasses.fields(params)
    ]


def _value(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ", ".join(repr(v) for v in value) or "none"
    return "none" if value is None else str(value)


def _script_json(value: Any) -> Any:
    """JSON that can stand inside <script>: no token can close it or open a comment."""
    from markupsafe import Markup  # Jinja2's own string type for text it must not escape again

    text = json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)
