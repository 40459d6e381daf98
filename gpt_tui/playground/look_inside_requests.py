"""Which prediction "Look inside" examines for a selected token, and over which context.

A selected token is examined at the step that predicted it: position N is the token before
it, the target is the token itself, and its alternatives (what the inspector lists) are the
tokens it can be compared against. The context is the ids the model read: for the reply, what
it follows plus its tokens so far; for a prompt token, the prompt up to it; for an earlier
assistant turn of a chat, the chat rendered up to that turn plus its tokens. Pure data, no
Textual (the app and the compare screen build requests; a worker runs them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gpt_tui.engine import Alternative, KVCache, TokenEvent
from gpt_tui.engine.hooked import Interventions, with_interventions
from gpt_tui.playground.look_inside import LensReport, look_inside
from gpt_tui.playground.prompt_tokens import PromptToken
from gpt_tui.playground.transcript import Transcript

MAX_ALTERNATIVES = 9
NOTHING_SELECTED = "Select a token first (click it, or ←/→ in the output), then look inside"


@dataclass(frozen=True)
class LensRequest:
    """Trace `position` of `ids` and follow `target`; `cache` (read under the engine lock)
    may already hold the ids, else the worker computes them afresh. Under `interventions` the
    model runs with them, over a fresh pass (a kept cache may hold another set's keys)."""

    model: Any
    tokenizer: Any
    ids: tuple[int, ...]  # the context, up to and including `position`
    position: int
    target: int
    alternatives: tuple[int, ...]  # tokens to compare the target against, likeliest first
    where: str  # what the selection is, for the screen's title: "output token 7"
    cache: KVCache | None = None
    interventions: Interventions | None = None


def _alternatives(top: Sequence[Alternative], target: int) -> tuple[int, ...]:
    return tuple(a.token_id for a in top if a.token_id != target)[:MAX_ALTERNATIVES]


def event_request(
    model: Any,
    tokenizer: Any,
    prefix: Sequence[int],
    events: Sequence[TokenEvent],
    k: int,
    where: str,
    cache: KVCache | None = None,
) -> LensRequest:
    """Generated token `k` of `events`, which followed `prefix`."""
    event = events[k]
    ids = [*prefix, *(e.token_id for e in events[:k])]
    if not ids:
        raise ValueError("Nothing precedes this token: there is no prediction to look inside")
    return LensRequest(model, tokenizer, tuple(ids), len(ids) - 1, event.token_id,
                       _alternatives(event.top, event.token_id), where, cache)  # fmt: skip


def prompt_request(
    model: Any,
    tokenizer: Any,
    prefix: Sequence[int],
    token: PromptToken,
    where: str,
    cache: KVCache | None = None,
) -> LensRequest:
    """Prompt token `token`, at its position in `prefix` (the ids the reply follows)."""
    if token.position == 0:
        raise ValueError("Nothing precedes the first token: there is no prediction to look inside")
    top = token.score.top if token.score is not None else ()
    ids = tuple(prefix[: token.position])
    return LensRequest(model, tokenizer, ids, len(ids) - 1, token.token_id,
                       _alternatives(top, token.token_id), where, cache)  # fmt: skip


def reply_token_request(
    transcript: Transcript,
    index: int,
    model: Any,
    tokenizer: Any,
    encode_chat: Callable[[list[dict[str, str]]], list[int]],
    cache: KVCache | None = None,
) -> LensRequest:
    """Token `index` of the main view's output (every reply turn's tokens, in order).

    ValueError, with a message for the user, when the token's context cannot be rebuilt with
    this model: the transcript's tokens came from another one.
    """
    if transcript.tokenizer is not tokenizer:
        raise ValueError("These tokens come from another model: generate again to look inside")
    start = 0
    for t, turn in enumerate(transcript.turns):
        if not turn.is_reply or not start <= index < start + len(turn.events):
            start += len(turn.events) if turn.is_reply else 0
            continue
        k = index - start
        where = f"output token {index + 1}"
        if turn is transcript.reply:
            return event_request(model, tokenizer, transcript.reply_prefix, turn.events, k,
                                 where, cache)  # fmt: skip
        return event_request(model, tokenizer, _before_turn(transcript, t, tokenizer, encode_chat),
                             turn.events, k, where)  # fmt: skip
    raise ValueError(f"The output has no token {index + 1}")


def main_view_request(
    transcript: Transcript,
    selected: int | None,
    prompt_token: PromptToken | None,
    model: Any,
    tokenizer: Any,
    encode_chat: Callable[[list[dict[str, str]]], list[int]],
    cache: KVCache | None = None,
) -> LensRequest:
    """The main view's selection: output token `selected`, else `prompt_token`."""
    if selected is not None:
        return reply_token_request(transcript, selected, model, tokenizer, encode_chat, cache)
    if prompt_token is None:
        raise ValueError(NOTHING_SELECTED)
    if transcript.tokenizer is not tokenizer:
        raise ValueError("This prompt was read by another model: generate again to look inside")
    where = f"prompt token {prompt_token.position + 1}"
    return prompt_request(model, tokenizer, transcript.reply_prefix, prompt_token, where, cache)


def column_request(
    model: Any,
    tokenizer: Any,
    context: Sequence[int],
    events: Sequence[TokenEvent],
    selected: int | None,
    prompt_token: PromptToken | None,
    number: int,
) -> LensRequest:
    """Compare column `number`'s selection; its tokens followed `context` (in caches of the
    compare run's own, gone by now: the worker computes the context afresh)."""
    if selected is not None:
        where = f"column {number}, token {selected + 1}"
        return event_request(model, tokenizer, context, events, selected, where)
    if prompt_token is None:
        raise ValueError(NOTHING_SELECTED)
    where = f"column {number}, prompt token {prompt_token.position + 1}"
    return prompt_request(model, tokenizer, context, prompt_token, where)


def _before_turn(
    transcript: Transcript,
    t: int,
    tokenizer: Any,
    encode_chat: Callable[[list[dict[str, str]]], list[int]],
) -> list[int]:
    """The ids an earlier assistant turn `t` of a chat followed: the chat up to it, rendered."""
    turns = transcript.turns
    turn = turns[t]
    if transcript.mode != "chat" or t == 0 or turns[t - 1].role == "assistant":
        raise ValueError("This earlier output was generated by another model: its context is gone")
    decoded = tokenizer.decode(turn.token_ids)
    if not decoded.startswith("".join(e.text for e in turn.events).rstrip("\ufffd")):
        raise ValueError("This reply was generated by another model: look inside needs its own")
    return encode_chat(transcript.messages(turns[:t]))


def run_request(request: LensRequest, engine_lock: threading.Lock) -> tuple[LensReport, bool]:
    """The report, and whether it was traced over the request's cache (else over a fresh pass).

    With the engine lock free, it is taken: no generation writes the cache meanwhile, so the
    cache is read. A generation in progress holds the lock: the context is then computed
    alongside it, in a cache of its own (the two share the cores as the kernel plan says; a
    product that finds the helper threads busy computes on its own core).
    """
    ids = list(request.ids)
    if request.interventions:
        return _look(request, None), False
    if not engine_lock.acquire(blocking=False):
        return _look(request, None), False
    try:
        cache = request.cache
        held = cache is not None and cache.common_prefix(ids) == len(ids)
        return _look(request, cache if held else None), held
    finally:
        engine_lock.release()


def _look(request: LensRequest, cache: KVCache | None) -> LensReport:
    model = with_interventions(request.model, request.interventions, request.ids)
    return look_inside(model, request.tokenizer, request.ids, request.position,
                       request.target, request.alternatives, cache=cache)  # fmt: skip
