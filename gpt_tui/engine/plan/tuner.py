"""Following the load while decoding: between the plan's choice and one core."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gpt_tui.engine import cores
from gpt_tui.engine.cores import ONE_CORE, Settings
from gpt_tui.engine.kv_cache import KVCache
from gpt_tui.engine.plan.records import Plan

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

    @property
    def deciding(self) -> bool:
        """Whether the steps now are still probing the candidates (not yet the choice)."""
        return len(self.candidates) > 1 and self._trial < len(self.candidates)

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


def settle_tuner(model: Any, cache: KVCache) -> None:
    """Decode (untimed, the cache as it was after) until the model's tuner has chosen between
    the plan and one core (engine/plan/tuner.py): its probing steps are a start-up transient,
    and timed with the rest they made a few-step figure a mix of both (1558M: 410 ms a step
    against 320 and 358 once chosen). For benchmarks."""
    tuner = getattr(getattr(model, "planned", None), "tuner", None)
    if tuner is None:
        return
    length = cache.length
    step = np.zeros((cache.n_batch, 1), dtype=np.int64)  # [n_batch, 1]
    for _ in range(64):  # more than the probing takes; a bound, whatever a tuner does
        if not tuner.deciding:
            break
        model.forward(step, cache, last_only=True)
        cache.truncate(length)


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
    def running(self, decoding: bool, record: bool = True) -> Iterator[None]:
        """Apply the settings for the pass; a decode step's duration goes to the tuner, unless
        not to `record` (a hooked pass: its hooks' work is not the step's)."""
        cores.activate(self.tuner.settings if decoding else self.plan.settings)
        if not decoding or not record:
            yield
            return
        start = time.perf_counter()
        yield
        self.tuner.record(time.perf_counter() - start)
