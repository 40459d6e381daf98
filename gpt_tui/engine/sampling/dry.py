"""DRY ("Don't Repeat Yourself"): penalise the tokens that would extend a repetition.

As text-generation-webui's `DRYLogitsProcessor` (modules/sampler_hijack.py) and llama.cpp's
`llama_sampler_dry` (src/llama-sampling.cpp, ported from KoboldCpp) define it: for every earlier
place where the context's last tokens occurred before, the token that followed there would
extend the repeat; if the repeat (the longest such match, in tokens) is at least
`allowed_length`, that token's logit loses `multiplier * base ** (length - allowed_length)`.
A match never reaches back across a sequence breaker, a token that ends one is not
penalised, and when the last token is a breaker nothing is.

Breakers are token ids here (`DryBreakers`, built once per set of breaker strings by
`dry_breakers`), as llama.cpp processes them (`get_overlapping_token_sequences`): every token
whose text contains a breaker string is a breaker by itself (`breaker_ids`), and a token whose
text ends with a breaker's beginning heads a sequence, the tokens the rest of the breaker encodes
to: a breaker split over tokens, as "###" may be written "#" + "##", is recognised too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_FLOAT_MAX_LOG = 88.7228391  # llama.cpp's clamp: base ** exponent stays a finite float
# llama.cpp's bounds on a breaker (llama_sampler_init_dry): its first 40 bytes count, and the
# tail of a split one is at most 20 tokens
MAX_BREAKER_BYTES = 40
MAX_TAIL_TOKENS = 20

Sequences = Mapping[int, tuple[tuple[int, ...], ...]]  # head token -> the tails that follow it


@dataclass(frozen=True, eq=False)
class DryBreakers:
    """DRY's sequence breakers over a vocabulary: `mask` [n_vocab] bool, the tokens holding a
    breaker whole; `sequences`, head token -> tails: the head's text ends with a breaker's
    beginning and a tail's tokens encode the rest (a breaker split over tokens)."""

    mask: np.ndarray
    sequences: Sequences = field(default_factory=dict)


def repeat_lengths(
    tokens: np.ndarray, breakers: np.ndarray, sequences: Sequences | None = None
) -> dict[int, int]:
    """Token -> the longest repeat that token would extend (only tokens that extend one).

    `tokens` [n_context] are the ids so far; `breakers` a bool mask [n_vocab] of breaker ids;
    `sequences` the breakers split over tokens (`DryBreakers.sequences`). Candidates are the
    earlier occurrences of the last token; each round keeps those whose match also holds one
    token further back, so a round costs the candidates still alive and ordinary text, whose
    repeats are short, takes a few rounds.
    """
    n = tokens.size
    if n < 2:
        return {}
    # the repeat may not reach back across the context's last breaker
    limit = _repeat_limit(tokens, breakers, sequences or {})
    if limit == 0:
        return {}
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


def _repeat_limit(tokens: np.ndarray, breakers: np.ndarray, sequences: Sequences) -> int:
    """How many of the last tokens a repeat may span: those after the last breaker, found as
    llama.cpp finds it (step 1 of llama_sampler_dry_apply): the breaker token or sequence head
    nearest the end, a head counting only where one of its tails follows it (the longest)."""
    n = tokens.size
    singles = np.flatnonzero(breakers[tokens])
    last = int(singles[-1]) if singles.size else -1
    if sequences:
        heads = np.fromiter(sequences, dtype=np.int64, count=len(sequences))
        for p in np.flatnonzero(np.isin(tokens, heads))[::-1].tolist():
            if p <= last:
                break  # the breaker token is nearer the end
            after = tokens[p + 1 : p + 1 + MAX_TAIL_TOKENS].tolist()
            matched = [len(t) for t in sequences[int(tokens[p])] if list(t) == after[: len(t)]]
            if matched:
                return n - 1 - p - max(matched)
    return n - 1 - last if last >= 0 else n


def dry_penalties(
    tokens: np.ndarray,
    breakers: np.ndarray | DryBreakers,
    multiplier: float,
    base: float,
    allowed_length: int,
    last_n: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """The tokens DRY penalises and the amount subtracted from each one's logit.

    `breakers`: a mask of breaker tokens, or `DryBreakers` (with breakers split over tokens).
    `last_n` is llama.cpp's `dry_penalty_last_n`: repeats are looked for in the last `last_n`
    tokens only; -1 looks at the whole context and 0 turns DRY off."""
    if last_n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    if last_n > 0:
        tokens = tokens[-last_n:]
    mask, sequences = (
        (breakers.mask, breakers.sequences) if isinstance(breakers, DryBreakers) else (breakers, {})
    )
    lengths = repeat_lengths(tokens, mask, sequences)
    lengths = {t: n for t, n in lengths.items() if n >= allowed_length}
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


def breaker_sequences(
    token_bytes: Callable[[int], bytes],
    encode: Callable[[str], list[int]],
    n_text: int,
    breakers: Collection[str],
) -> dict[int, tuple[tuple[int, ...], ...]]:
    """The breakers split over tokens: head token -> tails, as llama.cpp's
    get_overlapping_token_sequences builds them. A token heads a breaker where its text ends
    with the breaker's first bytes (but does not hold it whole); the tail is the rest, encoded
    (at most `MAX_TAIL_TOKENS`). A split inside a character has no text to encode: skipped."""
    needles = [b.encode("utf-8")[:MAX_BREAKER_BYTES] for b in breakers]
    needles = [b for b in needles if len(b) > 1]  # a one-byte breaker cannot be split
    if not needles:
        return {}
    out: dict[int, set[tuple[int, ...]]] = {}
    tails: dict[bytes, tuple[int, ...] | None] = {}
    for token in range(n_text):
        piece = token_bytes(token)
        for needle in needles:
            if not piece or piece[-1] not in needle[:-1] or needle in piece:
                continue  # it cannot end with the breaker's beginning, or holds it whole
            for k in range(1, len(needle)):
                if not piece.endswith(needle[:k]):
                    continue
                rest = needle[k:]
                if rest not in tails:
                    tails[rest] = _encoded(rest, encode)
                tail = tails[rest]
                if tail:
                    out.setdefault(token, set()).add(tail)
    return {t: tuple(sorted(s)) for t, s in out.items()}


def _encoded(rest: bytes, encode: Callable[[str], list[int]]) -> tuple[int, ...] | None:
    try:
        text = rest.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return tuple(encode(text)[:MAX_TAIL_TOKENS])


def dry_breakers(tokenizer: Any, n_vocab: int, breakers: Collection[str]) -> DryBreakers:
    """`DryBreakers` for a tokenizer (its `token_bytes`, `encode` and `n_vocab`) and a model's
    n_vocab: a pass over the vocabulary's texts, tens of milliseconds, made once per set of
    breakers."""
    n_text = min(getattr(tokenizer, "n_vocab", n_vocab), n_vocab)
    mask = breaker_mask(tokenizer.token_bytes, n_text, n_vocab, breakers)
    sequences = breaker_sequences(tokenizer.token_bytes, tokenizer.encode, n_text, breakers)
    return DryBreakers(mask, sequences)
