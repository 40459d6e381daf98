"""Sampler semantics: each setting does what it says, and only that."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpt_tui.engine import Sampler, SamplingParams
from gpt_tui.engine.sampling import apply_penalties, filter_probs, nucleus, top_indices

LOGITS = np.array([2.0, 1.0, 0.5, -1.0, 3.0, 0.0], dtype=np.float32)


def probs_of(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits.astype(np.float64) - logits.max())
    return e / e.sum()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"temperature": -0.1}, r"temperature must be in \[0, 2\]"),
        ({"temperature": math.nan}, "temperature must be a finite number"),
        ({"temperature": math.inf}, "temperature must be a finite number"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"min_p": 1.0}, r"min_p must be in \[0, 1\)"),
        ({"top_k": -1}, "top_k must be in"),
        ({"top_k": 2.5}, "top_k must be a whole number"),
        ({"max_tokens": 0}, r"max_tokens must be in \[1, 65536\]"),
        ({"max_tokens": -5}, "max_tokens must be in"),
        ({"repetition_penalty": 0.0}, r"repetition_penalty must be in \(0, 3\]"),
        ({"presence_penalty": 2.5}, r"presence_penalty must be in \[-2, 2\]"),
        ({"frequency_penalty": -3}, "frequency_penalty must be in"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"seed": -1}, "seed must be in"),
        ({"seed": 1.5}, "seed must be a whole number"),
        ({"stop": ["ok", ""]}, "stop sequences must be non-empty"),
    ],
)
def test_out_of_range_values_name_the_parameter_and_range(changes, message) -> None:
    with pytest.raises(ValueError, match=message):
        SamplingParams(**changes)


def test_defaults_are_all_off_and_stop_becomes_a_tuple() -> None:
    params = SamplingParams(stop=["\n"], top_k=5.0)
    assert params.stop == ("\n",) and params.top_k == 5 and isinstance(params.top_k, int)
    probs = probs_of(LOGITS)
    np.testing.assert_allclose(Sampler(6, [], 0).distribution(LOGITS, SamplingParams()), probs)
    assert params.replace(temperature=0.5).temperature == 0.5
    with pytest.raises(ValueError, match="unknown sampling parameter"):
        params.replace(temprature=0.5)


def test_temperature_zero_is_greedy_and_top_k_one_equals_greedy() -> None:
    greedy = Sampler(6, [], 0)
    top1 = Sampler(6, [], 123)
    for position in range(5):
        assert greedy.sample(LOGITS, SamplingParams(temperature=0), position) == (4, 1.0)
        assert top1.sample(LOGITS, SamplingParams(top_k=1, temperature=1.5), position)[0] == 4


def test_temperature_scales_the_logits() -> None:
    dist = Sampler(6, [], 0).distribution(LOGITS, SamplingParams(temperature=0.5))
    np.testing.assert_allclose(dist, probs_of(LOGITS / 0.5))


def test_top_k_keeps_exactly_k_likeliest() -> None:
    dist = filter_probs(probs_of(LOGITS), SamplingParams(top_k=3))
    assert set(np.flatnonzero(dist)) == {4, 0, 1}
    np.testing.assert_allclose(dist.sum(), 1.0)
    kept = probs_of(LOGITS)[[4, 0, 1]]
    np.testing.assert_allclose(dist[[4, 0, 1]], kept / kept.sum())


def test_top_k_larger_than_vocabulary_keeps_everything() -> None:
    dist = filter_probs(probs_of(LOGITS), SamplingParams(top_k=50000))
    np.testing.assert_allclose(dist, probs_of(LOGITS))


def test_tiny_top_p_keeps_one_token_and_top_p_keeps_the_crossing_token() -> None:
    probs = probs_of(LOGITS)
    assert np.flatnonzero(filter_probs(probs, SamplingParams(top_p=1e-6))).tolist() == [4]
    order = np.argsort(-probs)
    mass = np.cumsum(probs[order])
    top_p = float(mass[1]) + 0.01  # just past the first two: the third is needed to reach it
    assert set(np.flatnonzero(filter_probs(probs, SamplingParams(top_p=top_p)))) == set(order[:3])


def test_nucleus_grows_its_candidate_set_on_a_flat_distribution() -> None:
    probs = np.full(4096, 1 / 4096)  # exact in binary, so the mass reaches 0.5 exactly at 2048
    assert nucleus(probs, 0.5).size == 2048  # far beyond the first 64 candidates


def test_min_p_drops_tokens_below_a_fraction_of_the_top() -> None:
    probs = probs_of(LOGITS)
    dist = filter_probs(probs, SamplingParams(min_p=0.3))
    assert set(np.flatnonzero(dist)) == set(np.flatnonzero(probs >= 0.3 * probs.max()))


def test_filters_apply_in_order_top_k_then_top_p() -> None:
    probs = np.array([0.4, 0.3, 0.2, 0.1])
    # top_k=2 keeps {0, 1} (mass 0.7); top_p=0.5 of that renormalised mass needs both
    dist = filter_probs(probs, SamplingParams(top_k=2, top_p=0.5))
    assert set(np.flatnonzero(dist)) == {0}  # 0.4/0.7 = 0.57 >= 0.5: one token suffices


def test_repetition_penalty_changes_exactly_the_seen_logits() -> None:
    z = np.array([2.0, -2.0, 1.0, -1.0])
    seen = np.array([True, True, False, False])
    out = apply_penalties(z.copy(), SamplingParams(repetition_penalty=2.0), seen, np.zeros(4))
    np.testing.assert_array_equal(out, [1.0, -4.0, 1.0, -1.0])


def test_presence_and_frequency_penalties_follow_openai() -> None:
    z = np.zeros(4)
    counts = np.array([0, 1, 3, 0])
    params = SamplingParams(presence_penalty=0.5, frequency_penalty=0.25)
    out = apply_penalties(z.copy(), params, np.zeros(4, dtype=bool), counts)
    np.testing.assert_allclose(out, [0.0, -0.75, -1.25, 0.0])


def test_sampler_counts_prompt_for_repetition_and_output_for_presence() -> None:
    sampler = Sampler(6, prompt_ids=[0], seed=0)
    sampler.observe(4)
    params = SamplingParams(repetition_penalty=2.0, presence_penalty=1.0)
    dist = sampler.distribution(LOGITS, params)
    expected = LOGITS.astype(np.float64).copy()
    expected[[0, 4]] /= 2.0  # both seen: prompt token 0, generated token 4
    expected[4] -= 1.0  # only generated tokens carry the presence penalty
    np.testing.assert_allclose(dist, probs_of(expected))


def test_same_seed_same_tokens_and_different_seed_differs() -> None:
    logits = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    params = SamplingParams(temperature=1.2, top_p=0.95)

    def draws(seed: int | None) -> list[int]:
        sampler = Sampler(1000, [], seed)
        return [sampler.sample(logits, params, position)[0] for position in range(50)]

    assert draws(42) == draws(42)
    assert draws(42) != draws(43)
    assert draws(None) != draws(None)  # no seed: a fresh one for each sampler


def test_a_positions_draw_depends_on_the_seed_and_position_only() -> None:
    # what lets speculative decoding draw for several positions at once, in any order
    logits = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    params = SamplingParams(temperature=1.0)
    in_order = [Sampler(1000, [], 7).sample(logits, params, p)[0] for p in range(30)]
    sampler = Sampler(1000, [], 7)
    backwards = [sampler.sample(logits, params, p)[0] for p in reversed(range(30))]
    assert backwards[::-1] == in_order
    assert Sampler(1000, [], None).seed != Sampler(1000, [], None).seed


def test_position_uniforms_are_uniform_and_unrelated_between_neighbours() -> None:
    from gpt_tui.engine.sampling import position_uniform

    u = np.array([position_uniform(3, p) for p in range(20000)])
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.003
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.03
    across_seeds = np.array([position_uniform(s, 5) for s in range(20000)])
    assert abs(np.corrcoef(u, across_seeds)[0, 1]) < 0.03


def test_draws_follow_the_distribution() -> None:
    sampler = Sampler(6, [], 0)
    counts = np.bincount(
        [sampler.sample(LOGITS, SamplingParams(), p)[0] for p in range(20000)], minlength=6
    )
    np.testing.assert_allclose(counts / counts.sum(), probs_of(LOGITS), atol=0.015)


def test_top_indices_are_sorted_largest_first() -> None:
    assert top_indices(np.array([1.0, 5.0, 3.0, 4.0]), 3).tolist() == [1, 3, 2]


def test_two_level_draw_equals_a_plain_cumulative_search() -> None:
    from gpt_tui.engine.sampling import draw_index

    rng = np.random.default_rng(0)
    weights = rng.random(50257) ** 8  # very uneven, like a model's distribution
    weights[rng.integers(0, 50257, 5000)] = 0.0
    cdf = np.cumsum(weights)
    for u in [0.0, 1e-12, *rng.random(500), 0.999999999]:
        expected = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
        got = draw_index(weights, u)
        assert weights[got] > 0
        # identical, but for float rounding at a block edge (then a neighbour of equal cdf)
        assert got == expected or abs(cdf[got] - cdf[min(expected, 50256)]) < 1e-9


def test_zero_weights_are_never_drawn() -> None:
    from gpt_tui.engine.sampling import draw_index

    weights = np.zeros(3000)
    weights[[7, 2999]] = 1.0
    assert {draw_index(weights, u) for u in np.linspace(0, 0.999999, 200)} == {7, 2999}


@pytest.mark.parametrize("shape", ["flat", "peaked", "zipf", "ties"])
def test_nucleus_equals_the_sorted_definition(shape: str) -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        if shape == "flat":
            probs = rng.random(50257) + 0.5
        elif shape == "peaked":
            probs = np.exp(rng.standard_normal(50257) * 4)
        elif shape == "zipf":
            probs = 1 / rng.permutation(np.arange(1, 50258)) ** 1.2
        else:
            probs = rng.integers(1, 4, 50257).astype(float)  # many exact ties
        probs /= probs.sum()
        top_p = float(rng.uniform(0.05, 0.99))
        order = np.argsort(-probs, kind="stable")
        n_keep = int(np.searchsorted(np.cumsum(probs[order]), top_p, side="left")) + 1
        got = nucleus(probs, top_p)
        assert got.size == n_keep
        assert np.isclose(probs[got].sum(), probs[order[:n_keep]].sum())
        if shape != "ties":  # with ties, which of the equal tokens is kept may differ
            assert set(got.tolist()) == set(order[:n_keep].tolist())
