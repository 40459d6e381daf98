"""Finding the likeliest tokens fast: the top k without a full sort, and the nucleus."""

from __future__ import annotations

import numpy as np

_SAMPLE_STRIDE = 64
_N_BUCKETS = 256  # quarter-octaves: down to 2^-64 of the top probability, then one last bucket


def top_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, largest first, without sorting the whole array.

    Even a partition of a 50k vocabulary costs ~0.4 ms, several times per token. So a strided
    sample (every 64th value) first estimates a threshold that a few hundred values pass; only
    those are partitioned. If the estimate lets fewer than k through, the full partition runs.
    """
    k = min(k, values.size)
    if k <= 0:
        return np.empty(0, dtype=np.intp)
    candidates = None
    if values.size >= 8 * _SAMPLE_STRIDE and k < values.size // (2 * _SAMPLE_STRIDE):
        sample = np.sort(values[::_SAMPLE_STRIDE])  # [n / 64]
        threshold = sample[-(k // _SAMPLE_STRIDE + 4)]  # expect ~64 * (k/64 + 4) values above
        passing = np.flatnonzero(values >= threshold)
        if passing.size >= k:
            candidates = passing
    if candidates is None:
        candidates = np.arange(values.size)
    if candidates.size > k:
        candidates = candidates[np.argpartition(-values[candidates], k - 1)[:k]]
    return candidates[np.argsort(-values[candidates], kind="stable")]


_NUCLEUS_CANDIDATES = 256


def nucleus(probs: np.ndarray, top_p: float, log_weights: np.ndarray | None = None) -> np.ndarray:
    """The likeliest tokens whose mass first reaches top_p (the crossing token included).

    Sorting 50k probabilities costs more than the rest of a token's sampling. A language model's
    nucleus is usually a few dozen tokens: the 256 likeliest (found without a sort) are tried
    first. When they do not reach top_p (a flat distribution's nucleus holds thousands), tokens
    are bucketed by quarter-octaves of probability below the top one (a histogram of masses, one
    pass); every bucket above the one where the cumulative mass crosses top_p is wholly inside,
    and only the crossing bucket is sorted. `log_weights` (log-probabilities up to a constant)
    spare the logarithms. Returns the indices in no particular order.
    """
    total = probs.sum()
    # (256 tokens of at most the top probability cannot hold more than 256 times it)
    if probs.size > 4 * _NUCLEUS_CANDIDATES and _NUCLEUS_CANDIDATES * probs.max() >= top_p * total:
        top = top_indices(probs, _NUCLEUS_CANDIDATES)  # largest first
        mass = np.cumsum(probs[top])
        if mass[-1] >= top_p * total:
            return top[: int(np.searchsorted(mass, top_p * total, side="left")) + 1]
    if log_weights is None:
        with np.errstate(divide="ignore"):
            log_weights = np.log(probs)  # -inf for p=0: the last bucket
    # quarter-octaves below the top token: 0 for the top one (an exact, monotone function of p)
    level = log_weights.max() - log_weights  # [n_vocab]
    level *= 4.0 / np.log(2.0)
    buckets = np.minimum(level, _N_BUCKETS - 1, out=level).astype(np.intp)  # [n_vocab]
    mass = np.cumsum(np.bincount(buckets, weights=probs, minlength=_N_BUCKETS)) / total
    crossing = min(int(np.searchsorted(mass, top_p, side="left")), _N_BUCKETS - 1)
    inside = np.flatnonzero(buckets < crossing)
    edge = np.flatnonzero(buckets == crossing)
    edge = edge[np.argsort(-probs[edge], kind="stable")]
    needed = top_p - (mass[crossing - 1] if crossing else 0.0)
    n_edge = int(np.searchsorted(np.cumsum(probs[edge]) / total, needed, side="left")) + 1
    return np.concatenate([inside, edge[: min(n_edge, edge.size)]])


def softmax64(z: np.ndarray) -> np.ndarray:
    """Probabilities (float64) from logits; -inf logits get exactly 0."""
    e = np.exp(z - z.max())
    return e / e.sum()
