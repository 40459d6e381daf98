"""prompt -> an iterator of `TokenEvent`, one per new token, with what the model thought of it.

The loop: prefill the prompt (reusing whatever prefix the cache already holds), then repeatedly
sample a token, describe it (probability, rank, entropy, top alternatives), yield it, and feed it
back. Closing the iterator stops the work at the next token: that is how a UI cancels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from gpt_tui.engine.kv_cache import KVCache
from gpt_tui.engine.layers import log_softmax
from gpt_tui.engine.sampling import Sampler, SamplingParams, top_indices

if TYPE_CHECKING:
    from gpt_tui.tokenizer import Tokenizer

FINISH_REASONS = {"length": "max tokens", "eos": "end of text", "stop": "stop string"}


class LanguageModel(Protocol):
    n_vocab: int
    n_ctx: int

    def new_cache(self, n_batch: int = 1, n_ctx: int | None = None) -> KVCache: ...

    def forward(
        self,
        ids: Sequence[int] | np.ndarray,
        cache: KVCache | None = None,
        *,
        last_only: bool = False,
    ) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Alternative:
    """A token the model considered at a step, with its probability under the model."""

    token_id: int
    text: str
    prob: float


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One generated token and what the model thought of it.

    `prob`, `logprob`, `rank` (1 = the likeliest), `entropy` (nats) and `top` describe the model's
    own distribution at this step; `sampled_prob` is the token's probability under the final
    sampling distribution (after penalties, temperature, top-k/p, min-p). `text` is the piece of
    output this token completes: "" while a UTF-8 character is still incomplete, cut short where a
    stop string begins. `dropped` counts tokens the context window slid past before this step.
    `finish_reason` is set on the last event: "length", "eos" or "stop".
    """

    index: int
    token_id: int
    text: str
    prob: float
    logprob: float
    sampled_prob: float
    rank: int
    entropy: float
    top: tuple[Alternative, ...]
    position: int
    dropped: int = 0
    finish_reason: str | None = None


def window_keep(n_ctx: int) -> int:
    """Tokens kept when the window slides: a quarter of the context is freed at once, so the cost
    of rebuilding the cache is paid once per n_ctx/4 tokens, not at every step."""
    return max(1, n_ctx - n_ctx // 4)


def prepare_prompt(
    tokenizer: Tokenizer, prompt: str | Sequence[int], n_ctx: int, allowed_special: str = "none"
) -> tuple[list[int], int]:
    """Prompt ids that fit the context, and how many leading tokens had to be dropped.

    An empty prompt starts from the beginning-of-text token: unconditional generation.
    """
    ids = tokenizer.encode(prompt, allowed_special) if isinstance(prompt, str) else list(prompt)
    if not ids:
        if tokenizer.bos_id is None:
            raise ValueError("the prompt is empty and this model has no beginning-of-text token")
        ids = [tokenizer.bos_id]
    if len(ids) < n_ctx:
        return ids, 0
    keep = window_keep(n_ctx)
    return ids[-keep:], len(ids) - keep


def prefill(model: LanguageModel, cache: KVCache, ids: list[int]) -> np.ndarray:
    """Logits [n_vocab] after `ids`, computing only what the cache does not already hold."""
    keep = min(cache.common_prefix(ids), len(ids) - 1)  # the last token must run for its logits
    cache.truncate(keep)
    return model.forward(ids[keep:], cache, last_only=True)[-1]


def generate(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompt: str | Sequence[int],
    params: SamplingParams | Callable[[], SamplingParams],
    *,
    cache: KVCache | None = None,
    n_top: int = 10,
    allowed_special: str = "none",
) -> Iterator[TokenEvent]:
    """Yield a `TokenEvent` per new token until max_tokens, end-of-text or a stop string.

    `params` may be a callable returning the current settings: it is read before every token, so
    a change (a slider moved mid-generation) applies from the next token. Pass a `cache` to reuse
    its longest common prefix with the prompt (continue, regenerate) and to keep it afterwards.
    """
    current = params if callable(params) else (lambda: params)
    first = current()
    ids, dropped = prepare_prompt(tokenizer, prompt, model.n_ctx, allowed_special)
    start = len(ids) + dropped
    cache = cache if cache is not None else model.new_cache()
    logits = prefill(model, cache, ids)  # [n_vocab]
    sampler = Sampler(model.n_vocab, ids, first.seed)
    decoder = tokenizer.stream_decoder()
    held = StopStringHold()
    eos_ids = set(tokenizer.eos_ids)

    index = 0
    while True:
        settings = current()
        token, sampled_prob = sampler.sample(logits, settings)
        if token in eos_ids:
            finish, text = "eos", decoder.flush()
        elif index + 1 >= settings.max_tokens:
            finish, text = "length", decoder.push(token) + decoder.flush()
        else:
            finish, text = None, decoder.push(token)
        event = describe(logits, token, sampled_prob, tokenizer, n_top)
        event = dataclasses.replace(
            event, index=index, text=text, position=start + index, dropped=dropped,
            finish_reason=finish,
        )  # fmt: skip
        ready, stopped = held.push(event, settings.stop)
        yield from ready
        if finish or stopped:
            return

        sampler.observe(token)
        dropped = 0
        if cache.length >= model.n_ctx:
            context = cache.tokens()[-(window_keep(model.n_ctx) - 1) :] + [token]
            dropped = cache.length + 1 - len(context)
            cache.truncate(0)
            logits = model.forward(context, cache, last_only=True)[-1]
        else:
            logits = model.forward([token], cache, last_only=True)[-1]
        index += 1


def describe(
    logits: np.ndarray, token: int, sampled_prob: float, tokenizer: Tokenizer, n_top: int
) -> TokenEvent:
    """The model's view of one step: the token's probability, rank and the top alternatives."""
    logp = log_softmax(logits.astype(np.float64))  # [n_vocab]
    probs = np.exp(logp)  # [n_vocab]
    top = top_indices(logits, n_top) if n_top > 0 else np.empty(0, dtype=np.int64)
    return TokenEvent(
        index=0,
        token_id=token,
        text="",
        prob=float(probs[token]),
        logprob=float(logp[token]),
        sampled_prob=sampled_prob,
        rank=1 + int(np.count_nonzero(logits > logits[token])),
        entropy=float(-np.sum(probs * logp)),
        top=tuple(Alternative(int(i), tokenizer.token_text(int(i)), float(probs[i])) for i in top),
        position=0,
    )


class StopStringHold:
    """Holds back events while their text could still be the beginning of a stop string.

    Text is released only once no stop string can start inside it; when one completes, the
    events before it are released, the one it starts in is cut where it starts and marked
    "stop", and the tokens that completed it are never shown.
    """

    def __init__(self) -> None:
        self.pending: list[TokenEvent] = []

    def push(self, event: TokenEvent, stops: tuple[str, ...]) -> tuple[list[TokenEvent], bool]:
        """Returns (events ready to show, whether a stop string ended the generation)."""
        self.pending.append(event)
        if not stops:
            return self._release(len(self.pending)), False
        text = "".join(e.text for e in self.pending)
        hits = [i for i in (text.find(s) for s in stops) if i >= 0]
        if hits:
            return self._cut_at(min(hits)), True
        if event.finish_reason:
            return self._release(len(self.pending)), False
        hold = _longest_stop_prefix_suffix(text, stops)
        start = 0
        n_ready = 0
        for e in self.pending:
            start += len(e.text)
            if start > len(text) - hold:
                break
            n_ready += 1
        return self._release(n_ready), False

    def _release(self, n: int) -> list[TokenEvent]:
        ready, self.pending = self.pending[:n], self.pending[n:]
        return ready

    def _cut_at(self, hit: int) -> list[TokenEvent]:
        ready: list[TokenEvent] = []
        start = 0
        for e in self.pending:
            end = start + len(e.text)
            if end > hit:
                ready.append(
                    dataclasses.replace(e, text=e.text[: hit - start], finish_reason="stop")
                )
                break
            ready.append(e)
            start = end
        self.pending = []
        return ready


def _longest_stop_prefix_suffix(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that is a proper beginning of some stop string."""
    longest = min(len(text), max(len(s) for s in stops) - 1)
    for n in range(longest, 0, -1):
        tail = text[-n:]
        if any(s.startswith(tail) for s in stops):
            return n
    return 0
