"""Every sampling setting, its valid range and help, and the order the stages run in.

Each setting has an "off" value, its default: off, a stage is not in the chain at all, so it
costs nothing and leaves the logits bit-for-bit as they were.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
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
    # the samplers of issue 24, each off by default
    "typical_p": ParamRange(
        0.0, 1.0, 1.0, 0.01, low_open=True, help="locally typical sampling mass; 1 = off"
    ),
    "top_n_sigma": ParamRange(
        0.0, 10.0, 0.0, 0.1, help="keep logits within n standard deviations of the top; 0 = off"
    ),
    "xtc_probability": ParamRange(
        0.0, 1.0, 0.0, 0.01, help="chance that XTC removes the top choices at a step; 0 = off"
    ),
    "xtc_threshold": ParamRange(
        0.0, 1.0, 0.1, 0.01, help="XTC removes all but the least likely token above this"
    ),
    "dry_multiplier": ParamRange(
        0.0, 5.0, 0.0, 0.05, help="DRY: penalise extending a repeated sequence; 0 = off"
    ),
    "dry_base": ParamRange(
        1.0, 4.0, 1.75, 0.05, help="DRY: the penalty grows by this factor per repeated token"
    ),
    "dry_allowed_length": ParamRange(
        1, 50, 2, 1, integer=True, help="DRY: repeats this long or shorter are not penalised"
    ),
    "dry_penalty_last_n": ParamRange(
        -1,
        1_048_576,
        -1,
        64,
        integer=True,
        help="DRY: how many of the last tokens it looks at; -1 = the whole context, 0 = off",
    ),
    "dynatemp_range": ParamRange(
        0.0, 2.0, 0.0, 0.05, help="dynamic temperature: temperature +/- this by entropy; 0 = off"
    ),
    "dynatemp_exponent": ParamRange(
        0.0, 10.0, 1.0, 0.1, help="dynamic temperature: exponent of the normalised entropy"
    ),
    "mirostat_tau": ParamRange(
        0.0, 20.0, 0.0, 0.1, help="mirostat v2: target surprise in bits; 0 = off"
    ),
    "mirostat_eta": ParamRange(
        0.0, 1.0, 0.1, 0.01, low_open=True, help="mirostat v2: learning rate of its bound"
    ),
}

#: the settings that are not single numbers, with their help
LIST_SETTINGS: dict[str, str] = {
    "logit_bias": "token id -> bias in [-100, 100] added to its logit (OpenAI's logit_bias)",
    "banned_tokens": "token ids never drawn",
    "banned_strings": "texts never produced, in any case: generation rewinds to where one began "
    "and draws again",
    "dry_sequence_breakers": "texts that end a repeated sequence for DRY (a token holding one, "
    "or tokens spelling one)",
    "sampler_order": "the stages in the order they run, by name",
}

#: every stage a user can name, in the default order: today's (penalties, temperature, top-k,
#: top-p, min-p), the new truncations after them; the biases first, as llama.cpp applies them
DEFAULT_ORDER: tuple[str, ...] = (
    "logit_bias",
    "banned_tokens",
    "penalties",
    "dry",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "top_n_sigma",
    "xtc",
    "mirostat",
)

DRY_SEQUENCE_BREAKERS = ("\n", ":", '"', "*")  # text-generation-webui's and llama.cpp's default
LOGIT_BIAS_LIMIT = 100.0


def temperature_last(order: Iterable[str] = DEFAULT_ORDER) -> tuple[str, ...]:
    """The same order with temperature moved to the end (llama.cpp's and text-generation-webui's
    "temperature last": the truncations see the model's own distribution)."""
    order = tuple(order)
    return (*(name for name in order if name != "temperature"), "temperature")


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
    typical_p: float = 1.0
    top_n_sigma: float = 0.0
    xtc_probability: float = 0.0
    xtc_threshold: float = 0.1
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = -1  # llama.cpp's: -1 the whole context, 0 off
    dry_sequence_breakers: tuple[str, ...] = DRY_SEQUENCE_BREAKERS
    dynatemp_range: float = 0.0
    dynatemp_exponent: float = 1.0
    mirostat_tau: float = 0.0
    mirostat_eta: float = 0.1
    #: (token id, bias) pairs, sorted by id; a mapping is accepted and converted
    logit_bias: tuple[tuple[int, float], ...] = field(default=())
    banned_tokens: tuple[int, ...] = field(default=())
    banned_strings: tuple[str, ...] = field(default=())
    sampler_order: tuple[str, ...] = DEFAULT_ORDER

    def __post_init__(self) -> None:
        for name, spec in RANGES.items():
            object.__setattr__(self, name, _checked(name, getattr(self, name), spec))
        if self.seed is not None:
            if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
                raise ValueError(f"seed must be a whole number or None, not {self.seed!r}")
            if not 0 <= int(self.seed) < 2**63:
                raise ValueError(f"seed must be in [0, 2^63), not {self.seed}")
            object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "stop", _texts("stop sequences", self.stop))
        object.__setattr__(self, "banned_strings", _texts("banned strings", self.banned_strings))
        breakers = _texts("DRY sequence breakers", self.dry_sequence_breakers)
        object.__setattr__(self, "dry_sequence_breakers", breakers)
        object.__setattr__(self, "logit_bias", _logit_bias(self.logit_bias))
        banned = tuple(sorted(set(_token_ids("banned_tokens", self.banned_tokens))))
        object.__setattr__(self, "banned_tokens", banned)
        object.__setattr__(self, "sampler_order", _order(self.sampler_order))

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

    def check_vocabulary(self, n_vocab: int) -> None:
        """Raise ValueError if a biased or banned token is not in a vocabulary of n_vocab."""
        ids = [t for t, _ in self.logit_bias] + list(self.banned_tokens)
        outside = [t for t in ids if t >= n_vocab]
        if outside:
            raise ValueError(
                f"token {outside[0]} is not in this model's vocabulary of {n_vocab} tokens "
                "(logit_bias and banned_tokens take ids 0 to n_vocab - 1)"
            )


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


def _texts(what: str, value: Any) -> tuple[str, ...]:
    texts = (value,) if isinstance(value, str) else tuple(value)
    if any(not isinstance(s, str) or s == "" for s in texts):
        raise ValueError(f"{what} must be non-empty strings")
    return texts


def _token_ids(what: str, value: Any) -> list[int]:
    ids = [value] if isinstance(value, (int, np.integer)) else list(value)
    for t in ids:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
            raise ValueError(f"{what} takes token ids (whole numbers >= 0), not {t!r}")
    return [int(t) for t in ids]


def _logit_bias(value: Any) -> tuple[tuple[int, float], ...]:
    """Pairs sorted by token; JSON and TOML give string keys or lists of pairs, both accepted."""
    pairs = list(value.items()) if isinstance(value, Mapping) else [tuple(p) for p in value]
    out: dict[int, float] = {}
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"logit_bias takes (token, bias) pairs, not {pair!r}")
        token, bias = pair
        if isinstance(token, str) and token.strip().isdigit():
            token = int(token)
        (token,) = _token_ids("logit_bias", [token])
        if isinstance(bias, bool) or not isinstance(bias, (int, float, np.integer, np.floating)):
            raise ValueError(f"logit_bias of token {token} must be a number, not {bias!r}")
        if not -LOGIT_BIAS_LIMIT <= bias <= LOGIT_BIAS_LIMIT:
            raise ValueError(f"logit_bias of token {token} must be in [-100, 100], not {bias:g}")
        if token in out:
            raise ValueError(f"logit_bias gives token {token} twice")
        out[token] = float(bias)
    return tuple(sorted(out.items()))


def _order(value: Any) -> tuple[str, ...]:
    """Stage names, validated; "a,b,c" accepted (the CLI's form). Stages left out do not run."""
    names = tuple(s.strip() for s in value.split(",")) if isinstance(value, str) else tuple(value)
    for name in names:
        if name not in DEFAULT_ORDER:
            known = ", ".join(DEFAULT_ORDER)
            raise ValueError(f"unknown sampler stage {name!r} in sampler_order; known: {known}")
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"sampler_order names {twice!r} twice")
    return names
