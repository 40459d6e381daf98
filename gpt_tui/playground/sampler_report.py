"""One position of a text under the sampling settings: the distribution after every stage.

What `gpt-tui sampler` prints. The logits come from one forward pass over the text up to the
position examined (its last row only); the stages are the engine's own (`sampler_view`), so the
`final` distribution is exactly the one generation draws from after that context. The text's
tokens up to the position are the context the penalties and DRY see, every one of them counted
as generated (presence and frequency), the repetition penalty as transformers applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpt_tui.engine.sampling import SamplerView, SamplingParams, draws, fresh_seed, sampler_view
from gpt_tui.engine.sampling.dry import DryBreakers
from gpt_tui.engine.sampling.dry import dry_breakers as breakers_of
from gpt_tui.engine.sampling.params import RANGES
from gpt_tui.errors import InputError

MAX_DRAWS = 1_000_000


@dataclass(frozen=True)
class Token:
    id: int
    text: str


@dataclass(frozen=True, eq=False)
class SamplerReport:
    """The sampler view of the token after `position` in `tokens`, and `counts` [n_vocab] of
    `n_draws` draws from the final distribution with `seed` (None without draws)."""

    tokens: tuple[Token, ...]
    position: int
    view: SamplerView
    n_draws: int
    seed: int | None
    counts: np.ndarray | None
    token_text: Any  # id -> text, for tokens beyond the text's own


def check_position(position: int | None, n_tokens: int, n_ctx: int) -> int:
    """The position examined (default: the last token); InputError outside the text."""
    if n_tokens == 0:
        raise InputError("nothing to sample after: the text is empty")
    position = n_tokens - 1 if position is None else position
    if not 0 <= position < n_tokens:
        raise InputError(
            f"position {position} is outside the text: its {n_tokens} tokens are 0-{n_tokens - 1}"
        )
    if position >= n_ctx:
        raise InputError(f"position {position} is beyond the model's context of {n_ctx}")
    return position


def dry_breakers(tokenizer: Any, n_vocab: int, params: SamplingParams) -> DryBreakers | None:
    """DRY's breakers for these settings (None when DRY is off: they cost a pass over the
    vocabulary's texts, tens of milliseconds)."""
    if params.dry_multiplier <= 0.0:
        return None
    return breakers_of(tokenizer, n_vocab, params.dry_sequence_breakers)


def position_logits(model: Any, ids: Sequence[int], position: int) -> np.ndarray:
    """The model's logits [n_vocab] for the token after `position`: one forward pass over the
    text up to it, its last row only."""
    return model.forward(list(ids[: position + 1]), last_only=True)[-1]


def sampler_report(
    model: Any,
    tokenizer: Any,
    ids: Sequence[int],
    params: SamplingParams,
    position: int | None = None,
    *,
    k: int = 10,
    n_draws: int = 0,
    seed: int | None = None,
    logits: np.ndarray | None = None,
) -> SamplerReport:
    """The report for the token after `position` (default: the last) of `ids`.

    `seed` is the run's seed: XTC's coin at this position comes from it as in generation (the
    token after `position` is drawn at position + 1), and so do the draws. Without a seed, XTC
    is shown acting and the draws use a fresh seed (the report says which). `logits` spares
    the forward pass when the caller has them (a slider moved: only the stages run again).
    """
    position = check_position(position, len(ids), model.n_ctx)
    if not 0 <= n_draws <= MAX_DRAWS:
        raise InputError(f"draws must be in [0, {MAX_DRAWS:,}], not {n_draws}")
    if not 1 <= k <= model.n_vocab:
        raise InputError(f"top must be in [1, {model.n_vocab}], not {k}")
    try:
        params.check_vocabulary(model.n_vocab)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if logits is None:
        logits = position_logits(model, ids, position)
    context = ids[: position + 1]
    view = sampler_view(
        logits,
        params,
        context,
        k,
        seed=seed,
        position=None if seed is None else position + 1,
        dry_breakers=dry_breakers(tokenizer, model.n_vocab, params),
    )
    draw_seed = fresh_seed() if seed is None else seed
    counts = draws(view.final.probs, n_draws, draw_seed) if n_draws else None
    tokens = tuple(Token(int(i), tokenizer.token_text(int(i))) for i in ids)
    return SamplerReport(tokens, position, view, n_draws, draw_seed if n_draws else seed,
                         counts, tokenizer.token_text)  # fmt: skip


def _entry(report: SamplerReport, stage_logits: np.ndarray, probs: np.ndarray, i: int) -> dict:
    logit = float(stage_logits[i])
    return {
        "id": int(i),
        "text": report.token_text(int(i)),
        "p": float(probs[i]),
        "logit": logit if np.isfinite(logit) else None,
    }


def report_json(report: SamplerReport, params: SamplingParams | None = None) -> dict[str, Any]:
    """The `gpt-tui sampler --json` object (issue 24's contract, and `settings`: the settings
    that differ from off)."""
    view = report.view
    out: dict[str, Any] = {
        "tokens": [{"id": t.id, "text": t.text} for t in report.tokens],
        "position": report.position,
        "order": list(view.order),
        "stages": [
            {
                "name": s.name,
                "kept": s.kept,
                "entropy": _nats(s.entropy),
                "top": [_entry(report, s.logits, s.probs, i) for i in view.top_ids],
            }
            for s in view.stages
        ],
        "final": {
            "kept": view.final.kept,
            "entropy": _nats(view.final.entropy),
            "top": [
                _entry(report, view.final.logits, view.final.probs, i) for i in final_top(view)
            ],
        },
    }
    if report.counts is not None:
        drawn = np.flatnonzero(report.counts)
        drawn = drawn[np.argsort(-report.counts[drawn], kind="stable")]
        out["draws"] = {
            "n": report.n_draws,
            "seed": report.seed,
            "counts": [
                {"id": int(i), "text": report.token_text(int(i)), "count": int(report.counts[i])}
                for i in drawn
            ],
        }
    if params is not None:
        out["settings"] = changed_settings(params)
    return out


def final_top(view: SamplerView) -> list[int]:
    """The final distribution's own likeliest tokens: at most K, and only possible ones."""
    return [int(i) for i in view.final_top_ids if view.final.probs[i] > 0.0]


def _nats(entropy: float) -> float:
    return max(entropy, 0.0) + 0.0  # never -0.0 (one token left)


def changed_settings(params: SamplingParams) -> dict[str, Any]:
    """The settings that differ from off, as JSON values (the seed and max_tokens left out:
    they do not shape a distribution)."""
    defaults = SamplingParams()
    out: dict[str, Any] = {}
    for name in (*RANGES, "logit_bias", "banned_tokens", "banned_strings",
                 "dry_sequence_breakers", "sampler_order"):  # fmt: skip
        if name in ("max_tokens",):
            continue
        value = getattr(params, name)
        if value != getattr(defaults, name):
            if isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[name] = value
    return out
