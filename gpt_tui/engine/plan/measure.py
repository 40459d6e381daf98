"""Measuring a plan: every candidate timed on the model's own matrices and attention shapes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gpt_tui.engine import attention, cores
from gpt_tui.engine.cores import Settings, Split
from gpt_tui.engine.layout import BLOCKS, LAYOUTS, ROWS, arrange, layout_of, same_bytes_as
from gpt_tui.engine.plan.choice import (
    ROUNDS,
    blas_threaded,
    choose,
    choose_layout,
    cores_used,
    decode_candidates,
    interleaved,
    layout_score,
    one_mechanism,
    prefill_candidates,
)
from gpt_tui.engine.plan.keys import attention_shape, plan_key, weight_matrices
from gpt_tui.engine.plan.records import PREFILL_ROWS, Plan, Timing
from gpt_tui.engine.rows import MAX_BLOCKWISE_ROWS

DECODE_ROWS = (1, 2, 4, 8)
SUBSET_BYTES = 768 << 20
"""Decode candidates are timed on the model's matrices in step order up to this many bytes: more
than a last-level cache holds (300 MB on the Intel host), so the weights stream from memory as
in a real step, without a 1558M model's whole 200 ms pass per timing."""
QUERY_TILES = (64, 128, 256)  # candidate tiles of a prompt's positions for attention
PREFILL_CHUNKS = (PREFILL_ROWS, 512, 1024)  # candidate positions per prefill step
SETTLE_S = 0.3  # after BLAS-threaded candidates: see `measure`
STEP_CONTEXT = 16  # cached tokens before the whole decode steps that choose the one-row split
STEP_TIMING_S = 0.06  # a whole-step timing lasts at least this long, and at least 2 steps
STEPPED_SPLITS = 2  # each layout's fastest one-row splits (by products alone) timed in steps
LAYOUT_KIND = "weights' layout"
STEPS_KIND = f"decode, 1 row, a whole step after {STEP_CONTEXT} tokens"


def measure(model: Any, rounds: int = ROUNDS, layouts: tuple[str, ...] = LAYOUTS) -> Plan:
    """Time every candidate on this model's own matrices and attention shapes; choose.

    Each kind of product is timed in each weight layout (engine/layout.py), their candidates
    interleaved in the same rounds, on the model's own memory read as each layout
    (`same_bytes_as`): no copy, so measuring adds nothing to peak memory. Each layout's best
    split is chosen per kind, then the layout (`choose_layout`); the model is rearranged into
    it as it is built. `layouts` narrows the choice.
    """
    start = time.perf_counter()
    settings_of, layout, timings = _measured(model, rounds, layouts)
    return Plan(settings_of[layout], plan_key(model), timings, time.perf_counter() - start)


def measure_each_layout(model: Any, rounds: int = ROUNDS) -> dict[str, Plan]:
    """As `measure`, but a plan for each layout (its best splits), all from the same rounds:
    for comparing the layouts (benchmarks/layouts.py)."""
    start = time.perf_counter()
    settings_of, _, timings = _measured(model, rounds, LAYOUTS)
    seconds = time.perf_counter() - start
    return {lay: Plan(s, plan_key(model), timings, seconds) for lay, s in settings_of.items()}


def _measured(
    model: Any, rounds: int, layouts: tuple[str, ...]
) -> tuple[dict[str, Settings], str, tuple[Timing, ...]]:
    """Each layout's settings, the layout chosen, and every timing taken."""
    previous = cores.active()
    n = cores.n_cores()
    timings: list[Timing] = []
    held = _held_layout(model)
    try:
        groups = _timing_groups(model, n, layouts)
        # While OpenBLAS's idle threads spin after each call (unless they sleep at once:
        # gpt_tui/__init__.py), they hold the core our own helpers would run on (on the Intel
        # host, products shared with a helper took 92 ms right after a 2-thread BLAS call,
        # 50 ms 0.05 s after it, 28 ms 1 s after): then candidates that thread BLAS are timed
        # after all the others, and what follows waits SETTLE_S. Threads that sleep cost
        # nothing at a switch, and every candidate is interleaved with every other.
        spinning = not cores.blas_threads_sleep()
        times: dict[Candidate, float] = {}
        for threaded in (False, True) if spinning else (None,):
            for candidates, run in groups:
                mine = [c for c in candidates if threaded in (None, blas_threaded(c.split))]
                times.update(interleaved(mine, run, rounds))
        if spinning and any(blas_threaded(c.split) for c in times):
            time.sleep(SETTLE_S)
        timings += [Timing(c.kind, f"{c.layout}: {c.split.describe()}", t)
                    for c, t in times.items()]  # fmt: skip
        settings_of, best_of = _best_per_layout(times, spinning, layouts)
        stepped = {} if spinning else _one_row_in_steps(model, times, settings_of, held)
        for lay, by_split in stepped.items():
            split = choose(by_split, cores_used)
            decode = {**settings_of[lay].decode, 1: split}
            settings_of[lay] = replace(settings_of[lay], decode=decode)
            best_of[lay][_rows_kind("decode", 1)] = by_split[split]
            timings += [Timing(STEPS_KIND, f"{lay}: {c.describe()}", t)
                        for c, t in by_split.items()]  # fmt: skip
        layout = choose_layout(best_of)
        timings += [Timing(LAYOUT_KIND, _layout_summary(best_of, lay, bool(stepped)),
                           best_of[lay][_rows_kind("decode", 1)]) for lay in layouts]  # fmt: skip
        chosen = settings_of[layout]
        chunk, chunk_timings = _plan_prefill_chunk(model, chosen, layout, rounds)
        timings += chunk_timings
        chosen = replace(chosen, prefill_chunk=chunk)
        if spinning and any(blas_threaded(s) for s in (*chosen.decode.values(), chosen.prefill)):
            n = 1  # attention shares no work with helpers then (see `one_mechanism`)
        # Attention is timed in whole steps of the model as it is held now, on that layout's
        # products; what it chooses goes with every layout.
        attended, attention_timings = _plan_attention(
            model, settings_of.get(held, chosen), n, rounds
        )
        timings += attention_timings
        settings_of = {lay: replace(attended, decode=s.decode, prefill=s.prefill, layout=lay,
                                    prefill_chunk=chunk)
                       for lay, s in settings_of.items()}  # fmt: skip
    finally:
        cores.activate(previous)
    return settings_of, layout, tuple(timings)


def _one_row_in_steps(
    model: Any, times: dict[Candidate, float], settings_of: dict[str, Settings], held: str
) -> dict[str, dict[Split, float]]:
    """Each layout's fastest one-row splits timed again in whole decode steps of the model.

    Products timed back to back flatter helper threads: in a step, the work between two
    products lets a helper fall asleep, and waking it costs more (SmolLM2 on the Intel host:
    its one-row products shared between the cores took 31 ms back to back and 41 ms a step,
    on BLAS's threads 30 and 33). So the choice of split, and the one-row time the layout is
    chosen by, come from steps. The model is rearranged in place (engine/layout.py: no memory
    added) held -> other -> held, the rounds ABBA, so a drift in the machine's speed cancels.
    """
    picked: dict[str, list[Split]] = {}
    for layout in settings_of:
        kind = _rows_kind("decode", 1 if layout == ROWS else 2)  # blocks compute 1 row as 2
        mine = {c.split: t for c, t in times.items() if c.layout == layout and c.kind == kind}
        picked[layout] = sorted(mine, key=mine.__getitem__)[:STEPPED_SPLITS]
    context = min(STEP_CONTEXT, model.n_ctx - 1)  # room for the step after it
    if sum(len(splits) for splits in picked.values()) < 2 or context < 1:
        return {}  # nothing to choose between
    order = sorted(settings_of, key=lambda layout: layout != held)  # the held layout first
    cache = model.new_cache()
    model._logits(np.zeros((1, context), dtype=np.int64), True, cache, True)
    token = np.zeros((1, 1), dtype=np.int64)

    def step() -> None:
        model._logits(token, True, cache, True)  # the pass `forward` runs
        cache.truncate(context)

    start = time.perf_counter()
    step()  # in the held layout and its plan so far: how many steps fill a timing
    n_steps = max(2, math.ceil(STEP_TIMING_S / (time.perf_counter() - start)))

    def seconds_a_step(layout: str, split: Split) -> float:
        settings = settings_of[layout]
        cores.activate(replace(settings, decode={**settings.decode, 1: split}))
        step()  # untimed: the first step after a change of split wakes other threads
        start = time.perf_counter()
        for _ in range(n_steps):
            step()
        return (time.perf_counter() - start) / n_steps

    measured: dict[str, dict[Split, float]] = {layout: {} for layout in order}
    for layout in [*order, *reversed(order)]:  # ABBA: each layout once before, once after
        model.params = arrange(model.params, layout)
        for split in picked[layout]:
            t = seconds_a_step(layout, split)
            measured[layout][split] = min(t, measured[layout].get(split, t))
    model.params = arrange(model.params, held)  # as it was (a no-op unless `layouts` left it out)
    return {layout: by_split for layout, by_split in measured.items() if by_split}


def _rows_kind(kind: str, rows: int) -> str:
    return f"{kind}, {rows} row{'s' * (rows > 1)}"


@dataclass(frozen=True)
class Candidate:
    """A way to compute `rows` rows' products: the weights read in `layout`, under `split`."""

    rows: int
    layout: str
    split: Split

    @property
    def kind(self) -> str:
        return _rows_kind("decode" if self.rows <= DECODE_ROWS[-1] else "prefill", self.rows)


Group = tuple[list[Candidate], Callable[[Candidate], None]]


def _timing_groups(model: Any, n: int, layouts: tuple[str, ...]) -> list[Group]:
    """The candidates timed together (interleaved in the same rounds), and what times one.

    One row in blocks is computed as two (engine/blocked.py), so its time is the two rows'
    time, and one row in rows is timed with the two rows of both layouts. Products of 2 to 8
    rows are small ones (by blocks) that OpenBLAS does not thread, so BLAS's threads are no
    candidate for them (on the Intel host they timed as one core does: 47.7-48.8 against
    47.8-49.5 ms for 2 rows).
    """
    subset, total = [], 0
    for _, w in weight_matrices(model):
        if total >= SUBSET_BYTES:
            break
        subset.append(w)
        total += w.nbytes
    one_row = decode_candidates(n, [w.nbytes for w in subset])
    rows_of_blocks = [split for split in one_row if not blas_threaded(split)]
    decode = _runner(subset, DECODE_ROWS)
    first_block = [w for name, w in weight_matrices(model) if name.startswith("blocks.0.")]
    prefill = _runner(first_block, (PREFILL_ROWS,))

    def both(rows: int, splits: list[Split]) -> list[Candidate]:
        """Each split in each layout; in rows, for 2-8 rows, each also in the form
        `block @ x^T` (engine/rows.py: which form is faster depends on the shapes)."""
        both_forms = splits + [replace(s, block_first=True) for s in splits]
        return [Candidate(rows, layout, split) for layout in layouts
                for split in (both_forms if layout == ROWS and rows <= MAX_BLOCKWISE_ROWS
                              else splits)]  # fmt: skip

    rows_one_row = [Candidate(1, ROWS, split) for split in one_row] if ROWS in layouts else []
    return [
        (rows_one_row + both(2, rows_of_blocks), decode),
        (both(4, rows_of_blocks), decode),
        (both(8, rows_of_blocks), decode),
        (both(PREFILL_ROWS, prefill_candidates(n)), prefill),
    ]


def _runner(weights: list[Any], row_counts: tuple[int, ...]) -> Callable[[Candidate], None]:
    """What times a candidate: the products `x @ w` of its rows by each matrix of `weights`,
    read in its layout (the model's memory, `same_bytes_as`), under its split."""
    by_layout = {layout: [same_bytes_as(w, layout) for w in weights] for layout in LAYOUTS}
    xs = {rows: [np.ones((rows, w.shape[0]), dtype=np.float32) for w in weights]
          for rows in row_counts}  # fmt: skip

    def run(c: Candidate) -> None:
        cores.activate(Settings(decode={DECODE_ROWS[-1]: c.split}, prefill=c.split))
        for x, w in zip(xs[c.rows], by_layout[c.layout], strict=True):
            x @ w

    return run


def _best_per_layout(
    times: dict[Candidate, float], spinning: bool, layouts: tuple[str, ...]
) -> tuple[dict[str, Settings], dict[str, dict[str, float]]]:
    """For each layout: the settings of its best candidates, and their times by kind."""
    settings_of, best_of = {}, {}
    for layout in layouts:
        mine: dict[str, dict[Split, float]] = {}
        for c, t in times.items():
            if c.layout == layout:
                mine.setdefault(c.kind, {})[c.split] = t
        if _rows_kind("decode", 1) not in mine:  # one row computed as two: the same products
            mine[_rows_kind("decode", 1)] = mine[_rows_kind("decode", 2)]
        chosen = {kind: choose(t, cores_used) for kind, t in mine.items()}
        chosen = one_mechanism(chosen, mine, spinning)
        best_of[layout] = {kind: mine[kind][chosen[kind]] for kind in sorted(mine, key=_order)}
        decode = {rows: chosen[_rows_kind("decode", rows)] for rows in DECODE_ROWS}
        prefill = chosen[_rows_kind("prefill", PREFILL_ROWS)]
        settings_of[layout] = Settings(decode=decode, prefill=prefill, layout=layout)
    return settings_of, best_of


def _order(kind: str) -> tuple[bool, int]:
    """Decode kinds by rows, then prefill."""
    return kind.startswith("prefill"), int(kind.split(", ")[1].split()[0])


def _layout_summary(best_of: dict[str, dict[str, float]], layout: str, stepped: bool) -> str:
    """A layout's line: its best times, and its score against the reference (the first)."""
    best = best_of[layout]

    def name(kind: str) -> str:
        short = kind.removeprefix("decode, ")
        return f"{short} (a step)" if stepped and short == "1 row" else short

    times = ", ".join(f"{name(k)} {t * 1e3:.1f}" for k, t in best.items())
    reference = next(iter(best_of))
    score = "" if layout == reference else f" (score {layout_score(best, best_of[reference]):.2f})"
    return f"{layout}: {times} ms{score}"


def _held_layout(model: Any) -> str:
    layouts = {layout_of(w) for _, w in weight_matrices(model)}
    return layouts.pop() if len(layouts) == 1 else BLOCKS


def _plan_prefill_chunk(
    model: Any, settings: Settings, layout: str, rounds: int
) -> tuple[int, list[Timing]]:
    """How many prompt positions a prefill step computes: the first block's products timed
    for chunks of each size, in the layout and split chosen, and compared by the position.
    A larger chunk holds larger activations, so it must win by CLEAR_WIN (`choose`)."""
    chunks = [c for c in PREFILL_CHUNKS if c <= model.n_ctx] or [model.n_ctx]
    first_block = [w for name, w in weight_matrices(model) if name.startswith("blocks.0.")]
    weights = [same_bytes_as(w, layout) for w in first_block]
    xs = {c: [np.ones((c, w.shape[0]), dtype=np.float32) for w in weights] for c in chunks}

    def run(chunk: int) -> None:
        cores.activate(settings)
        for x, w in zip(xs[chunk], weights, strict=True):
            x @ w

    times = interleaved(chunks, run, rounds)
    per_position = {c: t / c for c, t in times.items()}
    timings = [Timing("prefill chunk, the first block's products", f"{c} positions "
                      f"({per_position[c] * 1e6:.1f} us a position)", t)
               for c, t in times.items()]  # fmt: skip
    return choose(per_position, lambda c: c), timings


def _plan_attention(
    model: Any, settings: Settings, n: int, rounds: int
) -> tuple[Settings, list[Timing]]:
    """Decode attention shared by heads or not, and the prefill's query tile."""

    n_kv_head, head_dim = attention_shape(model)
    group = model.n_head // n_kv_head
    timings: list[Timing] = []
    # Attention shares work with our helpers only in a plan that does not thread BLAS, unless
    # BLAS's idle threads sleep at once (see `one_mechanism`).
    splits = [*settings.decode.values(), settings.prefill]
    if not cores.blas_threads_sleep() and any(blas_threaded(split) for split in splits):
        n = 1
    rng = np.random.default_rng(0)
    # Decode: whole steps at a long context, so the cached keys stream from memory between
    # the weights, as they do in use (timed alone, a 124M model's 75 MB of keys and values sat
    # in the last-level cache and sharing them showed no gain).
    n_key = min(1024, model.n_ctx - 1)
    if n >= 2 and n_kv_head >= 2 and n_key > 1:
        cache = model.new_cache()
        cache.reserve(n_key + 1)
        cache.k[:, :, :, :n_key] = rng.standard_normal(cache.k[:, :, :, :n_key].shape, np.float32)
        cache.v[:, :, :, :n_key] = rng.standard_normal(cache.v[:, :, :, :n_key].shape, np.float32)
        cache.length = n_key
        token = np.zeros((1, 1), dtype=np.int64)

        def decode(parts: int) -> None:
            cores.activate(replace(settings, attention_min_keys=0, attention_parts=parts))
            model._logits(token, True, cache, True)  # the pass `forward` runs, on these settings
            cache.truncate(n_key)

        times = interleaved([1, min(n, 8, n_kv_head)], decode, rounds)
        timings += [Timing(f"decode attention, steps after {n_key} keys", _parts_name(p), t)
                    for p, t in times.items()]  # fmt: skip
        parts = choose(times, lambda p: p)
        if parts > 1:
            settings = replace(settings, attention_min_keys=(n_key + 1) // 4, attention_parts=parts)
        del cache
    # Prefill: a chunk of positions after a long prompt, under each tile.
    n_seq = min(PREFILL_ROWS, model.n_ctx)
    n_key = min(3072, model.n_ctx)
    keys = rng.standard_normal((1, n_kv_head, n_key, head_dim), dtype=np.float32)
    values = rng.standard_normal((1, n_kv_head, n_key, head_dim), dtype=np.float32)
    q = rng.standard_normal((1, n_kv_head, n_seq * group, head_dim), dtype=np.float32)

    def prefill(candidate: tuple[int, int]) -> None:
        tile, parts = candidate
        cores.activate(replace(settings, query_tile=tile, prefill_attention_parts=parts))
        cores.set_blas_threads(settings.prefill.blas_threads)  # as a chunk's products leave it
        attention.attend(q, keys, values, n_seq, group)

    kind = f"prefill attention, {n_seq} after {n_key - n_seq} keys"
    tiles = sorted({t for t in QUERY_TILES if t < n_seq} | {n_seq})
    shares = [1, min(n, 8, n_kv_head)] if n >= 2 and n_kv_head >= 2 else [1]
    times = interleaved([(tile, parts) for tile in tiles for parts in shares], prefill, rounds)
    timings += [Timing(kind, f"tile {t}" + (f", {_parts_name(p)}" if p > 1 else ""), s)
                for (t, p), s in times.items()]  # fmt: skip
    tile, parts = choose(times, lambda candidate: candidate[1])
    return replace(settings, query_tile=tile, prefill_attention_parts=parts), timings


def _parts_name(parts: int) -> str:
    return "one core" if parts == 1 else f"shared between {parts} cores by heads"
