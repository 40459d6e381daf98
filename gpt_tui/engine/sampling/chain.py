"""The stages in the user's order, and what each one did: the data of the sampler view.

`run_chain` is what the sampler draws from when anything beyond today's samplers is on;
`sampler_view` runs the same chain and keeps every stage's output, for the view that shows a
token's distribution at each stage. Both apply `active_stages(params)`, so the view shows
exactly the distribution a draw uses.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from gpt_tui.engine.sampling.draws import stage_uniform
from gpt_tui.engine.sampling.dry import DryBreakers
from gpt_tui.engine.sampling.params import SamplingParams
from gpt_tui.engine.sampling.select import softmax64, top_indices
from gpt_tui.engine.sampling.stages import STAGES, History, Stage

XTC_SALT = 0x5854_4300  # "XTC": XTC's coin is a stream of uniforms apart from the draws'


def active_stages(params: SamplingParams) -> list[Stage]:
    """The stages that run, in order: those named in `sampler_order` whose setting is on."""
    return [STAGES[name] for name in params.sampler_order if STAGES[name].on(params)]


def speculation_blocker(params: SamplingParams) -> str | None:
    """Why speculative decoding cannot run under these settings, or None.

    Every stage is exact under speculation: a position's distribution depends only on the
    tokens before it and state updated in token order (DRY, penalties, mirostat's mu), and its
    random choices on the seed and position only (the draw, XTC's coin). Banned strings are not:
    they rewind the text, which a verifying pass cannot undo.
    """
    if params.banned_strings:
        return "banned strings rewind the text, which speculative decoding cannot; it is off"
    return None


def history_for(
    context: Sequence[int],
    n_vocab: int,
    *,
    n_prompt: int = 0,
    dry_breakers: DryBreakers | np.ndarray | None = None,
    mu: float | None = None,
    xtc_fires: bool = True,
) -> History:
    """The history stages see after `context`: every token counts for the repetition penalty,
    those after the first `n_prompt` as generated (presence, frequency). With n_prompt 0, every
    token counts as generated (the `gpt-tui sampler` command's semantics)."""
    tokens = np.asarray(context, dtype=np.int64)
    seen = np.zeros(n_vocab, dtype=bool)
    seen[tokens] = True
    counts = np.bincount(tokens[n_prompt:], minlength=n_vocab).astype(np.int64)
    return History(seen, counts, tokens, dry_breakers, mu, xtc_fires)


def xtc_fires(params: SamplingParams, seed: int, position: int) -> bool:
    """Whether XTC acts at `position`: its own coin, from the seed and the position only."""
    return params.xtc_probability > 0.0 and (
        stage_uniform(seed, position, XTC_SALT) < params.xtc_probability
    )


def run_chain(
    logits: np.ndarray,
    params: SamplingParams,
    history: History,
    exclude: Collection[int] = (),
) -> np.ndarray:
    """The final logits [n_vocab] (float64, -inf where removed) after every active stage.

    `exclude` are tokens removed before any stage (a banned string's rewind excludes the token
    it began with, at that position only)."""
    z = logits.astype(np.float64)  # a copy: the caller's logits stay as they were
    if exclude:
        z[list(exclude)] = -np.inf
    for stage in active_stages(params):
        z = stage.apply(z, params, history)
    return z


@dataclass(frozen=True, eq=False)
class StageReport:
    """One stage's output: its logits and probabilities [n_vocab], how many tokens are still
    possible and the entropy (nats) of its distribution."""

    name: str
    logits: np.ndarray  # [n_vocab] float64, -inf where removed
    probs: np.ndarray  # [n_vocab] float64, 0 where removed; sums to 1
    kept: int
    entropy: float

    def top(self, ids: np.ndarray) -> np.ndarray:
        """The probabilities of `ids` after this stage (0 where removed)."""
        return self.probs[ids]


def report(name: str, z: np.ndarray) -> StageReport:
    probs = softmax64(z)
    nonzero = probs[probs > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum())
    return StageReport(name, z, probs, int(np.isfinite(z).sum()), max(entropy, 0.0))


@dataclass(frozen=True, eq=False)
class SamplerView:
    """A position's distribution at every stage.

    `stages` begins with "model" (the raw logits), then one report per active stage in `order`;
    `final` is the distribution the sampler draws from (the last stage's, named "final").
    `top_ids` are the model's k likeliest, likeliest first, to follow along every stage;
    `final_top_ids` the final distribution's own k likeliest. `speculation` says why
    speculative decoding is off under these settings (None: it can run).
    """

    order: tuple[str, ...]
    stages: tuple[StageReport, ...]
    final: StageReport
    top_ids: np.ndarray  # [k]
    final_top_ids: np.ndarray  # [k]
    speculation: str | None


def sampler_view(
    logits: np.ndarray,
    params: SamplingParams,
    context: Sequence[int] = (),
    k: int = 10,
    *,
    history: History | None = None,
    n_prompt: int = 0,
    seed: int | None = None,
    position: int | None = None,
    exclude: Collection[int] = (),
    dry_breakers: DryBreakers | np.ndarray | None = None,
) -> SamplerView:
    """The per-stage report of one position's raw logits [n_vocab] under `params`.

    The context (its tokens up to this position) feeds the penalties and DRY (`history_for`;
    pass `history` instead for a sampler's exact state, `Sampler.history`); `dry_breakers` is
    DRY's breakers (`dry.dry_breakers`; none without them). XTC's coin comes
    from `seed` and `position` as in generation; without them XTC is shown acting. Mirostat
    starts from mu = 2 tau unless `history` carries a later mu.
    """
    if not 1 <= k <= logits.size:
        raise ValueError(f"k must be in [1, {logits.size}], not {k}")
    params.check_vocabulary(logits.size)
    if history is None:
        fires = True if seed is None or position is None else xtc_fires(params, seed, position)
        history = history_for(
            context, logits.size, n_prompt=n_prompt, dry_breakers=dry_breakers, xtc_fires=fires
        )
    z = logits.astype(np.float64)
    if exclude:
        z[list(exclude)] = -np.inf
    reports = [report("model", z)]
    stages = active_stages(params)
    for stage in stages:
        z = stage.apply(z, params, history)
        reports.append(report(stage.name, z))
    last = reports[-1]
    final = StageReport("final", last.logits, last.probs, last.kept, last.entropy)
    return SamplerView(
        order=tuple(s.name for s in stages),
        stages=tuple(reports),
        final=final,
        top_ids=top_indices(reports[0].probs, k),
        final_top_ids=top_indices(final.probs, k),
        speculation=speculation_blocker(params),
    )
