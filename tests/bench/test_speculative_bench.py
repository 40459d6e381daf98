"""The speculative benchmark's figures: break-even acceptance, pass timings, case results."""

from __future__ import annotations

import pytest

from gpt_tui.bench.speculative import VerificationCost, measure_verification, run_case
from gpt_tui.engine import SamplingParams
from gpt_tui.engine.speculative import DraftModel, PromptLookup


def cost(ratios: dict[int, float], draft_ratio: float) -> VerificationCost:
    return VerificationCost(64, dict.fromkeys(ratios, 0.1), ratios, 0.01, draft_ratio)


def test_break_even_solves_tokens_per_pass_equal_to_the_cost() -> None:
    # free passes and free drafts: any acceptance pays
    assert cost({1: 1.0, 2: 1.0}, 0.0).break_even(1) == pytest.approx(0.0, abs=1e-9)
    # one draft costing half a step, a 2-position pass 1.1 steps: 1 + a = 1.6
    assert cost({1: 1.0, 2: 1.1}, 0.5).break_even(1) == pytest.approx(0.6)
    # k = 2: 1 + a + a^2 = 1.2 + 2 * 0.1 = 1.4  ->  a = (sqrt(2.6) - 1) / 2
    assert cost({1: 1.0, 3: 1.2}, 0.1).break_even(2) == pytest.approx((2.6**0.5 - 1) / 2)
    assert cost({1: 1.0, 2: 1.5}, 0.6).break_even(1) is None  # 2.1 > 2 tokens: never pays
    assert VerificationCost(64, {1: 0.1}, {1: 1.0}).break_even(1) is None  # no draft model


def test_pass_timings_cover_every_size(tiny_gpt2) -> None:
    measured = measure_verification(tiny_gpt2, positions=range(1, 4), rounds=2, draft=tiny_gpt2)
    assert set(measured.pass_s) == set(measured.ratios) == {1, 2, 3}
    # After 64 cached tokens by default, less what the largest pass needs in the tiny window.
    assert measured.context == tiny_gpt2.n_ctx - 3
    # Real passes, timed: seconds, not zeros or leftovers of a broken clock.
    assert all(0 < s < 10 for s in measured.pass_s.values())
    # The draft is the target itself: its step and the ratio to the target's step are measured.
    assert measured.draft_step_s is not None and 0 < measured.draft_step_s < 10
    assert measured.draft_ratio is not None and measured.draft_ratio > 0
    assert measured.break_even(1) is None or 0 <= measured.break_even(1) <= 1


@pytest.mark.parametrize("drafter", ["lookup", "model"])
def test_a_case_reports_identical_texts(tiny_gpt2, gpt2_tokenizer, drafter) -> None:
    make = PromptLookup if drafter == "lookup" else (lambda: DraftModel(tiny_gpt2))
    params = SamplingParams(temperature=0.9, seed=3, max_tokens=20)
    case = run_case(tiny_gpt2, gpt2_tokenizer, "x", "a b a b a b", params, make, rounds=2,
                    allowed_special="none")  # fmt: skip
    assert case.identical and case.tokens == 20
    assert case.plain_tok_s > 0 and case.speculative_tok_s > 0
    assert case.speedup == case.speculative_tok_s / case.plain_tok_s
    assert 0 <= case.acceptance <= 1 and case.tokens_per_pass >= 1
    if drafter == "model":  # itself: every draft holds (but costs a step: it seldom drafts)
        assert case.acceptance == 1.0
