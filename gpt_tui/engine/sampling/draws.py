"""The randomness of sampling: a uniform per (seed, position), and a draw from weights with it."""

from __future__ import annotations

import secrets

import numpy as np


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


def stage_uniform(seed: int, position: int, salt: int) -> float:
    """A second uniform for `position`, unrelated to the draw's: for a stage that flips a coin
    (XTC). Like the draw's, it depends on the seed and the position only, so speculative decoding
    stays exact."""
    return position_uniform(_splitmix64(seed ^ salt) >> 1, position)


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


def draws(final_probs: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Counts [n_vocab] of n draws from a final distribution, as `Sampler.sample` draws them.

    Draw i uses the uniform of position i under `seed`, and the draw runs over the possible
    tokens in vocabulary order, as the sampler's does: the picture of what randomness does to
    this distribution (the sampler view's "draws").
    """
    if n < 0:
        raise ValueError(f"the number of draws must be >= 0, not {n}")
    kept = np.flatnonzero(final_probs > 0)
    weights = final_probs[kept]
    counts = np.zeros(final_probs.size, dtype=np.int64)
    if n == 0 or kept.size == 0:
        return counts
    for i in range(n):
        counts[kept[draw_index(weights, position_uniform(seed, i))]] += 1
    return counts
