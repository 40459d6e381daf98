"""The sampler view of a selected token: its step's distribution after every sampling stage.

Nothing is stored per token while generating: the step's logits are computed again when the
view opens, one position over the kv cache (the cache's keys and values up to the token before,
copied under the engine lock, then one decode step), or over a fresh pass of the context when
the cache holds something else (a compare column, a generation under way). Those logits, and
DRY's breaker mask, are kept while the view is open, so a slider move only runs the stages
again (`StepLab.view`). The stages are the engine's own (`sampler_view`): the last column is
exactly the distribution generation draws from at that step, under the settings shown.

From the view a token can be drawn again (`StepLab.resample`: the draw generation would make
there under the settings now) and the step expanded (`expand`): its likeliest alternatives each
continued for a few tokens, as one batched pass, added to the reply's branch tree
(`add_branches`). Pure data, no Textual.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gpt_tui.engine import KVCache, SamplingParams, TokenEvent, generate_batch
from gpt_tui.engine.generate import StopStringHold
from gpt_tui.engine.sampling import (
    SamplerView,
    draw_index,
    draws,
    fresh_seed,
    position_uniform,
    sampler_view,
)
from gpt_tui.engine.sampling.dry import DryBreakers
from gpt_tui.engine.sampling.dry import dry_breakers as breakers_of
from gpt_tui.playground.look_inside_requests import (
    LensRequest,
    column_request,
    main_view_request,
)
from gpt_tui.playground.prompt_tokens import PromptToken
from gpt_tui.playground.transcript import Transcript, Turn

N_ROWS = 10  # the model's likeliest tokens followed through the stages
N_DRAWS = 1_000
N_EXPAND = 4  # alternatives expanded into branches
EXPAND_TOKENS = 20  # tokens each expanded branch is continued for
MAX_EXPAND = 8  # streams of one batched pass (generate_batch's limit)


@dataclass(frozen=True)
class StepRequest:
    """The step that produced a selected token: the context it followed (`lens.ids`, up to
    `lens.position`, the token before it), the token (`lens.target`), how many of the context's
    tokens are the prompt (the rest were generated: presence and frequency count them), and
    where the token is in the reply (None: it does not branch, as a prompt token)."""

    lens: LensRequest
    n_prompt: int
    reply_position: int | None = None

    @property
    def token(self) -> int:
        return self.lens.target

    @property
    def draw_position(self) -> int:
        """The position the token was drawn for (its draw's and XTC's coin come from it)."""
        return self.lens.position + 1

    @property
    def context(self) -> tuple[int, ...]:
        return self.lens.ids


def main_view_step(
    transcript: Transcript,
    selected: int | None,
    prompt_token: PromptToken | None,
    model: Any,
    tokenizer: Any,
    encode_chat: Callable[[list[dict[str, str]]], list[int]],
    cache: KVCache | None = None,
) -> StepRequest:
    """The main view's selection (ValueError, with a message for the user, if none fits)."""
    lens = main_view_request(transcript, selected, prompt_token, model, tokenizer, encode_chat,
                             cache)  # fmt: skip
    if selected is None:
        return StepRequest(lens, n_prompt=len(lens.ids))
    generated = _generated_before(transcript.turns, selected)
    return StepRequest(lens, len(lens.ids) - generated, transcript.reply_position(selected))


def column_step(
    model: Any,
    tokenizer: Any,
    context: Sequence[int],
    events: Sequence[TokenEvent],
    selected: int | None,
    prompt_token: PromptToken | None,
    number: int,
) -> StepRequest:
    """Compare column `number`'s selection (its tokens followed `context`)."""
    lens = column_request(model, tokenizer, context, events, selected, prompt_token, number)
    return StepRequest(lens, n_prompt=min(len(context), len(lens.ids)))


def _generated_before(turns: Sequence[Turn], index: int) -> int:
    """How many tokens of its own reply turn precede output token `index`."""
    start = 0
    for turn in turns:
        if not turn.is_reply:
            continue
        if start <= index < start + len(turn.events):
            return index - start
        start += len(turn.events)
    raise ValueError(f"The output has no token {index + 1}")


# --- the step's logits ---------------------------------------------------------------------------


def step_logits(request: StepRequest, engine_lock: threading.Lock) -> tuple[np.ndarray, bool]:
    """The model's logits [n_vocab] at the step, and whether they came over the kv cache.

    With the engine lock free and the cache holding the context, its keys and values before
    the step's position are copied (tens of milliseconds for a thousand tokens) and the
    position is run over them: one decode step, the app's cache left as it was. Otherwise (a
    generation holds the lock, the cache holds another text) the context is computed afresh.
    """
    lens = request.lens
    model, ids, position = lens.model, list(lens.ids), lens.position
    prefix: KVCache | None = None
    if engine_lock.acquire(blocking=False):
        try:
            cache = lens.cache
            if cache is not None and cache.n_batch == 1 and cache.common_prefix(ids) >= position:
                prefix = _prefix_copy(model, cache, position)
        finally:
            engine_lock.release()
    over_cache = prefix is not None
    if prefix is None:
        prefix = model.new_cache(n_ctx=position + 1)
        if position:
            model.forward(ids[:position], prefix, last_only=True)
    logits = model.forward([ids[position]], prefix, last_only=True)[-1]  # [n_vocab]
    return np.asarray(logits, dtype=np.float32), over_cache


def _prefix_copy(model: Any, cache: KVCache, n: int) -> KVCache:
    """A cache of room n + 1 holding the first n positions of `cache` (a copy)."""
    out = model.new_cache(n_ctx=n + 1)
    out.reserve(n + 1)
    out.k[:, :, :, :n] = cache.k[:, :1, :, :n]
    out.v[:, :, :, :n] = cache.v[:, :1, :, :n]
    out.ids[:, :n] = cache.ids[:1, :n]
    out.length = n
    return out


# --- the view, under any settings ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Drawn:
    """`n` draws from a view's final distribution with `seed`: the count of each token."""

    n: int
    seed: int
    counts: np.ndarray  # [n_vocab] int64


class StepLab:
    """One step's logits, and the sampler view of them under any settings.

    Built once when the view opens (the logits are the costly part); `view` runs the stages
    alone, so a slider move redraws in milliseconds. DRY's breaker mask (a pass over the
    vocabulary's texts) is kept for the breakers it was made for.
    """

    def __init__(self, request: StepRequest, logits: np.ndarray, *, over_cache: bool = False,
                 seconds: float = 0.0) -> None:  # fmt: skip
        self.request = request
        self.logits = logits
        self.over_cache = over_cache
        self.seconds = seconds
        self.tokenizer = request.lens.tokenizer
        self.n_vocab = int(logits.size)
        self._breakers: tuple[tuple[str, ...], DryBreakers] | None = None

    @classmethod
    def open(cls, request: StepRequest, engine_lock: threading.Lock) -> StepLab:
        """Compute the step's logits (see `step_logits`): run off the UI thread."""
        start = time.perf_counter()
        logits, over_cache = step_logits(request, engine_lock)
        return cls(request, logits, over_cache=over_cache, seconds=time.perf_counter() - start)

    def token_text(self, token: int) -> str:
        try:
            return self.tokenizer.token_text(int(token))
        except ValueError:  # an embedding row the tokenizer has no text for
            return f"<{token}>"

    def dry_breakers(self, params: SamplingParams) -> DryBreakers | None:
        if params.dry_multiplier <= 0.0:
            return None
        breakers = params.dry_sequence_breakers
        if self._breakers is None or self._breakers[0] != breakers:
            self._breakers = (breakers, breakers_of(self.tokenizer, self.n_vocab, breakers))
        return self._breakers[1]

    def view(self, params: SamplingParams, k: int = N_ROWS) -> SamplerView:
        """The step under `params`: the model's distribution, then one report per active
        stage, as generation would draw there (XTC's coin from the seed, when there is one)."""
        request = self.request
        return sampler_view(
            self.logits,
            params,
            request.context,
            min(k, self.n_vocab),
            n_prompt=request.n_prompt,
            seed=params.seed,
            position=None if params.seed is None else request.draw_position,
            dry_breakers=self.dry_breakers(params),
        )

    def rows(self, view: SamplerView) -> list[int]:
        """The tokens the view lists: the model's likeliest, then the final distribution's
        likeliest not among them, then the selected token if it is still missing."""
        rows = [int(i) for i in view.top_ids]
        seen = set(rows)
        for i in view.final_top_ids:
            if view.final.probs[i] > 0.0 and int(i) not in seen:
                rows.append(int(i))
                seen.add(int(i))
        if self.request.token not in seen:
            rows.append(self.request.token)
        return rows

    def draws(self, view: SamplerView, n: int, seed: int | None) -> Drawn:
        """n draws from the final distribution, as the sampler draws (a fresh seed if None)."""
        seed = fresh_seed() if seed is None else seed
        return Drawn(n, seed, draws(view.final.probs, n, seed))

    def resample(self, view: SamplerView, seed: int | None) -> tuple[int, float]:
        """The token generation would draw at this step under the view's settings, and its
        probability there: the seed's uniform for this position (a fresh seed if None)."""
        seed = fresh_seed() if seed is None else seed
        probs = view.final.probs
        kept = np.flatnonzero(probs > 0.0)
        u = position_uniform(seed, self.request.draw_position)
        i = draw_index(probs[kept], u) if kept.size > 1 else 0
        token = int(kept[i])
        return token, float(probs[token])

    def alternatives(self, view: SamplerView, n: int = N_EXPAND) -> list[int]:
        """The final distribution's n likeliest possible tokens, the one taken left out."""
        order = np.argsort(-view.final.probs, kind="stable")
        out: list[int] = []
        for i in order[: n + 1]:
            if view.final.probs[i] <= 0.0 or len(out) == n:
                break
            if int(i) != self.request.token:
                out.append(int(i))
        return out


# --- expanding the step into branches ------------------------------------------------------------


def expand(
    request: StepRequest,
    tokens: Sequence[int],
    params: SamplingParams,
    engine_lock: threading.Lock,
    *,
    n_tokens: int = EXPAND_TOKENS,
    n_top: int = 10,
    cancelled: Callable[[], bool] = lambda: False,
) -> list[list[TokenEvent]]:
    """Each of `tokens` taken at the step and continued for `n_tokens` more under `params`,
    all in one batched pass (the engine's `generate_batch`, as compare's columns are). Returns
    each branch's events, numbered as tokens of the reply. Runs under the engine lock, reusing
    the app's cache for the context (it is left holding the context).

    Banned strings cannot rewind one stream of a batch (they share one cache length), so a
    branch is cut where a banned string begins in it instead, its last event's finish reason
    "banned": the text never shows one, but the branch ends there (`BANNED_IN_EXPAND`)."""
    if not 1 <= len(tokens) <= MAX_EXPAND:
        raise ValueError(f"expand takes 1 to {MAX_EXPAND} tokens, not {len(tokens)}")
    lens = request.lens
    settings = params.replace(max_tokens=n_tokens + 1, banned_strings=())
    offset = request.reply_position or 0
    out: list[list[TokenEvent]] = [[] for _ in tokens]
    with engine_lock:
        streams = [settings] * len(tokens)
        events = generate_batch(lens.model, lens.tokenizer, list(lens.ids), streams, n_top=n_top,
                                first_tokens=tokens, cache=lens.cache)  # fmt: skip
        try:
            for stream, event in events:
                out[stream].append(replace(event, index=event.index + offset))
                if cancelled():
                    break
        finally:
            events.close()
    if params.banned_strings:
        out = [cut_at_banned(branch, params.banned_strings) for branch in out]
    return out


BANNED_IN_EXPAND = (
    "banned strings: expand decodes its branches together and cannot rewind one, so a branch "
    "is cut where a banned string begins"
)


def cut_at_banned(events: Sequence[TokenEvent], banned: tuple[str, ...]) -> list[TokenEvent]:
    """`events` up to where a banned string (in any case, as generation matches them) begins in
    their text (the token it begins in cut there, finish reason "banned"), or all of them."""
    hold = StopStringHold(any_case=True)
    out: list[TokenEvent] = []
    for event in events:
        ready, hit = hold.push(event, banned)
        out += ready
        if hit:
            out[-1] = replace(out[-1], finish_reason="banned")
            return out
    return out + hold.pending


def add_branches(transcript: Transcript, position: int, branches: Sequence[Sequence[TokenEvent]]
                 ) -> list[int]:  # fmt: skip
    """Add each branch (its events from reply token `position` on) to the reply's tree, below
    the token before `position` on the branch shown; returns each branch's first node. The
    branch shown stays as it is."""
    tree, parent = transcript.fork_point(position)
    firsts: list[int] = []
    for events in branches:
        node = parent
        for n, event in enumerate(events):
            node = tree.add(node, event)
            if n == 0:
                firsts.append(node)
    tree.select(tree.current)  # the way down stays the branch shown
    return firsts
