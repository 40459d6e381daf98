"""What the model thought of given tokens: probability, rank, entropy and alternatives.

One computation serves both a generated token (one row of logits, in `generate`) and the
tokens of a text the model reads (many rows at once: prompt scoring, `gpt-tui score`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gpt_tui.engine.language_model import LanguageModel
from gpt_tui.engine.sampling import top_indices
from gpt_tui.tokenizer.chat import encode_prompt

if TYPE_CHECKING:
    from gpt_tui.tokenizer import Tokenizer

# GLTR's buckets: where a token ranked among the model's predictions.
RANK_BUCKETS = ((1, "top-1"), (10, "top-10"), (100, "top-100"), (math.inf, "beyond"))


@dataclass(frozen=True, slots=True)
class Alternative:
    """A token the model considered at a step, with its probability under the model."""

    token_id: int
    text: str
    prob: float


@dataclass(frozen=True, slots=True)
class TokenScore:
    """The model's distribution at one position, seen from the token that stands there.

    `rank` is 1 for the likeliest token; `entropy` is in nats; `top` the likeliest alternatives.
    """

    position: int
    token_id: int
    text: str
    prob: float
    logprob: float
    rank: int
    entropy: float
    top: tuple[Alternative, ...]

    @property
    def surprisal_bits(self) -> float:
        return -self.logprob / math.log(2)

    @property
    def bucket(self) -> str:
        return rank_bucket(self.rank)


def rank_bucket(rank: int) -> str:
    return next(name for limit, name in RANK_BUCKETS if rank <= limit)


def score_rows(
    logits: np.ndarray,
    targets: Sequence[int],
    tokenizer: Tokenizer,
    n_top: int,
    first_position: int = 0,
) -> list[TokenScore]:
    """Score targets[i] under logits[i] ([n, n_vocab]), for positions first_position + i."""
    logits = np.atleast_2d(logits)  # [n, n_vocab]
    targets_arr = np.asarray(targets, dtype=np.int64)  # [n]
    z = logits.astype(np.float64)  # [n, n_vocab]
    z -= z.max(axis=-1, keepdims=True)
    probs = np.exp(z)  # [n, n_vocab]  (unnormalised)
    total = probs.sum(axis=-1, keepdims=True)  # [n, 1]
    probs /= total  # [n, n_vocab]
    logp = z  # [n, n_vocab]  (in place: z is not needed again)
    logp -= np.log(total)
    entropy = -np.einsum("ij,ij->i", probs, logp)  # [n]
    rows = np.arange(len(targets_arr))
    chosen = logits[rows, targets_arr]  # [n]
    ranks = 1 + (logits > chosen[:, None]).sum(axis=-1)  # [n]
    scores = []
    for i, target in enumerate(targets_arr.tolist()):
        top = top_indices(logits[i], n_top) if n_top > 0 else ()
        scores.append(
            TokenScore(
                position=first_position + i,
                token_id=target,
                text=tokenizer.token_text(target),
                prob=float(probs[i, target]),
                logprob=float(logp[i, target]),
                rank=int(ranks[i]),
                entropy=float(entropy[i]),
                top=tuple(
                    Alternative(int(t), tokenizer.token_text(int(t)), float(probs[i, t]))
                    for t in top
                ),
            )
        )
    return scores


@dataclass(frozen=True)
class TextScore:
    """The tokens of a text scored, and the summary figures over them.

    `tokens` are the scored ones: every id read but the first, which nothing precedes. Their
    positions are indices in `context`, the ids read (empty from a backend that does not say).
    """

    tokens: tuple[TokenScore, ...]
    # whether `context` starts with the beginning-of-text token the model's tokenizer puts before
    # every text (`add_bos`), so that the text's own first token is scored too
    prepended_bos: bool
    context: tuple[int, ...] = ()

    @property
    def mean_logprob(self) -> float:
        return float(np.mean([t.logprob for t in self.tokens])) if self.tokens else math.nan

    @property
    def perplexity(self) -> float:
        return math.exp(-self.mean_logprob)

    @property
    def mean_surprisal_bits(self) -> float:
        return -self.mean_logprob / math.log(2)


SCORING_RULE = (
    "the text is read as the model's tokenizer encodes it, so its first token is scored only "
    "where that tokenizer puts a beginning-of-text token before every text (Llama 3's does; "
    "GPT-2's and SmolLM2's do not: nothing precedes their first token)"
)
"""The rule of transformers' perplexity guide (huggingface.co/docs/transformers/perplexity), the
one `gpt-tui score` and the playground's prompt scores share, in words for help texts."""


def score_text(
    model: LanguageModel,
    tokenizer: Tokenizer,
    text: str | Sequence[int],
    *,
    n_top: int = 5,
    allowed_special: str = "none",
) -> TextScore:
    """Score every token of a text that something precedes, as the model reads it left to right.

    A text is encoded as a prompt is (`encode_prompt`): with a beginning-of-text token first
    only where the model's tokenizer puts one before every text. Ids are read as given. Either
    way the first id has no score (`SCORING_RULE`), as in transformers' perplexity guide and in
    the playground, whose prompt scores come from the same ids. A text longer than the context
    is read in overlapping windows: each token is scored with at least half a context of what
    precedes it.
    """
    ids = encode_prompt(tokenizer, text, allowed_special) if isinstance(text, str) else list(text)
    bos = tokenizer.bos_id
    prepended = bool(ids) and getattr(tokenizer, "add_bos", False) and ids[0] == bos
    scores: list[TokenScore] = []
    window = model.n_ctx
    begin = 1  # index in `ids` of the first target not yet scored
    while begin < len(ids):
        end = min(len(ids), begin + window // 2) if scores else min(len(ids), window)
        lo = max(0, end - window)
        logits = model.forward(ids[lo:end])  # [end - lo, n_vocab]
        rows = logits[begin - 1 - lo : end - 1 - lo]  # the rows that predict begin .. end-1
        scores += score_rows(rows, ids[begin:end], tokenizer, n_top, begin)
        begin = end
    return TextScore(tuple(scores), prepended, tuple(ids))
