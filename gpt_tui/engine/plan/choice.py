"""The candidates for each kind of work, how they are timed, and how one is chosen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gpt_tui.engine.cores import ONE_CORE, Split

SHARE_FROM = (32 << 20, 4 << 20, 1 << 20, 0)  # candidate thresholds for sharing a product
ROUNDS = 3
CLEAR_WIN = 0.03
"""A candidate using more cores must be this much faster than one using fewer to be chosen:
a core left free serves the UI thread and the rest of the machine."""


def decode_candidates(n_cores: int, sizes: list[int] | None = None) -> list[Split]:
    """One core, BLAS's threads, and sharing from each threshold; given the matrices' `sizes`
    (bytes), only thresholds that share a different set of them (on GPT-2 124M, 1 MB and 0 share
    the same matrices: timing both would measure one candidate twice)."""
    if n_cores < 2:
        return [ONE_CORE]
    parts = min(n_cores, 8)
    thresholds = list(SHARE_FROM)
    if sizes is not None:
        shared_sets = {}
        for size in thresholds:  # the largest threshold sharing each distinct set is kept
            shared_sets.setdefault(frozenset(i for i, s in enumerate(sizes) if s >= size), size)
        thresholds = [size for shared, size in shared_sets.items() if shared]
    return [
        ONE_CORE,
        Split(blas_threads=n_cores),
        *(Split(parts=parts, min_bytes=size) for size in thresholds),
    ]


def prefill_candidates(n_cores: int) -> list[Split]:
    if n_cores < 2:
        return [ONE_CORE]
    return [Split(blas_threads=n_cores), ONE_CORE, Split(parts=min(n_cores, 8))]


def cores_used(split: Split) -> int:
    return max(split.blas_threads, split.parts)


def choose(times: dict[Any, float], cost: Callable[[Any], int] | None = None) -> Any:
    """The candidate with the least time; one that uses more resources (a larger `cost`) must
    beat the ones using fewer by CLEAR_WIN to be chosen. Deterministic for given times."""
    cost = cost or (lambda candidate: 0)
    ordered = sorted(times, key=lambda c: (cost(c), times[c]))  # cheapest first
    best = ordered[0]
    for candidate in ordered[1:]:
        if times[candidate] < times[best] * (1 - CLEAR_WIN):
            best = candidate
    return best


def interleaved(
    candidates: list[Any], run: Callable[[Any], None], rounds: int = ROUNDS
) -> dict[Any, float]:
    """Fastest time of each candidate over interleaved rounds (after one untimed warm-up run)."""
    best = {c: float("inf") for c in candidates}
    if candidates:
        run(candidates[0])
    for _ in range(rounds):
        for c in candidates:
            start = time.perf_counter()
            run(c)
            best[c] = min(best[c], time.perf_counter() - start)
    return best


def blas_threaded(split: Split) -> bool:
    return split.blas_threads > 1


def one_mechanism(
    choices: dict[str, Split], times: dict[str, dict[Split, float]], spinning: bool = True
) -> dict[str, Split]:
    """The choices, never mixing BLAS's threads with our helpers while BLAS's idle threads
    spin (`spinning`): when any kind of work shares its products with helpers, a kind that
    chose BLAS threads takes its best other candidate.

    A plan that mixed them would pay OpenBLAS's spinning threads at every switch: a decode
    step shared with a helper right after a prefill on 2 BLAS threads took 51-56 ms for its
    first three steps, against 31-33 ms after (GPT-2 124M, Intel host). Threads that sleep at
    once (gpt_tui/__init__.py) cost nothing at a switch, and each kind keeps its best.
    """
    if not spinning or not any(split.parts > 1 for split in choices.values()):
        return choices
    return {
        kind: choose({c: t for c, t in times[kind].items() if not blas_threaded(c)}, cores_used)
        if blas_threaded(split)
        else split
        for kind, split in choices.items()
    }


ONE_ROW_SHARE = 0.5
"""In choosing the weights' layout, how much one stream's decode step (1 row) counts; the
other kinds of product (2, 4 and 8 rows, a prefill chunk) share the rest equally. One stream's
decode step is what a user waits on most; batched streams, verification passes and prompts
are the rest of the work. On the Intel Xeon host rows score 0.85-0.95 against blocks for GPT-2
124M (one row 16-18% faster, 2 and 4 rows even, 8 rows 8-11% slower, prefill 13% faster)."""


def layout_score(times: dict[str, float], reference: dict[str, float]) -> float:
    """A layout's best times by kind of product relative to the reference layout's, weighted
    (ONE_ROW_SHARE): below 1 it is faster."""
    ratios = {kind: times[kind] / reference[kind] for kind in reference}
    one_row = [kind for kind in ratios if kind.endswith(" 1 row")]
    others = [kind for kind in ratios if kind not in one_row]
    if not one_row or not others:
        return sum(ratios.values()) / len(ratios)
    return ONE_ROW_SHARE * sum(ratios[k] for k in one_row) / len(one_row) + (
        1 - ONE_ROW_SHARE
    ) * sum(ratios[k] for k in others) / len(others)


def choose_layout(times: dict[str, dict[str, float]]) -> str:
    """The layout whose products measure fastest: `times[layout][kind]` is the chosen
    candidate's time for each kind of product. The first layout is the reference (the one kept
    on disk, which needs no rearranging at load); another must beat it by CLEAR_WIN on the
    weighted score. Deterministic for given times."""
    reference, *others = times
    scores = {layout: layout_score(times[layout], times[reference]) for layout in others}
    best = min(scores, key=scores.__getitem__, default=reference)
    return best if best != reference and scores[best] < 1 - CLEAR_WIN else reference
