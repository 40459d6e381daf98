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


def test_sharing_thresholds_that_share_the_same_matrices_are_one_candidate() -> None:
    mb = 1 << 20
    sizes = [7 * mb, 2 * mb, 9 * mb, 154 * mb]  # GPT-2 124M's: nothing below 1 MB
    shared = [c.min_bytes for c in plan.decode_candidates(2, sizes) if c.parts > 1]
    assert shared == [32 * mb, 4 * mb, 1 * mb]  # 0 shares what 1 MB does
    assert len(plan.decode_candidates(2)) == 2 + len(plan.SHARE_FROM)  # no sizes: all of them
    tiny = [c.min_bytes for c in plan.decode_candidates(2, [4096]) if c.parts > 1]
    assert tiny == [0]  # only sharing everything shares anything


def _times(one: float, two: float, four: float, eight: float, prefill: float) -> dict:
    kinds = ["decode, 1 row", "decode, 2 rows", "decode, 4 rows", "decode, 8 rows",
             "prefill, 256 rows"]  # fmt: skip
    return dict(zip(kinds, (one, two, four, eight, prefill), strict=True))


def test_the_layout_is_chosen_for_one_row_first_and_must_win_clearly() -> None:
    blocks = _times(30, 30, 36, 45, 50)
    # The Intel host's case: one row 25% faster, 8 rows 10% slower, the rest even: rows.
    rows = _times(23, 30, 36, 50, 50)
    assert plan.layout_score(rows, blocks) < 1
    assert plan.choose_layout({"blocks": blocks, "rows": rows}) == "rows"
    # 1% faster is noise: the layout kept on disk stays, nothing is rearranged.
    assert plan.choose_layout({"blocks": blocks, "rows": _times(29.7, 30, 36, 45, 50)}) == (
        "blocks"
    )
    # faster at one row but much slower at everything else: blocks.
    assert plan.choose_layout({"blocks": blocks, "rows": _times(27, 45, 54, 70, 75)}) == "blocks"
    # the AMD host's case, blocks faster throughout.
    assert plan.choose_layout({"blocks": blocks, "rows": _times(33, 33, 40, 50, 50)}) == "blocks"


def test_the_layout_score_weighs_one_row_as_much_as_the_rest() -> None:
    blocks = _times(1, 1, 1, 1, 1)
    assert plan.layout_score(_times(0.5, 1, 1, 1, 1), blocks) == 0.75
    assert plan.layout_score(_times(1, 0.5, 0.5, 0.5, 0.5), blocks) == 0.75
    assert plan.layout_score({"decode, 2 rows": 0.5}, {"decode, 2 rows": 1.0}) == 0.5
