"""The sampler view's data: a stage-by-stage report of one position whose final distribution is
exactly the one the sampler draws from; and `draws`, which draws as the sampler does."""

from __future__ import annotations

import numpy as np
import pytest

from gpt_tui.engine.sampling import (
    Sampler,
    SamplingParams,
    draws,
    run_chain,
    sampler_view,
    speculation_blocker,
)

RNG = np.random.default_rng(3)
LOGITS = (RNG.standard_normal(5000) * 2.0).astype(np.float32)
LOGITS[RNG.integers(0, 5000, 20)] += RNG.uniform(3, 7, 20).astype(np.float32)
CONTEXT = RNG.integers(0, 5000, 200).tolist()
CONTEXT += CONTEXT[-30:-20]  # a repeat for DRY to see

CLASSIC = [
    SamplingParams(),
    SamplingParams(temperature=0),
    SamplingParams(temperature=0.6, top_k=40),
    SamplingParams(temperature=1.3, top_p=0.9),
    SamplingParams(top_k=300, top_p=0.95, min_p=0.02, repetition_penalty=1.2),
    SamplingParams(presence_penalty=0.8, frequency_penalty=0.3, min_p=0.1),
    SamplingParams(temperature=1.9, top_p=0.999),  # a nucleus of thousands
]
EVERYTHING = SamplingParams(
    temperature=1.1,
    top_k=500,
    top_p=0.97,
    min_p=0.01,
    repetition_penalty=1.1,
    typical_p=0.95,
    top_n_sigma=3.0,
    xtc_probability=0.5,
    xtc_threshold=0.05,
    dry_multiplier=0.8,
    dynatemp_range=0.3,
    mirostat_tau=6.0,
    logit_bias={5: 3.0},
    banned_tokens=[int(np.argmax(LOGITS))],
)
NEW = [
    SamplingParams(typical_p=0.5),
    SamplingParams(top_n_sigma=1.0, temperature=0.8),
    SamplingParams(xtc_probability=1.0, xtc_threshold=0.02),
    SamplingParams(dry_multiplier=2.0, dry_allowed_length=1),
    SamplingParams(dynatemp_range=0.8),
    SamplingParams(mirostat_tau=5.0),
    SamplingParams(top_p=0.8, temperature=1.5, sampler_order=("top_p", "temperature")),
    EVERYTHING,
]


def sampler_for(params: SamplingParams, seed: int = 11) -> Sampler:
    """A sampler whose state the view rebuilds: the context as prompt, no output yet."""
    return Sampler(LOGITS.size, CONTEXT, seed)


@pytest.mark.parametrize("params", CLASSIC + NEW, ids=range(len(CLASSIC + NEW)))
def test_the_views_final_distribution_is_the_samplers(params: SamplingParams) -> None:
    sampler = sampler_for(params)
    position = 7
    view = sampler_view(
        LOGITS, params, k=20, history=sampler.history(params, position)
    )  # the sampler's own state, as a front end would pass it for an exact view
    got = sampler.distribution(LOGITS, params, position)
    np.testing.assert_allclose(view.final.probs, got, atol=1e-12)
    assert view.final.kept == np.count_nonzero(got)
    assert [s.name for s in view.stages] == ["model", *view.order]


@pytest.mark.parametrize("params", CLASSIC, ids=range(len(CLASSIC)))
def test_todays_fast_path_equals_the_chain(params: SamplingParams) -> None:
    # the fast path keeps today's exact draws; the chain is what the view shows
    sampler = sampler_for(params)
    z = run_chain(LOGITS, params, sampler.history(params, 0))
    e = np.exp(z - z.max())
    np.testing.assert_allclose(sampler.distribution(LOGITS, params), e / e.sum(), atol=1e-12)


def test_each_stage_reports_what_it_kept_and_its_entropy() -> None:
    params = SamplingParams(temperature=0.7, top_k=50, top_p=0.9, min_p=0.05)
    view = sampler_view(LOGITS, params, CONTEXT, k=10)
    assert view.order == ("temperature", "top_k", "top_p", "min_p")
    kept = [s.kept for s in view.stages]
    assert kept[0] == kept[1] == LOGITS.size and kept[2] == 50
    assert kept[2] >= kept[3] >= kept[4] >= 1 and view.final.kept == kept[4]
    for stage in view.stages:
        p = stage.probs[stage.probs > 0]
        assert stage.entropy == pytest.approx(-(p * np.log(p)).sum())
        assert stage.probs.sum() == pytest.approx(1.0)
        assert np.all(stage.probs[np.isneginf(stage.logits)] == 0)
    # the model's own k likeliest, followed through every stage
    assert view.top_ids.tolist() == np.argsort(-LOGITS, kind="stable")[:10].tolist()
    assert view.stages[0].top(view.top_ids)[0] == view.stages[0].probs.max()
    assert view.final.probs[view.final_top_ids[0]] == view.final.probs.max()
    assert view.speculation is None


def test_the_view_sees_the_context_as_generated_text() -> None:
    # n_prompt 0: every context token counts for presence; with n_prompt the prompt does not
    params = SamplingParams(presence_penalty=2.0)
    token = CONTEXT[0]
    all_generated = sampler_view(LOGITS, params, CONTEXT, k=5)
    prompt_only = sampler_view(LOGITS, params, CONTEXT, k=5, n_prompt=len(CONTEXT))
    assert all_generated.final.logits[token] == pytest.approx(float(LOGITS[token]) - 2.0)
    assert prompt_only.final.logits[token] == pytest.approx(float(LOGITS[token]))


def chi_square(counts: np.ndarray, probs: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic over the tokens expected 5+ times, the rest pooled; and its df."""
    n = counts.sum()
    expected = probs * n
    big = expected >= 5
    observed = np.append(counts[big], counts[~big].sum())
    expect = np.append(expected[big], expected[~big].sum())
    keep = expect > 0
    return float(((observed[keep] - expect[keep]) ** 2 / expect[keep]).sum()), int(keep.sum()) - 1


@pytest.mark.parametrize(
    "params",
    [SamplingParams(temperature=0.8, top_p=0.9), NEW[0], NEW[3], NEW[4]],
    ids=["classic", "typical", "dry", "dynatemp"],
)
def test_the_sampler_draws_from_exactly_the_views_final_distribution(params) -> None:
    n = 20_000
    view = sampler_view(LOGITS, params, CONTEXT, k=10, n_prompt=len(CONTEXT))
    sampler = Sampler(LOGITS.size, CONTEXT, 2024)  # stateless across these positions
    counts = np.bincount(
        [sampler.sample(LOGITS, params, p)[0] for p in range(n)], minlength=LOGITS.size
    )
    statistic, df = chi_square(counts, view.final.probs)
    # about the 0.1% point of chi-square with df degrees of freedom (Wilson-Hilferty)
    critical = df * (1 - 2 / (9 * df) + 3.09 * np.sqrt(2 / (9 * df))) ** 3
    assert statistic < critical, (statistic, df)
    assert set(np.flatnonzero(counts)) <= set(np.flatnonzero(view.final.probs))


def test_the_chi_square_test_catches_a_distribution_that_is_not_the_samplers() -> None:
    params = SamplingParams(temperature=0.8, top_p=0.9)
    sampler = Sampler(LOGITS.size, [], 2024)
    counts = np.bincount(
        [sampler.sample(LOGITS, params, p)[0] for p in range(20_000)], minlength=LOGITS.size
    )
    wrong = sampler_view(LOGITS, params.replace(temperature=0.85), k=10).final.probs
    statistic, df = chi_square(counts, wrong)
    assert statistic > df * (1 - 2 / (9 * df) + 3.09 * np.sqrt(2 / (9 * df))) ** 3


def test_draws_count_exactly_the_samplers_draws() -> None:
    params = SamplingParams(temperature=1.2, top_k=100)
    final = sampler_view(LOGITS, params, k=5).final.probs
    counts = draws(final, 1000, seed=99)
    sampler = Sampler(LOGITS.size, [], 99)
    expected = np.bincount(
        [sampler.sample(LOGITS, params, p)[0] for p in range(1000)], minlength=LOGITS.size
    )
    assert counts.sum() == 1000
    np.testing.assert_array_equal(counts, expected)
    assert draws(final, 0, 1).sum() == 0
    with pytest.raises(ValueError, match="must be >= 0"):
        draws(final, -1, 1)


def test_only_banned_strings_turn_speculation_off_and_say_why() -> None:
    for params in CLASSIC + NEW:
        assert speculation_blocker(params) is None
    reason = speculation_blocker(SamplingParams(banned_strings=("the",)))
    assert reason and "banned strings" in reason and "\n" not in reason
    assert sampler_view(LOGITS, SamplingParams(banned_strings=("x",)), k=3).speculation == reason


def test_view_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"k must be in \[1, 5000\]"):
        sampler_view(LOGITS, SamplingParams(), k=0)
