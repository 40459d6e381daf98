"""The decode tuner's decisions, from given step durations."""

from __future__ import annotations

import numpy as np

from gpt_tui.engine import GPT2
from gpt_tui.engine.cores import Settings, Split
from gpt_tui.engine.plan import Plan
from gpt_tui.engine.plan.tuner import (
    PROBE_STEPS,
    REPROBE_EVERY,
    DecodeTuner,
    settle_tuner,
    tuner_for,
)

FAST, SLOW = Settings(decode={1: Split(parts=2)}), Settings()


def test_tuner_keeps_the_faster_settings() -> None:
    tuner = DecodeTuner((FAST, SLOW))
    assert tuner.settings == FAST
    for _ in range(PROBE_STEPS):
        tuner.record(0.040)  # sharing: slow (a busy machine)
    assert tuner.settings == SLOW  # now probing one core
    for _ in range(PROBE_STEPS):
        tuner.record(0.025)
    assert tuner.settings == SLOW


def test_tuner_checks_again_after_a_while() -> None:
    tuner = DecodeTuner((FAST, SLOW))
    for seconds in [0.040] * PROBE_STEPS + [0.025] * PROBE_STEPS:
        tuner.record(seconds)
    assert tuner.settings == SLOW
    for _ in range(REPROBE_EVERY):
        tuner.record(0.025)
    assert tuner.settings == FAST  # the machine may be idle again: try the plan's choice first
    for seconds in [0.020] * PROBE_STEPS + [0.025] * PROBE_STEPS:
        tuner.record(seconds)
    assert tuner.settings == FAST


def test_a_plan_that_uses_one_core_needs_no_tuning() -> None:
    p = Plan(Settings(), key={})
    tuner = tuner_for(p)
    for _ in range(3 * PROBE_STEPS):
        tuner.record(1.0)
    assert tuner.candidates == (Settings(),)


def test_deciding_lasts_until_every_candidate_was_probed() -> None:
    tuner = DecodeTuner((FAST, SLOW))
    for _ in range(2 * PROBE_STEPS):
        assert tuner.deciding
        tuner.record(0.030)
    assert not tuner.deciding
    assert not DecodeTuner((SLOW,)).deciding  # nothing to choose between


def test_settling_the_tuner_leaves_the_cache_as_it_was(tiny_gpt2: GPT2, tiny_params: dict) -> None:
    """Benchmarks decode past the probing before they time (its steps are a transient)."""
    model = GPT2(tiny_params, tiny_gpt2.hparams, plan=Plan(FAST, key={}))
    cache = model.new_cache()
    model.forward(np.arange(5), cache)
    settle_tuner(model, cache)
    assert not model.planned.tuner.deciding
    assert cache.length == 5 and cache.tokens() == list(range(5))
