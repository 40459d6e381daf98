"""The sampling stages: each a small pure function from logits to logits, with a name.

A stage takes logits [n_vocab] (float64; a token removed by an earlier stage is -inf) and
returns new ones; a token it removes becomes -inf. What it did is read from its output (how
many tokens are still possible, the entropy), so every stage reports the same way. llama.cpp's
sampler chain (src/llama-sampling.cpp) is the model: one sampler per unit, each with a name a
user can type; ours are pure functions over logits instead of mutations of a candidate list.

A stage is in the chain only when its setting is on (`Stage.on`); off, it is not called, so it
costs nothing and leaves the logits bit-for-bit untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gpt_tui.engine.sampling.dry import DryBreakers, dry_penalties
from gpt_tui.engine.sampling.params import SamplingParams
from gpt_tui.engine.sampling.select import nucleus, softmax64, top_indices


@dataclass(frozen=True, eq=False)
class History:
    """What stages read besides the logits and the settings: the text so far and the state of
    the stateful ones, for one position."""

    seen: np.ndarray  # [n_vocab] bool: tokens of the prompt and output (repetition penalty)
    counts: np.ndarray  # [n_vocab] int64: occurrences in the output (presence, frequency)
    tokens: np.ndarray  # [n_context] int64: the context so far, oldest first (DRY)
    # DRY's sequence breakers (`dry.dry_breakers`; a bool mask [n_vocab] of breaker tokens will do)
    dry_breakers: DryBreakers | np.ndarray | None = None
    mu: float | None = None  # mirostat's bound on surprise (None: its start, 2 tau)
    xtc_fires: bool = True  # XTC's coin at this position (drawn from the seed and position)


Apply = Callable[[np.ndarray, SamplingParams, History], np.ndarray]


@dataclass(frozen=True)
class Stage:
    name: str
    on: Callable[[SamplingParams], bool]
    apply: Apply
    reference: str  # where its definition comes from


def _finite(z: np.ndarray) -> np.ndarray:
    return np.isfinite(z)


def _keep(z: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """z with every token outside `keep` (indices or a mask) removed."""
    out = np.full_like(z, -np.inf)
    out[keep] = z[keep]
    return out


def apply_penalties(
    z: np.ndarray, params: SamplingParams, seen: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Repetition, presence and frequency penalties, in place; only penalised tokens change.

    Repetition follows transformers' `RepetitionPenaltyLogitsProcessor` (divide a positive
    logit, multiply a negative one, for every token of the prompt and output); presence and
    frequency follow OpenAI (subtract per token generated, and per occurrence).
    """
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


def logit_bias(z: np.ndarray, params: SamplingParams, history: History) -> np.ndarray:
    """OpenAI's `logit_bias`: each listed token's logit plus its bias in [-100, 100]."""
    ids = np.array([t for t, _ in params.logit_bias], dtype=np.int64)
    params.check_vocabulary(z.size)
    out = z.copy()
    out[ids] += np.array([b for _, b in params.logit_bias])
    return out


def banned_tokens(z: np.ndarray, params: SamplingParams, history: History) -> np.ndarray:
    """The listed tokens removed (llama.cpp's logit bias of -inf; KoboldCpp's banned tokens)."""
    params.check_vocabulary(z.size)
    out = z.copy()
    out[list(params.banned_tokens)] = -np.inf
    if not np.isfinite(out).any():
        raise ValueError("every possible token is banned: nothing is left to draw")
    return out


def penalties(z: np.ndarray, params: SamplingParams, history: History) -> np.ndarray:
    """Repetition, presence and frequency penalties (`apply_penalties`)."""
    return apply_penalties(z.copy(), params, history.seen, history.counts)


def dry(z: np.ndarray, params: SamplingParams, history: History) -> np.ndarray:
    """DRY (engine/sampling/dry.py: text-generation-webui's and llama.cpp's definition)."""
    breakers = history.dry_breakers
    if breakers is None:
        breakers = np.zeros(z.size, dtype=bool)
    ids, amounts = dry_penalties(
        history.tokens, breakers, params.dry_multiplier, params.dry_base,
        params.dry_allowed_length, params.dry_penalty_last_n,
    )  # fmt: skip
    out = z.copy()
    out[ids] -= amounts
    return out


def temperature(z: np.ndarray, params: SamplingParams, history: History) -> np.ndarray:
    """Logits / temperature; 0 keeps only the top token (greedy), as llama.cpp's `temp` does.

    With `dynatemp_range` > 0, llama.cpp's `temp-ext` (dynamic temperature): the temperature
    runs from max(0, t - range) to t + range with the distribution's entropy normalised by its
    largest possible value, raised to `dynatemp_exponent`. (At temperature 0 it stays greedy.)
    """
    t = params.temperature
    if t > 0.0 and params.dynatemp_range > 0.0:
        finite = _finite(z)
        n = int(finite.sum())
        if n <= 1:
            return z.copy()
        low, high = max(0.0, t - params.dynatemp_range), t + params.dynatemp_range
        p = softmax64(z[finite])
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = float(-np.sum(np.where(p > 0, p * np.log(p), 0.0)))
        t = low + (high - low) * (entropy / math.log(n)) ** params.dynatemp_exponent
    if t <= 0.0:
        return _keep(z, np.array([np.argmax(z)]))
    return z / t


def top_k(z: np.ndarray, params: SamplingParams, history: History) -> np.ndarray:
    """The k likeliest tokens (transformers' `TopKLogitsWarper`, llama.cpp's `top-k`)."""
    if params.top_k >= int(_finite(z).sum()):
        return z.copy()
    return _keep(z, top_indices(z, params.top_k))


def top_p(z: np.ndarray, params: SamplingParams, history: History) -> np.ndarray:
    """The nucleus: the likeliest tokens whose mass first reaches top_p, the crossing one
    included (transformers' `TopPLogitsWarper`)."""
    return _keep(z, nucleus(softmax64(z), params.top_p, z))


def min_p(z: np.ndarray, params: SamplingParams, history: History) -> np.ndarray:
    """Tokens at least min_p times as likely as the top one (transformers' `MinPLogitsWarper`)."""
    probs = softmax64(z)
    return _keep(z, probs >= params.min_p * probs.max())


def typical_p(z: np.ndarray, params: SamplingParams, history: History) -> np.ndarray:
    """Locally typical sampling (Meister et al. 2022), as transformers' `TypicalLogitsWarper`:
    tokens ordered by how far their surprise is from the entropy, kept until their mass
    reaches typical_p (the crossing one included, and every token tied with it)."""
    finite = _finite(z)
    log_p = np.full_like(z, -np.inf)
    zf = z[finite]
    log_p[finite] = zf - (zf.max() + np.log(np.exp(zf - zf.max()).sum()))
    p = np.exp(log_p)
    entropy = -float(np.sum(log_p[finite] * p[finite]))
    shifted = np.abs(-log_p - entropy)  # inf for removed tokens: they sort last
    order = np.argsort(shifted, kind="stable")
    mass = np.cumsum(p[order])
    last = min(int((mass < params.typical_p).sum()), z.size - 1)
    remove = shifted > shifted[order[last]]
    remove[order[0]] = False  # transformers' min_tokens_to_keep = 1
    return np.where(remove, -np.inf, z)


def top_n_sigma(z: np.ndarray, params: SamplingParams, history: History) -> np.ndarray:
    """llama.cpp's `top-n-sigma` (Tang et al. 2024): keep logits within n standard deviations
    (of the possible tokens' logits) of the top one."""
    finite = _finite(z)
    if finite.sum() <= 1:
        return z.copy()
    zf = z[finite]
    return np.where(z < zf.max() - params.top_n_sigma * zf.std(), -np.inf, z)


def xtc(z: np.ndarray, params: SamplingParams, history: History) -> np.ndarray:
    """XTC, "exclude top choices" (llama.cpp's `xtc`, from text-generation-webui): with
    probability xtc_probability (the coin of this position), when two or more tokens are at
    least xtc_threshold likely, all of them but the least likely are removed. A threshold
    above 0.5 never acts (two tokens cannot both exceed it)."""
    if not history.xtc_fires or params.xtc_threshold > 0.5:
        return z.copy()
    probs = softmax64(z)
    above = np.flatnonzero(probs >= params.xtc_threshold)
    if above.size < 2:
        return z.copy()
    out = z.copy()
    out[np.delete(above, np.argmin(probs[above]))] = -np.inf
    return out


def mirostat(z: np.ndarray, params: SamplingParams, history: History) -> np.ndarray:
    """Mirostat v2 (Basu et al. 2021; llama.cpp's `mirostat-v2`): the tokens whose surprise,
    -log2 p, is at most mu (the top one at least). mu starts at 2 tau; after each draw it moves
    by eta times the error between the token's surprise and tau (`Sampler.observe`)."""
    mu = 2.0 * params.mirostat_tau if history.mu is None else history.mu
    probs = softmax64(z)
    keep = probs >= 2.0**-mu
    if not keep.any():
        keep[np.argmax(probs)] = True
    return _keep(z, keep)


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("logit_bias", lambda p: bool(p.logit_bias), logit_bias, "OpenAI logit_bias"),
        Stage("banned_tokens", lambda p: bool(p.banned_tokens), banned_tokens, "KoboldCpp"),
        Stage(
            "penalties",
            lambda p: (
                p.repetition_penalty != 1.0
                or p.presence_penalty != 0.0
                or p.frequency_penalty != 0.0
            ),
            penalties,
            "transformers RepetitionPenaltyLogitsProcessor; OpenAI presence/frequency",
        ),
        Stage(
            "dry",
            lambda p: p.dry_multiplier > 0.0 and p.dry_penalty_last_n != 0,
            dry,
            "text-generation-webui, llama.cpp",
        ),
        Stage(
            "temperature",
            lambda p: p.temperature != 1.0 or p.dynatemp_range > 0.0,
            temperature,
            "transformers TemperatureLogitsWarper; llama.cpp temp-ext",
        ),
        Stage("top_k", lambda p: p.top_k > 0, top_k, "transformers TopKLogitsWarper"),
        Stage("top_p", lambda p: p.top_p < 1.0, top_p, "transformers TopPLogitsWarper"),
        Stage("min_p", lambda p: p.min_p > 0.0, min_p, "transformers MinPLogitsWarper"),
        Stage(
            "typical_p", lambda p: p.typical_p < 1.0, typical_p, "transformers TypicalLogitsWarper"
        ),
        Stage("top_n_sigma", lambda p: p.top_n_sigma > 0.0, top_n_sigma, "llama.cpp top-n-sigma"),
        Stage("xtc", lambda p: p.xtc_probability > 0.0, xtc, "llama.cpp xtc"),
        Stage("mirostat", lambda p: p.mirostat_tau > 0.0, mirostat, "llama.cpp mirostat-v2"),
    )
}
