"""DRY ("Don't Repeat Yourself"): penalise the tokens that would extend a repetition.

As text-generation-webui's `DRYLogitsProcessor` (modules/sampler_hijack.py) and llama.cpp's
`llama_sampler_dry` (src/llama-sampling.cpp, ported from KoboldCpp) define it: for every earlier
place where the context's last tokens occurred before, the token that followed there would
extend the repeat; if the repeat (the longest such match, in tokens) is at least
`allowed_length`, that token's logit loses `multiplier * base ** (length - allowed_length)`.
A match never reaches back across a sequence breaker, a token that ends one is not
penalised, and when the last token is a breaker nothing is.

Breakers are token ids here (the engine has no tokenizer): `breaker_ids` gives every token
whose text contains one of the breaker strings, llama.cpp's rule for a breaker within one token.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable

import numpy as np

_FLOAT_MAX_LOG = 88.7228391  # llama.cpp's clamp: base ** exponent stays a finite float


def repeat_lengths(tokens: np.ndarray, breakers: np.ndarray) -> dict[int, int]:
    """Token -> the longest repeat that token would extend (only tokens that extend one).

    `tokens` [n_context] are the ids so far; `breakers` a bool mask [n_vocab] of breaker ids.
    Candidates are the earlier occurrences of the last token; each round keeps those whose
    match also holds one token further back, so a round costs the candidates still alive and
    ordinary text, whose repeats are short, takes a few rounds.
    """
    n = tokens.size
    if n < 2 or breakers[tokens[-1]]:
        return {}
    # the repeat may not reach back across a breaker in the context's own suffix
    suffix_breaks = np.flatnonzero(breakers[tokens])  # positions of breakers
    limit = n - 1 - int(suffix_breaks[-1]) if suffix_breaks.size else n
    ends = np.flatnonzero(tokens[:-1] == tokens[-1])  # earlier matches of the last token
    ends = ends[~breakers[tokens[ends + 1]]]  # a breaker that follows is not penalised
    lengths = np.ones(ends.size, dtype=np.int64)
    alive = np.arange(ends.size)
    length = 1
    while alive.size and length < limit:
        back = ends[alive] - length  # [n_alive] the token before the match so far
        ok = back >= 0
        ok[ok] = tokens[back[ok]] == tokens[n - 1 - length]
        alive = alive[ok]
        length += 1
        lengths[alive] = length
    out: dict[int, int] = {}
    for token, length in zip(tokens[ends + 1].tolist(), lengths.tolist(), strict=True):
        if length > out.get(token, 0):
            out[token] = length
    return out


def dry_penalties(
    tokens: np.ndarray,
    breakers: np.ndarray,
    multiplier: float,
    base: float,
    allowed_length: int,
    last_n: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """The tokens DRY penalises and the amount subtracted from each one's logit.

    `last_n` is llama.cpp's `dry_penalty_last_n`: repeats are looked for in the last `last_n`
    tokens only; -1 looks at the whole context and 0 turns DRY off."""
    if last_n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    if last_n > 0:
        tokens = tokens[-last_n:]
    lengths = {t: n for t, n in repeat_lengths(tokens, breakers).items() if n >= allowed_length}
    if not lengths:
        return np.empty(0, dtype=np.int64), np.empty(0)
    max_exponent = int(_FLOAT_MAX_LOG / math.log(base)) if base > 1.000001 else 0
    ids = np.fromiter(lengths, dtype=np.int64, count=len(lengths))
    exponents = np.array([n - allowed_length for n in lengths.values()], dtype=np.float64)
    if max_exponent > 0:
        exponents = np.minimum(exponents, max_exponent)
    return ids, multiplier * base**exponents


def breaker_ids(token_bytes: Iterable[bytes], breakers: Collection[str]) -> np.ndarray:
    """A bool mask over the vocabulary: the tokens whose bytes contain a breaker string."""
    needles = [b.encode("utf-8") for b in breakers]
    return np.fromiter(
        (any(needle in piece for needle in needles) for piece in token_bytes), dtype=bool
    )


def breaker_mask(
    token_bytes: Callable[[int], bytes], n_text: int, n_vocab: int, breakers: Collection[str]
) -> np.ndarray:
    """`breaker_ids` over a tokenizer's first n_text ids, padded to the model's n_vocab (a
    model's embedding may have rows the tokenizer has no text for: never breakers)."""
    mask = np.zeros(n_vocab, dtype=bool)
    n = min(n_text, n_vocab)
    mask[:n] = breaker_ids((token_bytes(i) for i in range(n)), breakers)
    return mask
