"""How many BLAS threads to decode with: whichever is fastest right now, found by trying.

On an idle 2-core machine two OpenBLAS threads decode ~25% faster than one. But when anything
else wants a core (the app's own UI thread, a browser, a neighbour on a shared machine), a BLAS
call split in two waits for its slower, descheduled half, and two threads fall to half the
speed of one (measured here: 25 against 37 tokens/s for GPT-2 124M; prefill 202 against 397).
No fixed setting is right, so the tuner times decode steps under each thread count, keeps the
faster, and tries again every so often, since the machine's load changes.

With two threads a decode step also shares its large matrix products between the cores
(`gpt_tui.engine.blocked.use_two_cores`): OpenBLAS runs each of them on one core. That too
pays only when the other core is free, and the same measurement decides it.

Callers report each step's duration from the thread that runs the model, between steps (BLAS
settings must not change under a running call). The engine itself stays free of this.
"""

from __future__ import annotations

import os
import statistics
import time

PROBE_STEPS = 6  # steps timed per candidate; the median resists one-off hiccups
REPROBE_EVERY = 192  # steps between re-checks of the choice


class ThreadTuner:
    """Chooses a BLAS thread count from measured step times.

    The decision logic lives in `record`, which takes durations, so it can be exercised with
    any timings; `step` is the convenience that times consecutive calls with a clock.
    """

    def __init__(self, candidates: tuple[int, ...] | None = None) -> None:
        most = os.cpu_count() or 1
        self.candidates = candidates or tuple(sorted({most, 1}, reverse=True))
        self.chosen = self.candidates[0]
        self._trial = 0  # index of the candidate being probed; len(candidates) = decided
        self._times: dict[int, list[float]] = {n: [] for n in self.candidates}
        self._since_probe = 0
        self._last: float | None = None
        self._apply(self.candidates[0])

    def step(self) -> None:
        """Call after each decode step; times it from the previous call."""
        now = time.perf_counter()
        if self._last is not None:
            self.record(now - self._last)
        self._last = time.perf_counter()

    def reset_clock(self) -> None:
        """Forget the previous call's time (after a pause: the gap is not a step)."""
        self._last = None

    def record(self, seconds: float) -> None:
        if len(self.candidates) == 1:
            return
        if self._trial < len(self.candidates):
            current = self.candidates[self._trial]
            self._times[current].append(seconds)
            if len(self._times[current]) >= PROBE_STEPS:
                self._trial += 1
                if self._trial < len(self.candidates):
                    self._apply(self.candidates[self._trial])
                else:
                    self._decide()
            return
        self._since_probe += 1
        if self._since_probe >= REPROBE_EVERY:
            self._trial, self._since_probe = 0, 0
            self._times = {n: [] for n in self.candidates}
            self._apply(self.candidates[0])

    def _decide(self) -> None:
        medians = {n: statistics.median(times) for n, times in self._times.items()}
        self._apply(min(medians, key=medians.__getitem__))

    def _apply(self, n_threads: int) -> None:
        self.chosen = n_threads
        set_blas_threads(n_threads)


def set_blas_threads(n_threads: int) -> None:
    """Limit every BLAS library NumPy loaded to n_threads (process-wide), and share a decode
    step's large products between cores only when there are two or more to use (see
    `gpt_tui.engine.blocked.use_two_cores`)."""
    from threadpoolctl import threadpool_limits

    from gpt_tui.engine.blocked import use_two_cores

    threadpool_limits(limits=n_threads, user_api="blas")
    use_two_cores(n_threads >= 2)
