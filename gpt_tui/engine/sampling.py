"""From logits to the next token under `SamplingParams`.

The pipeline, in the order the issue fixes and most runtimes use: penalties (repetition, presence,
frequency) -> temperature -> top-k -> top-p -> min-p -> draw. Each step only ever removes tokens or
reshapes the distribution, so every setting at its "off" value leaves the logits untouched.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ParamRange:
    """A parameter's valid interval, its "off" value and a step for sliders."""

    low: float
    high: float
    default: float
    step: float
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    help: str = ""

    def describe(self) -> str:
        left, right = ("(" if self.low_open else "["), (")" if self.high_open else "]")
        fmt = (lambda v: f"{int(v)}") if self.integer else (lambda v: f"{v:g}")
        return f"{left}{fmt(self.low)}, {fmt(self.high)}{right}"

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below


MAX_TOKENS_LIMIT = 65536

RANGES: dict[str, ParamRange] = {
    "temperature": ParamRange(0.0, 2.0, 1.0, 0.05, help="0 = greedy (always the top token)"),
    "top_k": ParamRange(0, 50257, 0, 1, integer=True, help="keep the k likeliest tokens; 0 = off"),
    "top_p": ParamRange(0.0, 1.0, 1.0, 0.01, low_open=True, help="nucleus mass to keep; 1 = off"),
    "min_p": ParamRange(
        0.0,
        1.0,
        0.0,
        0.01,
        high_open=True,
        help="drop tokens below min_p x the top probability; 0 = off",
    ),
    "repetition_penalty": ParamRange(
        0.0, 3.0, 1.0, 0.05, low_open=True, help="divide logits of tokens already present; 1 = off"
    ),
    "presence_penalty": ParamRange(
        -2.0, 2.0, 0.0, 0.1, help="subtract from logits of tokens generated at least once"
    ),
    "frequency_penalty": ParamRange(
        -2.0, 2.0, 0.0, 0.1, help="subtract per occurrence in the generated tokens"
    ),
    "max_tokens": ParamRange(
        1, MAX_TOKENS_LIMIT, 100, 1, integer=True, help="stop after this many new tokens"
    ),
}


@dataclass(frozen=True)
class SamplingParams:
    """Every sampling setting; construction validates each value against `RANGES`."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    max_tokens: int = 100
    stop: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for name, spec in RANGES.items():
            object.__setattr__(self, name, _checked(name, getattr(self, name), spec))
        if self.seed is not None:
            if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
                raise ValueError(f"seed must be a whole number or None, not {self.seed!r}")
            if not 0 <= int(self.seed) < 2**63:
                raise ValueError(f"seed must be in [0, 2^63), not {self.seed}")
            object.__setattr__(self, "seed", int(self.seed))
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if any(not isinstance(s, str) or s == "" for s in stop):
            raise ValueError("stop sequences must be non-empty strings")
        object.__setattr__(self, "stop", stop)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def replace(self, **changes: Any) -> SamplingParams:
        """A copy with some settings changed (validated like any construction)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(values)
        if unknown:
            raise ValueError(f"unknown sampling parameter(s): {', '.join(sorted(unknown))}")
        return SamplingParams(**{**values, **changes})


def _checked(name: str, value: Any, spec: ParamRange) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in {spec.describe()}, not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number in {spec.describe()}, not {value}")
    if spec.integer and value != int(value):
        raise ValueError(f"{name} must be a whole number in {spec.describe()}, not {value}")
    if not spec.contains(value):
        raise ValueError(f"{name} must be in {spec.describe()}, not {value:g}")
    return int(value) if spec.integer else float(value)


class Sampler:
    """Draws tokens for one stream; remembers which tokens the penalties apply to.

    Repetition penalty follows HF (every token of the prompt and the output so far); presence and
    frequency penalties follow OpenAI (counts of tokens generated so far).

    Each draw's randomness comes from the seed and the position drawn for (`position_uniform`),
    not from one shared stream: a position gets the same draw however many other draws were
    made before it, so speculative decoding, which draws for several positions in one pass and
    may draft and discard, gives the same text as plain decoding. Without a seed, a fresh one
    is drawn once per sampler (`seed` holds it).
    """

    def __init__(self, n_vocab: int, prompt_ids: list[int], seed: int | None) -> None:
        self.n_vocab = n_vocab
        self.seen = np.zeros(n_vocab, dtype=bool)
        self.seen[np.asarray(prompt_ids, dtype=np.int64)] = True
        self.counts = np.zeros(n_vocab, dtype=np.int64)
        self.seed = fresh_seed() if seed is None else seed

    def observe(self, token_id: int) -> None:
        self.seen[token_id] = True
        self.counts[token_id] += 1

    def copy(self) -> Sampler:
        """An independent sampler in the same state (a draft that may be thrown away)."""
        other = Sampler.__new__(Sampler)
        other.n_vocab, other.seed = self.n_vocab, self.seed
        other.seen, other.counts = self.seen.copy(), self.counts.copy()
        return other

    def distribution(self, logits: np.ndarray, params: SamplingParams) -> np.ndarray:
        """The final sampling distribution [n_vocab] (float64, sums to 1) for these logits."""
        kept, weights = self._kept(logits, params)
        probs = np.zeros(self.n_vocab)
        probs[kept] = weights / weights.sum()
        return probs

    def sample(
        self, logits: np.ndarray, params: SamplingParams, position: int
    ) -> tuple[int, float]:
        """Draw the token at `position`; returns it and its probability under the sampling
        distribution."""
        kept, weights = self._kept(logits, params)
        i = draw_index(weights, position_uniform(self.seed, position)) if kept.size > 1 else 0
        return int(kept[i]), float(weights[i] / weights.sum())

    def _kept(self, logits: np.ndarray, params: SamplingParams) -> tuple[np.ndarray, np.ndarray]:
        """The tokens the filters keep, in vocabulary order, and their unnormalised weights.

        Working on the few kept tokens rather than on masks over the whole vocabulary keeps
        sampling a small part of a decode step (each full-vocabulary pass costs 10-100 us).
        """
        z = apply_penalties(logits.astype(np.float64), params, self.seen, self.counts)
        if params.greedy:
            token = np.argmax(z)
            return np.array([token]), np.ones(1)
        z /= params.temperature
        probs = _softmax64(z)
        kept = kept_tokens(probs, params, z)
        if kept is None:
            return np.arange(probs.size), probs
        # Vocabulary order: a seed draws the same token however the filters found them. A mask
        # orders a flat distribution's thousands of tokens faster than a sort (40 vs 150 us).
        if kept.size > 512:
            mask = np.zeros(probs.size, dtype=bool)
            mask[kept] = True
            kept = np.flatnonzero(mask)
        else:
            kept.sort()
        return kept, probs[kept]


def fresh_seed() -> int:
    """A seed in [0, 2^63) from the operating system's entropy."""
    return secrets.randbits(63)


def position_uniform(seed: int, position: int) -> float:
    """The uniform in [0, 1) that drives the draw at `position` under `seed`.

    SplitMix64 (Steele et al. 2014, the seeder of Java's SplittableRandom and of xoshiro), read
    at an arbitrary point of its sequence: the state is a seed-derived start plus position
    times its constant increment, and its output function mixes that state. So any position's
    uniform is computed directly, in about a microsecond, and neighbouring positions and seeds
    give unrelated draws.
    """
    state = (_splitmix64(seed) + position * _GOLDEN_GAMMA) & _MASK64
    return (_splitmix64(state) >> 11) * 2.0**-53  # the top 53 bits: a double in [0, 1)


_MASK64 = (1 << 64) - 1
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def _splitmix64(state: int) -> int:
    """SplitMix64's output for the state before `state` (it adds the increment first)."""
    z = (state + _GOLDEN_GAMMA) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


_BLOCK = 256


def draw_index(weights: np.ndarray, u: float) -> int:
    """The index where u (in [0, 1)) falls in the cumulative weights: a draw from them.

    A cumulative sum over a whole 50k vocabulary costs ~0.2 ms (NumPy's cumsum does not
    vectorise), so the search runs in two levels: over sums of blocks of 256, then inside one.
    A zero weight is never drawn.
    """
    if weights.size <= 4 * _BLOCK:
        cdf = np.cumsum(weights)
        return _last_positive(weights, int(np.searchsorted(cdf, u * cdf[-1], side="right")))
    block_sums = np.add.reduceat(weights, np.arange(0, weights.size, _BLOCK))  # [n / 256]
    block_cdf = np.cumsum(block_sums)
    target = u * block_cdf[-1]
    b = min(int(np.searchsorted(block_cdf, target, side="right")), block_cdf.size - 1)
    inside = weights[b * _BLOCK : (b + 1) * _BLOCK]
    cdf = np.cumsum(inside)
    i = int(np.searchsorted(cdf, target - (block_cdf[b - 1] if b else 0.0), side="right"))
    return _last_positive(weights, b * _BLOCK + min(i, inside.size - 1))


def _last_positive(weights: np.ndarray, i: int) -> int:
    """Rounding can land a draw just past the end, or on a zero weight: step back to a real one."""
    i = min(i, weights.size - 1)
    while weights[i] <= 0.0 and i > 0:
        i -= 1
    return i


def apply_penalties(
    z: np.ndarray, params: SamplingParams, seen: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Repetition, presence and frequency penalties; only penalised tokens' logits change."""
    if params.repetition_penalty != 1.0 and seen.any():
        penalised = z[seen]
        z[seen] = np.where(
            penalised > 0,
            penalised / params.repetition_penalty,
            penalised * params.repetition_penalty,
        )
    if params.presence_penalty or params.frequency_penalty:
        z -= params.presence_penalty * (counts > 0) + params.frequency_penalty * counts
    return z


def filter_probs(probs: np.ndarray, params: SamplingParams) -> np.ndarray:
    """top-k, then top-p, then min-p on a distribution; renormalised. Always keeps one token."""
    kept = kept_tokens(probs, params)
    if kept is None:
        return probs  # every filter off: nothing to remove
    out = np.zeros_like(probs)
    out[kept] = probs[kept]
    return out / out.sum()


def kept_tokens(
    probs: np.ndarray, params: SamplingParams, log_weights: np.ndarray | None = None
) -> np.ndarray | None:
    """Indices the top-k, then top-p, then min-p filters keep (None: all, every filter off).

    `log_weights`, when given, are the log-probabilities up to a constant (the scaled logits):
    the nucleus then buckets tokens without taking logarithms. Always keeps one token.
    """
    kept = None  # every token
    if 0 < params.top_k < probs.size:
        kept = top_indices(probs, params.top_k)  # largest first
    if params.top_p < 1.0:
        if kept is None:
            kept = nucleus(probs, params.top_p, log_weights)
        else:  # the nucleus of the renormalised top-k, already in order
            mass = np.cumsum(probs[kept])
            n = int(np.searchsorted(mass, params.top_p * mass[-1], side="left")) + 1
            kept = kept[: min(n, kept.size)]
    if params.min_p > 0.0:
        if kept is None:
            kept = np.flatnonzero(probs >= params.min_p * probs.max())
        else:
            kept = kept[probs[kept] >= params.min_p * probs[kept].max()]
    return kept


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


def _softmax64(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()
