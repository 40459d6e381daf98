"""Where the prompt's tokens are in the text the output view draws, with their scores.

The view draws what the user wrote (a prompt, chat messages); the model read token ids
(`Transcript.reply_prefix`: in chat mode the whole chat rendered through its template, with role
markers the view does not show). To draw the prompt as tokens, each turn's text is found in the
decoded ids and cut where the tokens are cut. A token that straddles the edge of a turn's text
(a template joining a message to its markup) stays plain text, unless what lies outside is only
spaces: the selectable tokens are the message's own.
Pure data, no Textual.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpt_tui.engine import TokenScore
from gpt_tui.playground.transcript import Transcript

SCORED_ROLES = ("prompt", "user", "system")


@dataclass(frozen=True, slots=True)
class PromptToken:
    """One token the reply follows; `score` is None for the first (nothing predicts it), or
    one not scored yet (the prefill is still running)."""

    position: int  # index in `Transcript.reply_prefix`
    token_id: int
    score: TokenScore | None


@dataclass(frozen=True, slots=True)
class Span:
    """A piece of a turn's text: one whole token, or text not tied to one (token None)."""

    text: str
    token: PromptToken | None = None


def prompt_spans(transcript: Transcript) -> dict[int, list[Span]]:
    """Spans covering the text of each prompt, user or system turn (by turn index) whose text
    the reply's context contains; a turn left out is drawn as plain text."""
    tokenizer = transcript.tokenizer
    ids = transcript.reply_prefix
    if tokenizer is None or not ids or not hasattr(tokenizer, "stream_decoder"):
        return {}
    decoder = tokenizer.stream_decoder()
    pieces = [decoder.push(i) for i in ids]
    pieces[-1] += decoder.flush()
    starts = []
    offset = 0
    for piece in pieces:
        starts.append(offset)
        offset += len(piece)
    rendered = "".join(pieces)
    scores = {s.position: s for s in transcript.prompt_scores}
    tokens = [PromptToken(p, i, scores.get(p)) for p, i in enumerate(ids)]

    spans: dict[int, list[Span]] = {}
    cursor = 0  # turns appear in the context in order
    for index, turn in enumerate(transcript.turns):
        text = turn.content
        if not text:
            continue
        found = _find(rendered, text, cursor)
        if found is None:
            continue
        begin, end, lo, hi = found
        cursor = end
        if turn.role not in SCORED_ROLES:
            continue
        out = [Span(text[:lo])] if lo else []
        for k, (start, piece) in enumerate(zip(starts, pieces, strict=True)):
            stop = start + len(piece)
            if stop <= begin or start >= end or not piece:
                continue
            # A token reaching into the markup only by spaces (" Hi" after "User:") is still
            # the message's: its text is drawn without them.
            whole = (start >= begin or rendered[start:begin].isspace()) and (
                stop <= end or rendered[end:stop].isspace()
            )
            cut = rendered[max(start, begin) : min(stop, end)]
            out.append(Span(cut, tokens[k] if whole else None))
        if hi < len(text):
            out.append(Span(text[hi:]))
        spans[index] = out
    return spans


def _find(rendered: str, text: str, cursor: int) -> tuple[int, int, int, int] | None:
    """Where `text` is in `rendered` from `cursor` on: (begin, end) in `rendered`, and the part
    of `text` that matched, (lo, hi) (a template may strip a message's surrounding spaces)."""
    at = rendered.find(text, cursor)
    if at >= 0:
        return at, at + len(text), 0, len(text)
    stripped = text.strip()
    at = rendered.find(stripped, cursor) if stripped else -1
    if at < 0:
        return None
    lo = len(text) - len(text.lstrip())
    return at, at + len(stripped), lo, lo + len(stripped)
