"""Speculative decoding: guess the next tokens cheaply, check them all in one forward pass.

Decoding reads every weight once per token; a pass over a few positions costs about one step.
So a pass feeds the pending token plus k drafted ones, and its k + 1 rows of logits are sampled
one after the other exactly as plain decoding would sample them: while the token drawn equals
the draft, the next row is valid too; at the first difference the drawn token is kept, the
rest of the pass is thrown away (the kv cache is truncated: a length change, no copy).

Why this is exact, and why a seed gives the same text with speculation on or off: each
position's draw depends only on the seed, the position and that position's distribution
(`Sampler.sample`), and the distribution at position t + j is computed from exactly the tokens
plain decoding would have there, since row j is used only if every draft before it was drawn.
Each emitted token therefore *is* plain decoding's token; the drafts decide only how many
positions a pass can confirm. For a deterministic draft (prompt lookup) this is the rule of
Leviathan et al. 2023 / Chen et al. 2023 specialised to a one-hot draft distribution. A draft
model draws its proposal from its own distribution with the same per-position uniform (a
coupling of the two draws), which keeps the output independent of the drafter; it accepts a
little less often than their accept/resample rule at temperature > 0 (whose output, unlike
this one, depends on the draft), and exactly as often at temperature 0.

Every sampling stage keeps this true (engine/sampling/chain.py, `speculation_blocker`): the
stateful ones (penalties, DRY, mirostat's mu) are updated token by token in the order plain
decoding observes them, and XTC's coin, like the draw, depends on the seed and position only.
Banned strings do not: they rewind; under them passes hold one position (plain decoding).

The draft length adapts (`DraftLength`): it follows the measured acceptance and the measured
time of passes of each size, and drafts nothing when that would be faster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from gpt_tui.engine.events import TokenEvent
from gpt_tui.engine.kv_cache import KVCache
from gpt_tui.engine.language_model import LanguageModel
from gpt_tui.engine.sampling import Sampler, SamplingParams, speculation_blocker

if TYPE_CHECKING:
    from gpt_tui.tokenizer import Tokenizer

MAX_DRAFT = 7
"""Drafted tokens per pass at most: 8 positions, the multi-position pass the planner makes fast."""


class Drafter(Protocol):
    """Proposes the tokens that may follow a context."""

    def propose(
        self, context: np.ndarray, k: int, sampler: Sampler, settings: SamplingParams, position: int
    ) -> list[int]:
        """Up to k tokens to follow `context` [n_context] (ids), whose next token is drawn for
        `position`; `sampler` is the target's, in its state before that token (not changed)."""
        ...


@dataclass(frozen=True)
class PassStats:
    """Totals of one generation's verifying passes so far."""

    passes: int
    tokens: int  # tokens sampled from them
    drafted: int  # drafted tokens fed to them
    accepted: int  # drafted tokens confirmed

    @property
    def tokens_per_pass(self) -> float:
        return self.tokens / self.passes if self.passes else 0.0

    @property
    def acceptance(self) -> float:
        """Confirmed drafts per drafted token (drafts after a rejection count as not confirmed)."""
        return self.accepted / self.drafted if self.drafted else 0.0


class PromptLookup:
    """Drafts by prompt lookup: the end of the context (its last n tokens, n from `max_ngram`
    down to `min_ngram`) is searched for earlier in the prompt and the output so far; the
    tokens that followed its latest earlier occurrence are proposed. No second model: it is
    what makes copying, quoting, editing and code continuation fast.

    A single matching token predicts little: on SmolLM2's chat turns (bench_speculative) the
    token after a 1-token match was the next one 8-31% of the time, after a 3-token match
    86-93% in a copy; so matches start at 2 tokens, and open-ended text drafts seldom."""

    def __init__(self, max_ngram: int = 3, min_ngram: int = 2) -> None:
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def propose(
        self, context: np.ndarray, k: int, sampler: Sampler, settings: SamplingParams, position: int
    ) -> list[int]:
        return lookup(context, k, self.max_ngram, self.min_ngram)


def lookup(context: np.ndarray, k: int, max_ngram: int, min_ngram: int = 1) -> list[int]:
    """Up to k tokens that followed the latest earlier occurrence of the context's longest
    matching end (of `min_ngram` to `max_ngram` tokens)."""
    n_context = context.shape[0]
    for n in range(min(max_ngram, n_context - 1), min_ngram - 1, -1):
        # windows starting at i < n_context - n: each one has a token after it
        windows = np.lib.stride_tricks.sliding_window_view(context[:-1], n)  # [n_context-n, n]
        hits = np.flatnonzero((windows == context[-n:]).all(axis=1))  # [n_hits]
        if hits.size:
            start = int(hits[-1]) + n
            return context[start : start + k].tolist()
    return []


class DraftModel:
    """Drafts with a smaller model that shares the target's tokenizer, one token at a time.

    Its own kv cache follows the context: only what it does not hold yet is computed, so in
    steady state a proposal of k tokens costs k of its steps. Each draft token is drawn for its
    position with the target's seed, settings and penalty state, so when the two models agree
    the draw agrees too.
    """

    def __init__(self, model: LanguageModel) -> None:
        self.model = model
        self.cache = model.new_cache()

    def propose(
        self, context: np.ndarray, k: int, sampler: Sampler, settings: SamplingParams, position: int
    ) -> list[int]:
        n_context = context.shape[0]
        k = min(k, self.model.n_ctx - n_context + 1)  # the last draft is never fed to it
        if k <= 0:
            return []
        ids = context.tolist()
        keep = min(self.cache.common_prefix(ids), n_context - 1)
        self.cache.truncate(keep)
        logits = self.model.forward(ids[keep:], self.cache, last_only=True)[-1]  # [n_vocab]
        own = sampler.copy()
        drafts: list[int] = []
        for i in range(k):
            token, _ = own.sample(logits, settings, position + i)
            drafts.append(token)
            if i + 1 < k:
                own.observe(token)
                logits = self.model.forward([token], self.cache, last_only=True)[-1]  # [n_vocab]
        return drafts


def check_draft_model(
    target_name: str,
    target: LanguageModel,
    target_tokenizer: Tokenizer,
    draft_name: str,
    draft: LanguageModel,
    draft_tokenizer: Tokenizer,
) -> None:
    """Refuse a draft model whose tokens do not mean what the target's mean."""
    if not same_tokenizer(target_tokenizer, draft_tokenizer) or draft.n_vocab != target.n_vocab:
        raise ValueError(
            f"the draft model {draft_name} cannot draft for {target_name}: their tokenizers "
            f"differ ({draft_tokenizer.n_vocab} tokens against {target_tokenizer.n_vocab}"
            f"{'' if draft_tokenizer.n_vocab != target_tokenizer.n_vocab else ', not the same'}); "
            "a draft model needs exactly the target's tokenizer"
        )


def same_tokenizer(a: Tokenizer, b: Tokenizer) -> bool:
    """Whether two tokenizers give every id the same bytes and split text the same way."""
    if a is b:
        return True
    ja, jb = a.to_json(), b.to_json()
    return all(ja[key] == jb[key] for key in ("tokens", "merges", "special_tokens"))


def unavailable_reason(model: object) -> str | None:
    """Why speculation cannot run on this model, or None. It needs a local kv cache that a
    verifying pass can write and truncate; a model without one (a remote server) says so by
    setting `verifies_drafts = False`."""
    if not getattr(model, "verifies_drafts", True) or not hasattr(model, "new_cache"):
        name = getattr(model, "name", type(model).__name__)
        return f"speculative decoding is not available for {name} (it needs a local kv cache)"
    return None


class DraftLength:
    """How many tokens to draft next: the k that maximises expected tokens per second.

    A pass over 1 + k positions confirms 1 + a + ... + a^k tokens on average when each draft
    holds with probability a (the acceptance, averaged over recent passes). Its time is
    measured per pass size (passes of some sizes cost the same: see engine/blocked.py), plus
    any drafting time per token. Sizes not yet measured are assumed 10% dearer per position
    than the nearest measured one. When drafting does not pay, k is 0: plain decoding, with a
    probe every `PROBE_EVERY` passes so that a later run of copying is noticed.
    """

    DECAY = 0.8  # weight of the past in each running average
    PRIOR_STEP = 0.1  # the assumed extra cost of each position, until measured
    PROBE_EVERY = 16

    def __init__(self, max_draft: int = MAX_DRAFT, *, adaptive: bool = True) -> None:
        """`adaptive=False` always drafts `max_draft` (a fixed policy: for measuring, and for
        tests whose figures must not depend on the machine's timings)."""
        self.max_draft, self.adaptive = max_draft, adaptive
        self.confirmed, self.tested = 1.0, 2.0  # a prior acceptance of 1/2
        self.pass_seconds: dict[int, float] = {}  # positions -> running mean
        self.draft_seconds = 0.0  # per drafted token
        self.idle = 0

    @property
    def acceptance(self) -> float:
        return self.confirmed / self.tested

    def choose(self) -> int:
        if not self.adaptive:
            return self.max_draft
        a = min(self.acceptance, 0.99)
        best, best_rate = 0, 1.0 / self._seconds(1)
        for k in range(1, self.max_draft + 1):
            rate = (1 - a ** (k + 1)) / (1 - a) / (self._seconds(1 + k) + k * self.draft_seconds)
            if rate > best_rate:
                best, best_rate = k, rate
        if best == 0:
            self.idle += 1
            if self.idle >= self.PROBE_EVERY:
                self.idle, best = 0, 1
        return best

    def record(
        self, drafted: int, confirmed: int, positions: int, seconds: float, draft_seconds: float
    ) -> None:
        if drafted:
            rejected = 1 if confirmed < drafted else 0
            self.confirmed = self.DECAY * self.confirmed + confirmed
            self.tested = self.DECAY * self.tested + confirmed + rejected
            per_token = draft_seconds / drafted
            self.draft_seconds = (
                per_token
                if self.draft_seconds == 0.0
                else self.DECAY * self.draft_seconds + (1 - self.DECAY) * per_token
            )
        old = self.pass_seconds.get(positions)
        self.pass_seconds[positions] = (
            seconds if old is None else self.DECAY * old + (1 - self.DECAY) * seconds
        )

    def _seconds(self, positions: int) -> float:
        if positions in self.pass_seconds:
            return self.pass_seconds[positions]
        if not self.pass_seconds:
            return 1.0 + self.PRIOR_STEP * (positions - 1)
        near = min(self.pass_seconds, key=lambda n: abs(n - positions))
        ratio = (1 + self.PRIOR_STEP * (positions - 1)) / (1 + self.PRIOR_STEP * (near - 1))
        return self.pass_seconds[near] * max(ratio, 1.0)


class Stream(Protocol):
    """What speculation needs of a generation stream (engine/generate.py's `_Stream`)."""

    sampler: Sampler
    current: Callable[[], SamplingParams]
    start: int
    index: int
    done: bool
    last_token: int

    def step(self, logits: np.ndarray, dropped: int) -> list[TokenEvent]: ...

    def take_rewind(self) -> tuple[int, np.ndarray] | None: ...

    @property
    def rewinding(self) -> bool: ...


Advance = Callable[["LanguageModel", KVCache, list[int]], tuple[np.ndarray, int]]


def decode(
    model: LanguageModel,
    cache: KVCache,
    stream: Stream,
    logits: np.ndarray,
    dropped: int,
    drafter: Drafter,
    advance: Advance,
    on_pass: Callable[[PassStats], None] | None = None,
    length: DraftLength | None = None,
) -> Iterator[TokenEvent]:
    """The events of one stream, decoded speculatively from logits [n_vocab] after the prompt.

    `advance` is plain decoding's step (it slides the window when the context is full).
    `on_pass` receives the running totals after every pass.
    """
    length = length or DraftLength()
    stats = PassStats(0, 0, 0, 0)
    yield from stream.step(logits, dropped)
    while not stream.done:
        rewind = stream.take_rewind()
        if rewind is not None:  # a banned string: undo its tokens, draw again where it began
            n_back, row = rewind
            cache.truncate(cache.length - n_back)
            yield from stream.step(row, 0)
            continue
        base = cache.length
        n_ctx = min(model.n_ctx, cache.n_ctx)
        if base >= n_ctx:  # no room for the pending token: slide the window, one plain step
            rows, dropped = advance(model, cache, [stream.last_token])
            yield from stream.step(rows[0], dropped)
            stats = PassStats(stats.passes + 1, stats.tokens + 1, stats.drafted, stats.accepted)
            continue
        settings = stream.current()
        k = min(length.choose(), n_ctx - base - 1, settings.max_tokens - stream.index - 1)
        if speculation_blocker(settings) is not None:
            k = 0  # settings changed mid-generation to ones it cannot follow: plain passes
        drafts: list[int] = []
        began = time.perf_counter()
        if k > 0:
            context = np.append(cache.ids[0, :base], stream.last_token)  # [base + 1]
            position = stream.start + stream.index
            drafts = drafter.propose(context, k, stream.sampler, settings, position)[:k]
        drafted = time.perf_counter()
        rows = model.forward([stream.last_token, *drafts], cache)  # [1 + n_draft, n_vocab]
        verified = time.perf_counter()
        confirmed = 0
        try:
            for j in range(len(drafts) + 1):
                yield from stream.step(rows[j], 0)
                if (
                    stream.done
                    or stream.rewinding
                    or j == len(drafts)
                    or stream.last_token != drafts[j]
                ):
                    break
                confirmed += 1
        finally:
            # keep the pending token and the confirmed drafts; the rest of the pass is void
            cache.truncate(base + 1 + confirmed)
        length.record(len(drafts), confirmed, 1 + len(drafts), verified - drafted, drafted - began)
        stats = PassStats(
            stats.passes + 1,
            stats.tokens + confirmed + 1,
            stats.drafted + len(drafts),
            stats.accepted + confirmed,
        )
        if on_pass:
            on_pass(stats)
