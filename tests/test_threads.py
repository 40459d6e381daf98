"""The thread tuner's decisions, from given step durations."""

from __future__ import annotations

import os

import pytest
from threadpoolctl import threadpool_info

from gpt_tui.threads import PROBE_STEPS, REPROBE_EVERY, ThreadTuner, set_blas_threads


@pytest.fixture(autouse=True)
def _restore_blas_threads():
    yield
    set_blas_threads(os.cpu_count() or 1)


def blas_threads() -> int:
    return next(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


def test_keeps_the_faster_count_and_sets_blas_to_it() -> None:
    tuner = ThreadTuner(candidates=(2, 1))
    assert tuner.chosen == 2 and blas_threads() == 2
    for _ in range(PROBE_STEPS):
        tuner.record(0.040)  # two threads: slow (a busy machine)
    assert tuner.chosen == 1 and blas_threads() == 1  # now probing one thread
    for _ in range(PROBE_STEPS):
        tuner.record(0.025)
    assert tuner.chosen == 1 and blas_threads() == 1


def test_probes_again_later_and_can_change_its_mind() -> None:
    tuner = ThreadTuner(candidates=(2, 1))
    for seconds in [0.040] * PROBE_STEPS + [0.025] * PROBE_STEPS:
        tuner.record(seconds)
    assert tuner.chosen == 1
    for _ in range(REPROBE_EVERY):
        tuner.record(0.025)
    assert tuner.chosen == 2  # the machine may be idle again: try two threads first
    for seconds in [0.020] * PROBE_STEPS + [0.025] * PROBE_STEPS:
        tuner.record(seconds)
    assert tuner.chosen == 2 and blas_threads() == 2


def test_a_single_candidate_is_left_alone() -> None:
    tuner = ThreadTuner(candidates=(1,))
    for _ in range(50):
        tuner.record(1.0)
    assert tuner.chosen == 1


def test_step_times_consecutive_calls() -> None:
    tuner = ThreadTuner(candidates=(2, 1))
    tuner.step()  # starts the clock: no duration yet
    assert tuner._times[2] == []
    tuner.step()
    assert len(tuner._times[2]) == 1 and tuner._times[2][0] >= 0
