"""Choosing among candidates, from injected timings (nothing timed here)."""

from __future__ import annotations

from gpt_tui.engine.cores import ONE_CORE, Split
from gpt_tui.engine.plan import choice as plan
from gpt_tui.engine.plan.choice import choose


def test_the_fastest_candidate_is_chosen() -> None:
    assert choose({"a": 3.0, "b": 1.0, "c": 2.0}) == "b"


def test_more_cores_must_win_clearly() -> None:
    one, shared = ONE_CORE, Split(parts=2)
    # 1% faster on two cores is noise: keep the core free
    assert choose({one: 1.00, shared: 0.99}, plan.cores_used) == one
    assert choose({one: 1.00, shared: 0.80}, plan.cores_used) == shared
    # but a cheaper candidate that is slower never wins
    assert choose({one: 1.00, shared: 1.20}, plan.cores_used) == one


def test_candidates_on_one_core_machines_are_one_core_only() -> None:
    assert plan.decode_candidates(1) == [ONE_CORE]
    assert plan.prefill_candidates(1) == [ONE_CORE]
    assert all(plan.cores_used(c) <= 4 for c in plan.decode_candidates(4))
    assert Split(parts=4) in plan.decode_candidates(4)


def test_a_plan_mixes_blas_threads_with_helpers_only_when_blas_threads_sleep() -> None:
    one, blas, shared = ONE_CORE, Split(blas_threads=2), Split(parts=2)
    times = {
        "decode": {one: 1.0, blas: 0.9, shared: 0.5},  # helpers win decode
        "prefill": {one: 1.0, blas: 0.5, shared: 0.6},  # BLAS threads win the prefill
    }
    chosen = {kind: choose(t, plan.cores_used) for kind, t in times.items()}
    assert chosen == {"decode": shared, "prefill": blas}
    assert plan.one_mechanism(chosen, times) == {"decode": shared, "prefill": shared}
    # idle BLAS threads that sleep at once cost nothing at a switch: each kind keeps its best
    assert plan.one_mechanism(chosen, times, spinning=False) == chosen
    # without helpers anywhere, BLAS threads stay where they won
    only_blas = {"decode": {one: 1.0, blas: 0.5}, "prefill": {one: 1.0, blas: 0.5}}
    chosen = {kind: choose(t, plan.cores_used) for kind, t in only_blas.items()}
    assert plan.one_mechanism(chosen, only_blas) == {"decode": blas, "prefill": blas}
