"""How the engine's work is split between the cores: helper threads, BLAS's own thread count,
and the split the active plan chose for the kind of product being computed.

The small products a decode step is made of run on one core each (OpenBLAS does not thread
them), and one core may draw only part of the memory bandwidth: on a 2-core Intel Xeon host one
core streamed 13-16 GB/s, two 23-33 GB/s; on an AMD EPYC host one core streamed nearly what two
did. Whether, and from which size on, splitting a product between cores pays is therefore
measured (`gpt_tui.engine.plan`), never assumed; this module only carries out the choice.

Settings are process-wide, as BLAS's thread count is; a model activates its plan's settings at
the start of each forward pass (`activate`), which costs nothing when they are already active.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import gpt_tui


def blas_threads_sleep() -> bool:
    """Whether BLAS's idle threads sleep at once after a call (gpt_tui/__init__.py), so that
    switching between BLAS's threads and our helpers costs nothing; else they spin a while."""

    return gpt_tui.BLAS_THREADS_SLEEP


def n_cores() -> int:
    """Cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Split:
    """How one kind of work is spread over the cores.

    `parts` > 1 cuts a product into that many column ranges computed at once (the calling
    thread and parts - 1 helpers), for matrices of `min_bytes` or more; `blas_threads` is the
    thread count BLAS gets meanwhile (never above 1 while helpers share a product: the two
    would oversubscribe the cores).
    """

    blas_threads: int = 1
    parts: int = 1
    min_bytes: int = 0
    block_first: bool = False  # rows layout, 2-8 rows: `block @ x^T`, not `x @ block^T` (rows.py)

    def parts_for(self, nbytes: int) -> int:
        return self.parts if self.parts > 1 and nbytes >= self.min_bytes else 1

    def describe(self) -> str:
        form = ", block @ x^T" if self.block_first else ""
        if self.parts > 1:
            size = "all matrices" if self.min_bytes == 0 else f"from {self.min_bytes >> 20} MB"
            return f"shared between {self.parts} cores ({size}){form}"
        if self.blas_threads > 1:
            return f"{self.blas_threads} BLAS threads{form}"
        return f"one core{form}"


ONE_CORE = Split()


@dataclass(frozen=True)
class Settings:
    """What a forward pass applies: a `Split` for products of each row count of a decode step
    (1, 2, 4 and 8 rows; other counts take the next larger), one for prefill chunks, and from how
    many cached keys a decode step's attention is shared between the cores by heads; and the
    layout a model's weights are arranged in when it is built (engine/layout.py), since what
    each split does depends on it."""

    decode: dict[int, Split] = field(default_factory=lambda: {1: ONE_CORE})
    prefill: Split = ONE_CORE
    attention_min_keys: int | None = None  # None: never shared
    attention_parts: int = 1
    query_tile: int = 256  # prompt positions whose attention is computed at once (attention.py)
    prefill_chunk: int = 256  # prompt positions per forward step (kv_cache.hidden_in_chunks)
    prefill_attention_parts: int = 1  # a prompt's attention shared between cores by heads
    layout: str = "blocks"  # the weights': "blocks" (engine/blocked.py) or "rows" (rows.py)

    def __post_init__(self) -> None:
        # Looked up for every product (121 of them a SmolLM2 step): a table by row count, once.
        by_rows = [self.decode[min(r for r in self.decode if r >= n)]
                   for n in range(1, max(self.decode) + 1)]  # fmt: skip
        object.__setattr__(self, "_by_rows", (None, *by_rows))

    def for_rows(self, n_rows: int) -> Split:
        by_rows = self._by_rows  # type: ignore[attr-defined]
        return by_rows[n_rows] if n_rows < len(by_rows) else self.prefill


_active = Settings()
_blas_threads: int | None = None
_blas_libraries: list | None = None  # threadpoolctl's controllers of NumPy's BLAS


def activate(settings: Settings) -> None:
    """Make `settings` the ones products and attention follow (process-wide)."""
    global _active
    if settings is _active:  # every forward pass activates its model's: mostly already so
        return
    _active = settings
    needed = {s.parts for s in (*settings.decode.values(), settings.prefill)}
    needed |= {settings.attention_parts, settings.prefill_attention_parts}
    if max(needed) > 1:
        workers(max(needed))


def active() -> Settings:
    return _active


def set_blas_threads(n: int) -> None:
    """BLAS's thread count for every BLAS library NumPy loaded; a no-op when already so.

    A plan may switch at every product (one row on BLAS's threads, attention shared by our
    helpers on one BLAS thread each), so a switch must be cheap: the libraries are found once
    and told directly, 1 us a switch, where `threadpool_limits` looks them up every time, 265 us
    (24 switches a GPT-2 124M step: 6 ms; Intel Xeon host)."""
    global _blas_threads, _blas_libraries
    if n == _blas_threads:
        return
    if _blas_libraries is None:
        from threadpoolctl import ThreadpoolController  # imported once

        _blas_libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    for library in _blas_libraries:
        library.set_num_threads(n)
    _blas_threads = n


class Workers:
    """Helper threads that compute parts of one piece of work while the calling thread
    computes the first part.

    NumPy releases the GIL inside matmul and the element-wise loops, so the parts run at once.
    Hand-over is by locks, the cheapest signal Python has (measured ~10-20 us a product, which
    is why a plan shares only products that are large enough to pay for it).
    """

    def __init__(self, n_helpers: int) -> None:
        self._busy = threading.Lock()  # one caller at a time; another computes alone
        self._helpers = [_Helper(i) for i in range(n_helpers)]

    @property
    def n_parts(self) -> int:
        return len(self._helpers) + 1

    def run(self, jobs: Sequence[Callable[[], object]]) -> None:
        """Run jobs[0] here and the others on helpers; return when all are done. A caller that
        finds the helpers busy (another thread's product) runs its jobs itself."""
        if len(jobs) > self.n_parts or not self._busy.acquire(blocking=False):
            for job in jobs:
                job()
            return
        try:
            for helper, job in zip(self._helpers, jobs[1:], strict=False):
                helper.start(job)
            try:
                jobs[0]()
            finally:
                errors = [h.wait() for h in self._helpers[: len(jobs) - 1]]
            for error in errors:
                if error is not None:
                    raise error
        finally:
            self._busy.release()


class _Helper:
    def __init__(self, index: int) -> None:
        self._go = threading.Lock()
        self._done = threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._job: Callable[[], object] | None = None
        self._error: BaseException | None = None
        name = f"gpt-tui-core-{index + 1}"
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def start(self, job: Callable[[], object]) -> None:
        self._job, self._error = job, None
        self._go.release()

    def wait(self) -> BaseException | None:
        self._done.acquire()
        self._job = None
        return self._error

    def _serve(self) -> None:
        while True:
            self._go.acquire()
            try:
                self._job()  # type: ignore[misc]
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                self._error = exc
            self._done.release()


_workers: Workers | None = None


def workers(n_parts: int) -> Workers:
    """The process's helper threads, enough for `n_parts` parts (started once, then kept)."""
    global _workers
    if _workers is None or _workers.n_parts < n_parts:
        _workers = Workers(n_parts - 1)
    return _workers


def run_parts(jobs: Sequence[Callable[[], object]]) -> None:
    """Run the jobs at once on the cores (one job: here)."""
    if len(jobs) == 1:
        jobs[0]()
    else:
        workers(len(jobs)).run(jobs)


def ranges(n: int, parts: int) -> list[tuple[int, int]]:
    """[0, n) cut into `parts` nearly equal ranges (fewer when n is smaller)."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))
