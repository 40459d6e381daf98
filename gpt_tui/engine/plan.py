"""The kernel planner: how this machine computes each kind of product fastest, measured once.

The fastest way to compute a model's products depends on the machine: on a 2-core Intel Xeon
host (AVX-512, under KVM) one core streams 13-16 GB/s of weights and two 23-33, so a decode step
is twice as fast with its products shared between the cores; on an AMD EPYC host one core
streamed nearly what two did, and sharing cost more in hand-over than it gained. So, as FFTW's
planner does, the engine times candidates on the machine where it runs, keeps the choice
("wisdom") in the cache directory, and reuses it.

What is planned (`Settings` in engine/cores.py carries it out):
- the products of a decode step with 1, 2, 4 and 8 rows (one stream; batched streams and
  speculative verification): on one core, with BLAS's threads, or shared between the cores
  from a matrix size on (every threshold is a candidate, timed on the model's own matrices);
- prefill chunks: BLAS's threads, one core, or the blocks shared between the cores;
- attention: from how many cached keys a decode step's attention is shared between the cores
  by heads, and how many prompt positions' scores a prefill computes at once (the tile).

A plan is keyed by what it depends on (CPU model, cores, NumPy and BLAS build, the model's
shapes, this format's version); a plan file that is corrupt, older, or from another machine is
ignored and measured again, with a one-line notice (`Plan.notice`, and a logged warning); an
unwritable cache directory keeps the plan in memory. Timings take the fastest of interleaved
rounds: on a shared machine the fastest run is the one least disturbed, and the choice is the
machine's capability; `DecodeTuner` then follows the load while decoding, between the plan's
choice and one core, since a busy second core makes sharing slower than not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gpt_tui.engine import cores
from gpt_tui.engine.cores import ONE_CORE, Settings, Split

PLAN_VERSION = 1
DECODE_ROWS = (1, 2, 4, 8)
TIMED_ROWS = (2, 4, 8)
"""One row is computed as two (engine/blocked.py: OpenBLAS's small kernels are faster so), so
the plan for two rows, timed once, is the plan for one as well."""
SHARE_FROM = (32 << 20, 4 << 20, 1 << 20, 0)  # candidate thresholds for sharing a product
PREFILL_ROWS = 256  # the chunk a prefill computes at once (kv_cache.PREFILL_CHUNK)
SUBSET_BYTES = 768 << 20
"""Decode candidates are timed on the model's matrices in step order up to this many bytes: more
than a last-level cache holds (300 MB on the Intel host), so the weights stream from memory as
in a real step, without a 1558M model's whole 200 ms pass per timing."""
QUERY_TILES = (64, 128, 256)  # candidate tiles of a prompt's positions for attention
ROUNDS = 3
SETTLE_S = 0.3  # after BLAS-threaded candidates: see `measure`
CLEAR_WIN = 0.03
"""A candidate using more cores must be this much faster than one using fewer to be chosen:
a core left free serves the UI thread and the rest of the machine."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """One candidate's measured time for one kind of product (the fastest of the rounds)."""

    kind: str  # "decode 1 row", "prefill 256 rows", "attention 1024 keys", ...
    candidate: str
    seconds: float


@dataclass(frozen=True)
class Plan:
    settings: Settings
    key: dict[str, Any]
    timings: tuple[Timing, ...] = ()
    measured_s: float = 0.0  # how long measuring took (0: loaded, or nothing to measure)
    source: str = "measured"  # "measured", "loaded from PATH", "default"
    notice: str | None = None  # a one-line message for the user (a plan file ignored, ...)

    def describe(self) -> list[tuple[str, str]]:
        """(kind of work, what the plan does) rows, for `gpt-tui bench`."""
        s = self.settings
        rows = [(f"decode, {r} row{'s' * (r > 1)}", split.describe()
                 + (" (computed as 2 rows: their plan)" if r == 1 else "")) for r, split in
                sorted(s.decode.items())]  # fmt: skip
        rows.append((f"prefill, chunks of {PREFILL_ROWS}", s.prefill.describe()))
        attention = (
            "one core"
            if s.attention_min_keys is None
            else f"shared between {s.attention_parts} cores from {s.attention_min_keys} keys"
        )
        rows.append(("decode attention", attention))
        shared = f", shared between {s.prefill_attention_parts} cores by heads"
        rows.append(("prefill attention", f"{s.query_tile} positions at a time"
                     + (shared if s.prefill_attention_parts > 1 else "")))  # fmt: skip
        return rows


# ---------------------------------------------------------------------------------------------
# What a plan depends on


def machine_key() -> dict[str, Any]:
    """The machine's traits a plan depends on."""
    return {
        "cpu": cpu_name(),
        "cores": cores.n_cores(),
        "numpy": np.__version__,
        "blas": blas_build(),
        "plan_version": PLAN_VERSION,
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_build() -> str:
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')}".strip()
        for i in blas
    )


def model_key(model: Any) -> dict[str, Any]:
    """The model's shapes a plan depends on: its matrices and its attention."""
    shapes: dict[str, int] = {}
    for _, w in weight_matrices(model):
        name = "x".join(map(str, w.shape))
        shapes[name] = shapes.get(name, 0) + 1
    n_kv_head, head_dim = attention_shape(model)
    return {
        "architecture": getattr(model, "architecture", type(model).__name__),
        "matrices": shapes,
        "n_layer": model.n_layer,
        "n_head": model.n_head,
        "n_kv_head": n_kv_head,
        "head_dim": head_dim,
    }


def attention_shape(model: Any) -> tuple[int, int]:
    """(kv heads, head dimension) of the model's attention."""
    n_kv_head = getattr(model, "n_kv_head", model.n_head)
    head_dim = getattr(model, "head_dim", model.n_embd // model.n_head)
    return n_kv_head, head_dim


def weight_matrices(model: Any) -> list[tuple[str, Any]]:
    """(flat name, matrix) of the matrices a decode step multiplies by (`x @ w` for each), in
    the order it does: the blocks' by layer, then the output projection."""
    from gpt_tui.engine.blocked import BlockedMatrix
    from gpt_tui.engine.params import flatten_params

    def step_order(name: str) -> tuple[int, int]:
        parts = name.split(".")
        return (0, int(parts[1])) if parts[0] == "blocks" else (1, 0)

    flat = flatten_params(model.params)
    named = [(n, w) for n, w in flat.items() if isinstance(w, BlockedMatrix)]
    return sorted(named, key=lambda item: step_order(item[0]))  # stable within a layer


def plan_key(model: Any) -> dict[str, Any]:
    return {"machine": machine_key(), "model": model_key(model)}


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Candidates and the choice


def decode_candidates(n_cores: int) -> list[Split]:
    if n_cores < 2:
        return [ONE_CORE]
    parts = min(n_cores, 8)
    return [
        ONE_CORE,
        Split(blas_threads=n_cores),
        *(Split(parts=parts, min_bytes=size) for size in SHARE_FROM),
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
    choices: dict[str, Split], times: dict[str, dict[Split, float]]
) -> dict[str, Split]:
    """The choices, never mixing BLAS's threads with our helpers: when any kind of work shares
    its products with helpers, a kind that chose BLAS threads takes its best other candidate.

    A plan that mixed them would pay OpenBLAS's spinning threads at every switch: a decode
    step shared with a helper right after a prefill on 2 BLAS threads took 51-56 ms for its
    first three steps, against 31-33 ms after (GPT-2 124M, Intel host).
    """
    if not any(split.parts > 1 for split in choices.values()):
        return choices
    return {
        kind: choose({c: t for c, t in times[kind].items() if not blas_threaded(c)}, cores_used)
        if blas_threaded(split)
        else split
        for kind, split in choices.items()
    }


# ---------------------------------------------------------------------------------------------
# Measuring


def measure(model: Any, rounds: int = ROUNDS) -> Plan:
    """Time every candidate on this model's own matrices and attention shapes; choose."""
    start = time.perf_counter()
    previous = cores.active()
    n = cores.n_cores()
    timings: list[Timing] = []
    try:
        kinds = {_rows_kind("decode", rows): (decode_candidates(n), _products(model, rows))
                 for rows in TIMED_ROWS}  # fmt: skip
        prefill = _rows_kind("prefill", PREFILL_ROWS)
        kinds[prefill] = (prefill_candidates(n), _prefill_products(model))
        # Candidates that thread BLAS are timed after all the others, and what follows waits
        # SETTLE_S: OpenBLAS's idle threads spin for a while after each call and hold the
        # core our own helpers would run on (on the Intel host, products shared with a helper
        # took 92 ms right after a 2-thread BLAS call, 50 ms 0.05 s after it, 28 ms 1 s after).
        times: dict[str, dict[Split, float]] = {}
        for threaded in (False, True):
            for name, (candidates, run) in kinds.items():
                mine = [c for c in candidates if blas_threaded(c) == threaded]
                times.setdefault(name, {}).update(interleaved(mine, run, rounds))
        if any(blas_threaded(c) for candidates, _ in kinds.values() for c in candidates):
            time.sleep(SETTLE_S)
        timings += [Timing(kind, c.describe(), t) for kind, by in times.items()
                    for c, t in by.items()]  # fmt: skip
        chosen = one_mechanism({kind: choose(t, cores_used) for kind, t in times.items()}, times)
        decode = {rows: chosen[_rows_kind("decode", max(rows, 2))] for rows in DECODE_ROWS}
        settings = Settings(decode=decode, prefill=chosen[prefill])
        settings, attention_timings = _plan_attention(model, settings, n, rounds)
        timings += attention_timings
    finally:
        cores.activate(previous)
    return Plan(
        settings=settings,
        key=plan_key(model),
        timings=tuple(timings),
        measured_s=time.perf_counter() - start,
    )


def _rows_kind(kind: str, rows: int) -> str:
    return f"{kind}, {rows} row{'s' * (rows > 1)}"


def _products(model: Any, rows: int) -> Callable[[Split], None]:
    """One decode step's weight products (those of the timing subset) under a candidate."""
    weights, total = [], 0
    for _, w in weight_matrices(model):
        if total >= SUBSET_BYTES:
            break
        weights.append(w)
        total += w.nbytes
    xs = [np.ones((rows, w.shape[0]), dtype=np.float32) for w in weights]

    def run(split: Split) -> None:
        cores.activate(Settings(decode={rows: split}, prefill=split))
        for x, w in zip(xs, weights, strict=True):
            x @ w

    return run


def _prefill_products(model: Any) -> Callable[[Split], None]:
    """A prefill chunk's products for the first block's matrices (compute-bound: one block's
    matrices time it as well as all of them would)."""
    weights = [w for name, w in weight_matrices(model) if name.startswith("blocks.0.")]
    xs = [np.ones((PREFILL_ROWS, w.shape[0]), dtype=np.float32) for w in weights]

    def run(split: Split) -> None:
        cores.activate(Settings(decode={1: ONE_CORE}, prefill=split))
        for x, w in zip(xs, weights, strict=True):
            x @ w

    return run


def _plan_attention(
    model: Any, settings: Settings, n: int, rounds: int
) -> tuple[Settings, list[Timing]]:
    """Decode attention shared by heads or not, and the prefill's query tile."""
    from gpt_tui.engine import attention

    n_kv_head, head_dim = attention_shape(model)
    group = model.n_head // n_kv_head
    timings: list[Timing] = []
    # Attention shares work with our helpers only in a plan that does not thread BLAS
    # (see `one_mechanism`).
    splits = [*settings.decode.values(), settings.prefill]
    n = 1 if any(blas_threaded(split) for split in splits) else n
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


# ---------------------------------------------------------------------------------------------
# Wisdom: plans kept in the cache directory


def wisdom_dir() -> Path:
    from gpt_tui.locations import cache_root

    return cache_root() / "plans"


def plan_path(key: dict[str, Any], directory: Path | None = None) -> Path:
    model = key["model"]
    return (directory or wisdom_dir()) / f"{model['architecture']}-{key_digest(key)}.json"


def save(plan: Plan, path: Path) -> None:
    """Write the plan atomically (a temp file renamed); raises OSError when it cannot."""
    data = {
        "key": plan.key,
        "settings": _settings_to_json(plan.settings),
        "timings": [asdict(t) for t in plan.timings],
        "measured_s": plan.measured_s,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def load(path: Path, key: dict[str, Any]) -> Plan:
    """The plan at `path`, if it was measured for `key`; ValueError saying why not."""
    try:
        data = json.loads(path.read_text())
        stored_key = data["key"]
        settings = _settings_from_json(data["settings"])
        timings = tuple(Timing(**t) for t in data.get("timings", []))
        measured_s = float(data.get("measured_s", 0.0))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable ({type(exc).__name__}: {exc})") from exc
    if stored_key != key:
        differ = sorted(
            f"{part}.{name}"
            for part in ("machine", "model")
            for name in set(key.get(part, {})) | set(stored_key.get(part, {}))
            if key.get(part, {}).get(name) != stored_key.get(part, {}).get(name)
        )
        raise ValueError(f"measured for another {', '.join(differ) or 'key'}")
    return Plan(settings, key, timings, measured_s, source=f"loaded from {path}")


def _settings_to_json(s: Settings) -> dict[str, Any]:
    return {
        "decode": {str(rows): asdict(split) for rows, split in s.decode.items()},
        "prefill": asdict(s.prefill),
        "attention_min_keys": s.attention_min_keys,
        "attention_parts": s.attention_parts,
        "query_tile": s.query_tile,
        "prefill_attention_parts": s.prefill_attention_parts,
    }


def _settings_from_json(data: dict[str, Any]) -> Settings:
    def split(d: dict[str, Any]) -> Split:
        s = Split(int(d["blas_threads"]), int(d["parts"]), int(d["min_bytes"]))
        if min(s.blas_threads, s.parts) < 1 or s.min_bytes < 0:
            raise ValueError(f"not a split: {d}")
        return s

    decode = {int(rows): split(d) for rows, d in data["decode"].items()}
    if 1 not in decode:
        raise ValueError("no decode split for one row")
    min_keys = data["attention_min_keys"]
    settings = Settings(
        decode=decode,
        prefill=split(data["prefill"]),
        attention_min_keys=None if min_keys is None else int(min_keys),
        attention_parts=int(data["attention_parts"]),
        query_tile=int(data["query_tile"]),
        prefill_attention_parts=int(data["prefill_attention_parts"]),
    )
    if min(settings.query_tile, settings.attention_parts, settings.prefill_attention_parts) < 1:
        raise ValueError("query_tile and the attention parts must be positive")
    return settings


PLAN_ENV = "GPT_TUI_PLAN"
"""`measure` (the default: load the kept plan, or measure and keep one), `replan` (measure again
and keep it), or `default` (one core for everything, nothing measured or written)."""


def plan_for(model: Any, mode: str | None = None) -> Plan:
    """The plan for this model on this machine: kept wisdom, or measured now and kept."""
    mode = (mode or os.environ.get(PLAN_ENV, "") or "measure").strip().lower()
    if mode not in ("measure", "replan", "default"):
        raise ValueError(f"{PLAN_ENV} must be measure, replan or default, not {mode!r}")
    key = plan_key(model)
    if mode == "default":
        return Plan(default_settings(), key, source="default")
    path = plan_path(key)
    notice = None
    if mode == "measure" and path.exists():
        try:
            return load(path, key)
        except ValueError as exc:
            notice = f"kernel plan {path} ignored ({exc}); measuring again"
            log.warning(notice)
    plan = measure(model)
    try:
        save(plan, path)
        source = f"measured, kept in {path}"
    except OSError as exc:
        source = "measured, kept in memory"
        notice = (notice + "; " if notice else "") + f"cannot keep it in {path.parent}: {exc}"
        log.warning(notice)
    return replace(plan, source=source, notice=notice)


def default_settings() -> Settings:
    return Settings(decode={1: ONE_CORE}, prefill=Split(blas_threads=cores.n_cores()))


# ---------------------------------------------------------------------------------------------
# Following the load while decoding

PROBE_STEPS = 6  # steps timed per candidate; the median resists one-off hiccups
REPROBE_EVERY = 192  # steps between re-checks of the choice


@dataclass
class DecodeTuner:
    """Chooses between the plan's decode settings and one core from measured step times.

    The plan measured what the machine can do when its cores are free. When anything else wants
    a core (the app's own UI thread, a neighbour on a shared machine), a product shared between
    the cores waits for its descheduled half, and one core is faster (measured on the AMD host:
    25 against 37 tokens/s for GPT-2 124M). So decode steps are timed under each, the faster is
    kept, and the choice is checked again every REPROBE_EVERY steps. `record` takes durations,
    so the decision logic can be exercised with any timings.
    """

    candidates: tuple[Settings, ...]
    chosen: int = 0
    _trial: int = 0  # index of the candidate being probed; len(candidates) = decided
    _times: dict[int, list[float]] = field(default_factory=dict)
    _since_probe: int = 0

    @property
    def settings(self) -> Settings:
        return self.candidates[self.chosen]

    def record(self, seconds: float) -> None:
        if len(self.candidates) == 1:
            return
        if self._trial < len(self.candidates):
            self._times.setdefault(self._trial, []).append(seconds)
            if len(self._times[self._trial]) >= PROBE_STEPS:
                self._trial += 1
                if self._trial < len(self.candidates):
                    self.chosen = self._trial
                else:
                    medians = {i: statistics.median(t) for i, t in self._times.items()}
                    self.chosen = min(medians, key=medians.__getitem__)
            else:
                self.chosen = self._trial
            return
        self._since_probe += 1
        if self._since_probe >= REPROBE_EVERY:
            self._trial, self._since_probe, self._times = 0, 0, {}
            self.chosen = 0


def tuner_for(plan: Plan) -> DecodeTuner:
    settings = plan.settings
    one_core = replace(
        settings,
        decode={rows: ONE_CORE for rows in settings.decode},
        attention_min_keys=None,
        attention_parts=1,
    )
    return DecodeTuner((settings,) if one_core == settings else (settings, one_core))


class Planned:
    """What a model holds of its plan: the settings to apply, and the tuner that follows the
    load while decoding. `running(n_rows)` wraps a forward pass."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.tuner = tuner_for(plan)

    @contextmanager
    def running(self, decoding: bool) -> Iterator[None]:
        """Apply the settings for the pass; a decode step's duration goes to the tuner."""
        cores.activate(self.tuner.settings if decoding else self.plan.settings)
        if not decoding:
            yield
            return
        start = time.perf_counter()
        yield
        self.tuner.record(time.perf_counter() - start)


def planned_for(model: Any, plan: Plan | str | None = None) -> Planned:
    """What a model's constructor keeps: `plan` itself, or the plan `plan_for` finds by mode."""
    return Planned(plan if isinstance(plan, Plan) else plan_for(model, plan))
