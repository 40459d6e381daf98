"""Drawing tokens for one stream: the sampler's state, and the draw from the chain's result.

When only today's samplers are on, in today's order (penalties, temperature, top-k, top-p,
min-p), the draw runs on the few kept tokens, as it always has: the same weights, so a seed
gives the same text as before the chain existed, and no full-vocabulary pass per stage. Any
other stage, or another order, runs the chain (chain.py) over the whole vocabulary; both give
the same distribution (tested), the one the sampler view shows.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np

from gpt_tui.engine.sampling.chain import active_stages, run_chain, xtc_fires
from gpt_tui.engine.sampling.draws import draw_index, fresh_seed, position_uniform
from gpt_tui.engine.sampling.dry import DryBreakers
from gpt_tui.engine.sampling.params import SamplingParams
from gpt_tui.engine.sampling.select import nucleus, softmax64, top_indices
from gpt_tui.engine.sampling.stages import STAGES, History, apply_penalties

_CLASSIC = ("penalties", "temperature", "top_k", "top_p", "min_p")


def _classic_only(params: SamplingParams) -> bool:
    """Whether exactly today's samplers run, in today's order (the fast path applies)."""
    if params.dynatemp_range > 0.0:
        return False
    names = [stage.name for stage in active_stages(params)]
    return names == [name for name in _CLASSIC if name in names] and all(
        name in names for name in _CLASSIC if STAGES[name].on(params)
    )


class Sampler:
    """Draws tokens for one stream; remembers what the stages need of the text so far.

    Repetition penalty follows HF (every token of the prompt and the output so far); presence and
    frequency penalties follow OpenAI (counts of tokens generated so far); DRY sees the whole
    context; mirostat's mu moves after each token observed.

    Each draw's randomness comes from the seed and the position drawn for (`position_uniform`),
    not from one shared stream: a position gets the same draw however many other draws were
    made before it, so speculative decoding, which draws for several positions in one pass and
    may draft and discard, gives the same text as plain decoding. Without a seed, a fresh one
    is drawn once per sampler (`seed` holds it).
    """

    def __init__(
        self,
        n_vocab: int,
        prompt_ids: list[int],
        seed: int | None,
        dry_breakers: DryBreakers | None = None,
    ) -> None:
        self.n_vocab = n_vocab
        self.seen = np.zeros(n_vocab, dtype=bool)
        self.seen[np.asarray(prompt_ids, dtype=np.int64)] = True
        self.counts = np.zeros(n_vocab, dtype=np.int64)
        self.seed = fresh_seed() if seed is None else seed
        # the context for DRY, grown by doubling: appending costs nothing per token
        self._tokens = np.zeros(max(64, 2 * len(prompt_ids)), dtype=np.int64)
        self._tokens[: len(prompt_ids)] = prompt_ids
        self.n_tokens = len(prompt_ids)
        self.dry_breakers = dry_breakers  # None: no breakers
        self.mu: float | None = None  # mirostat's bound; None: its start, 2 tau
        self._mu_tau = 0.0
        self._pending: tuple[int, float, float, float] | None = None  # token, p, tau, eta
        # whether the last settings seen take the fast path: the same settings object comes
        # back token after token, so the check costs nothing once
        self._fast_for: tuple[SamplingParams | None, bool] = (None, False)

    @property
    def tokens(self) -> np.ndarray:
        """The context so far [n_tokens]: the prompt, then every token observed."""
        return self._tokens[: self.n_tokens]

    def observe(self, token_id: int) -> None:
        self.seen[token_id] = True
        self.counts[token_id] += 1
        if self.n_tokens == self._tokens.size:
            self._tokens = np.concatenate([self._tokens, np.zeros_like(self._tokens)])
        self._tokens[self.n_tokens] = token_id
        self.n_tokens += 1
        if self._pending is not None and self._pending[0] == token_id:
            # mirostat v2's update: mu -= eta * (observed surprise - tau), in bits
            _, p, tau, eta = self._pending
            mu = 2.0 * tau if self.mu is None else self.mu
            self.mu = mu - eta * (-math.log2(p) - tau)
        self._pending = None

    def copy(self) -> Sampler:
        """An independent sampler in the same state (a draft that may be thrown away)."""
        other = Sampler.__new__(Sampler)
        other.__dict__.update(self.__dict__)
        other.seen, other.counts, other._tokens = (
            self.seen.copy(),
            self.counts.copy(),
            self._tokens.copy(),
        )
        return other

    def history(self, params: SamplingParams, position: int) -> History:
        """What the stages see when drawing for `position` under `params`."""
        if params.mirostat_tau != self._mu_tau:  # a new target: mirostat starts again
            self.mu, self._mu_tau = None, params.mirostat_tau
        return History(
            self.seen,
            self.counts,
            self.tokens,
            self.dry_breakers,
            self.mu,
            xtc_fires(params, self.seed, position),
        )

    def distribution(
        self,
        logits: np.ndarray,
        params: SamplingParams,
        position: int = 0,
        exclude: Collection[int] = (),
    ) -> np.ndarray:
        """The final sampling distribution [n_vocab] (float64, sums to 1) for these logits."""
        kept, weights = self._kept(logits, params, position, exclude)
        probs = np.zeros(self.n_vocab)
        probs[kept] = weights / weights.sum()
        return probs

    def sample(
        self,
        logits: np.ndarray,
        params: SamplingParams,
        position: int,
        exclude: Collection[int] = (),
    ) -> tuple[int, float]:
        """Draw the token at `position`; returns it and its probability under the sampling
        distribution. `exclude`: tokens not possible at this position only."""
        kept, weights = self._kept(logits, params, position, exclude)
        i = draw_index(weights, position_uniform(self.seed, position)) if kept.size > 1 else 0
        token, prob = int(kept[i]), float(weights[i] / weights.sum())
        self._pending = None
        if params.mirostat_tau > 0.0 and "mirostat" in params.sampler_order:
            self._pending = (token, prob, params.mirostat_tau, params.mirostat_eta)
        return token, prob

    def _kept(
        self,
        logits: np.ndarray,
        params: SamplingParams,
        position: int,
        exclude: Collection[int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """The tokens the stages keep, in vocabulary order, and their unnormalised weights.

        Working on the few kept tokens rather than on masks over the whole vocabulary keeps
        sampling a small part of a decode step (each full-vocabulary pass costs 10-100 us).
        """
        if self._fast_for[0] is not params:
            self._fast_for = (params, _classic_only(params))
        if exclude or not self._fast_for[1]:
            z = run_chain(logits, params, self.history(params, position), exclude)
            kept = np.flatnonzero(z > -np.inf)
            return kept, np.exp(z[kept] - z[kept].max())
        z = apply_penalties(logits.astype(np.float64), params, self.seen, self.counts)
        if params.greedy:
            token = np.argmax(z)
            return np.array([token]), np.ones(1)
        z /= params.temperature
        probs = softmax64(z)
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
