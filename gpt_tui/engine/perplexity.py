"""Perplexity of a text longer than the context, and how far one model is from another on it.

The windows are those of transformers' guide "Perplexity of fixed-length models"
(https://huggingface.co/docs/transformers/perplexity): a window of `ctx` tokens starts every
`stride` tokens; each token is scored once, in the first window where it is new (after the
previous window's end), with the context from that window's start. So every token but those of
the first window is predicted from at least `ctx - stride` tokens before it, and a stride of
`ctx` gives disjoint windows (cheapest, least context). Position 0 is never scored: nothing
predicts it. A caller that wants the text's first token scored puts a beginning-of-text token
first, as the model's tokenizer does (`tokenizer.chat.encode_prompt`).

The guide's mean weights each window's loss by its count of labels less one, which is one more
than the tokens a later window scores; here each token's log-likelihood is summed once, exactly.

A window is computed as a prefill is: its context (the tokens before the first one it scores)
in one forward pass that keeps no logits (`last_only`), then the scored positions in slices of
rows, each slice one batched forward pass with all its positions' logits. Only the rows that
predict a scored token pay for the output projection, and a slice bounds the logits' memory
(SmolLM2's context of 8,192 positions would be 1.6 GB of them at once).

`against`: llama.cpp's `perplexity --kl-divergence` figures, over both models' full
distributions: the mean KL divergence from the reference's distribution to the model's, the
share of positions where both rank the same token first, and Δp, the model's probability of
the true next token minus the reference's (percentiles by linear interpolation, as llama.cpp's).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from gpt_tui.engine.kv_cache import KVCache
from gpt_tui.engine.language_model import LanguageModel
from gpt_tui.engine.plan import plan_of

LOGIT_BYTES = 64 * 2**20
"""Logits one slice of a window may hold (float32): 326 rows of GPT-2's 50,257-token
vocabulary, 341 of SmolLM2's. A slice is a whole number of the plan's prefill chunks (at least
one): the forward pass runs in those chunks anyway, and a slice of 341 would run as 256 + 85."""

STATS_ROWS = 32
"""Rows whose log-probabilities are computed at once: small enough to stay in the caches."""

DELTA_P_PERCENTILES = (1, 5, 50, 95, 99)


@dataclass(frozen=True, slots=True)
class Window:
    """Ids [begin, end) of a text go through the model; ids [first, end) are scored."""

    begin: int
    first: int
    end: int

    @property
    def n_scored(self) -> int:
        return self.end - self.first


def plan_windows(n_ids: int, ctx: int, stride: int) -> list[Window]:
    """The windows over `n_ids` token ids, as transformers' guide moves them."""
    if ctx < 2:
        raise ValueError(f"the window must hold at least 2 tokens, not {ctx}")
    if not 1 <= stride <= ctx:
        raise ValueError(f"the stride must lie in [1, {ctx}] (the window), not {stride}")
    windows: list[Window] = []
    scored_to = 1  # ids before this are scored (or are position 0, which nothing predicts)
    for begin in range(0, max(n_ids - 1, 1), stride):
        end = min(begin + ctx, n_ids)
        first = max(scored_to, begin + 1)  # a window's own first token has no context in it
        if end > first:
            windows.append(Window(begin, first, end))
        scored_to = max(scored_to, end)
        if end == n_ids:
            break
    return windows


def window_logits(
    model: LanguageModel,
    ids: Sequence[int] | np.ndarray,
    window: Window,
    cache: KVCache | None = None,
    max_rows: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(logits [n, n_vocab], targets [n]) for the window's scored tokens, in slices.

    Row i of a slice is the model's prediction for targets[i], from the window's start.
    """
    ids = np.asarray(ids, dtype=np.int64)
    rows = max_rows or slice_rows(model)
    cache = cache if cache is not None else model.new_cache(n_ctx=window.end - window.begin)
    cache.truncate(0)
    if window.first - 1 > window.begin:  # the context only: its keys and values, no logits
        model.forward(ids[window.begin : window.first - 1], cache, last_only=True)
    for a in range(window.first - 1, window.end - 1, rows):
        b = min(a + rows, window.end - 1)
        logits = model.forward(ids[a:b], cache)  # [b - a, n_vocab]
        yield logits, ids[a + 1 : b + 1]


def slice_rows(model: LanguageModel) -> int:
    """Rows of logits per forward pass: whole prefill chunks within LOGIT_BYTES."""
    plan = plan_of(model)
    chunk = plan.settings.prefill_chunk if plan is not None else 256
    fit = LOGIT_BYTES // (4 * model.n_vocab)
    return max(chunk, fit // chunk * chunk)


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log p(target) under each row's softmax, in float64: [n, n_vocab], [n] -> [n].

    The shifted logits stay float32 (the subtraction of the row's maximum is exact to half an
    ulp, and the exponentials are at most 1); their sum is taken in float64. Blocks of rows
    are exponentiated in place: a window's 512 rows of SmolLM2 at once took 0.10 s in fresh
    100 MB arrays, against 1.5 s for their forward pass.
    """
    logits = np.atleast_2d(logits)  # [n, n_vocab]
    targets = np.asarray(targets)
    nll = np.empty(len(targets), dtype=np.float64)  # [n]
    for a in range(0, len(targets), STATS_ROWS):
        b = min(a + STATS_ROWS, len(targets))
        rows = np.arange(b - a)
        z = logits[a:b] - logits[a:b].max(axis=-1, keepdims=True)  # [r, n_vocab]
        chosen = z[rows, targets[a:b]].astype(np.float64)  # [r]
        np.exp(z, out=z)
        nll[a:b] = np.log(z.sum(axis=-1, dtype=np.float64)) - chosen
    return nll


def log_softmax64(logits: np.ndarray) -> np.ndarray:
    """log softmax of rows [n, n_vocab], computed and returned in float64."""
    z = logits.astype(np.float64)  # [n, n_vocab]
    z -= z.max(axis=-1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return z


@dataclass(frozen=True, slots=True)
class Divergence:
    """Per position: KL(reference || model) in nats, whether both rank the same token first, and
    Δp = p_model(target) - p_reference(target)."""

    kl: np.ndarray  # [n] float64
    same_top1: np.ndarray  # [n] bool
    delta_p: np.ndarray  # [n] float64


def divergence(logits: np.ndarray, ref_logits: np.ndarray, targets: np.ndarray) -> Divergence:
    """The model's rows against the reference's for the same positions ([n, n_vocab] each)."""
    if logits.shape != ref_logits.shape:
        raise ValueError(f"logits {logits.shape} and the reference's {ref_logits.shape} differ")
    kl, same, delta = [], [], []
    for a in range(0, len(targets), STATS_ROWS):
        b = min(a + STATS_ROWS, len(targets))
        rows = np.arange(b - a)
        logp = log_softmax64(logits[a:b])  # [r, n_vocab]
        ref_logp = log_softmax64(ref_logits[a:b])  # [r, n_vocab]
        ref_p = np.exp(ref_logp)  # [r, n_vocab]
        kl.append(np.einsum("ij,ij->i", ref_p, ref_logp - logp))  # [r]
        same.append(logits[a:b].argmax(axis=-1) == ref_logits[a:b].argmax(axis=-1))  # [r]
        t = targets[a:b]
        delta.append(np.exp(logp[rows, t]) - ref_p[rows, t])  # [r]
    return Divergence(np.concatenate(kl), np.concatenate(same), np.concatenate(delta))


@dataclass
class Totals:
    """Running sums over the tokens scored so far (a run stopped early keeps what it has)."""

    tokens: int = 0
    nll_sum: float = 0.0  # nats
    n_bytes: int = 0  # UTF-8 bytes of the scored tokens
    kl: list[np.ndarray] = field(default_factory=list)
    same_top1: list[np.ndarray] = field(default_factory=list)
    delta_p: list[np.ndarray] = field(default_factory=list)

    def add(self, nll: np.ndarray, n_bytes: int, div: Divergence | None = None) -> None:
        # one assignment: a ctrl+c between the sums would leave them disagreeing
        self.tokens, self.nll_sum, self.n_bytes = (
            self.tokens + len(nll),
            self.nll_sum + float(np.sum(nll)),
            self.n_bytes + n_bytes,
        )
        if div is not None:
            self.kl.append(div.kl)
            self.same_top1.append(div.same_top1)
            self.delta_p.append(div.delta_p)

    @property
    def mean_nll(self) -> float:
        return self.nll_sum / self.tokens if self.tokens else math.nan

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_nll) if self.tokens else math.nan

    @property
    def bits_per_byte(self) -> float:
        """Total nats / ln 2 / UTF-8 bytes: comparable across tokenizers."""
        return self.nll_sum / math.log(2) / self.n_bytes if self.n_bytes else math.nan

    def against(self) -> dict[str, object] | None:
        """The divergence figures (None when nothing was compared)."""
        if not self.kl:
            return None
        kl = np.concatenate(self.kl)
        delta = np.concatenate(self.delta_p)
        if not len(kl):
            return None
        values = np.percentile(delta, DELTA_P_PERCENTILES)  # linear interpolation
        percentiles = zip(DELTA_P_PERCENTILES, values, strict=True)
        return {
            "kl_mean": float(np.mean(kl)),
            "same_top1": float(np.mean(np.concatenate(self.same_top1))),
            "delta_p": {
                "mean": float(np.mean(delta)),
                **{f"p{q}": float(v) for q, v in percentiles},
            },
        }
