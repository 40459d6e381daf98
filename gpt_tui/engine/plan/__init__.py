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

Where a plan is applied, and why there: in `prepare`, the last step of every model's
constructor (`GPT2(params, hparams)`, `Llama(...)`). Every source of weights ends there:
plain arrays (the documented library contract), a converted directory, a Hugging Face or GGUF
file (converted, then loaded as a directory) and random weights all reach the constructor,
whose `streaming_params` brings them to the converted layout (column blocks in one arena)
before `prepare` finds the plan and rearranges them into its layout. So every model of the
same shapes on this machine computes in the same layout under the same plan, whatever it was
built from, and a library user calls nothing extra. It is done as the model is built, not at
its first pass: measuring takes seconds once per machine and model shapes, and there it is
part of loading, not of the first token's latency; and the weights are rearranged in place
before anyone else holds them. Measuring (plan/measure.py) runs the model's pass only through
its public `logits` under settings it activates, and times other layouts on twins reading the
model's memory (`measure.reading`): the model is left as it was given.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any

from gpt_tui.engine import cores
from gpt_tui.engine.cores import ONE_CORE, Settings, Split
from gpt_tui.engine.layout import arrange
from gpt_tui.engine.plan.keys import cpu_name, plan_key
from gpt_tui.engine.plan.measure import measure
from gpt_tui.engine.plan.records import Plan, Timing
from gpt_tui.engine.plan.tuner import Planned
from gpt_tui.engine.plan.wisdom import load, plan_path, save

log = logging.getLogger(__name__)

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


def plan_of(model: Any) -> Plan | None:
    """The plan a model computes with (None for a model without one)."""
    planned = getattr(model, "planned", None)
    return planned.plan if planned is not None else None


def prepare(model: Any, plan: Plan | str | None = None) -> Planned:
    """Apply a plan to a model whose weights are in the converted layout: `plan` itself, or
    the one `plan_for` finds by mode; the weights rearranged in place into the layout it
    chose (engine/layout.py). What the model keeps and runs its passes under. The one place a
    plan is applied: see this module's docstring."""
    planned = Planned(plan if isinstance(plan, Plan) else plan_for(model, plan))
    model.params = arrange(model.params, planned.plan.settings.layout)
    return planned


__all__ = [
    "PLAN_ENV", "Plan", "Planned", "Timing", "cpu_name", "default_settings", "plan_for",
    "plan_of", "prepare",
]  # fmt: skip
