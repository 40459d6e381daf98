"""Speed measurements of the engine: prefill, decode at a short and a long context, the machine's
weight-streaming bandwidth, and the decode rate as a share of the roofline that bandwidth implies.

Decoding one token reads every weight once, so on a CPU it is bound by memory bandwidth: the
roofline is (bytes streamed per second) / (weight bytes read per token). We measure the bandwidth
the same way the engine uses it, with a BLAS matrix-vector product over a matrix far larger than
the caches.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gpt_tui.bench.speculative import measure_verification
from gpt_tui.engine import SamplingParams, cores, generate
from gpt_tui.engine.language_model import LanguageModel
from gpt_tui.engine.params import HELD, flatten_params
from gpt_tui.engine.plan.tuner import settle_tuner

PROBE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class BenchResult:
    model: str
    weight_bytes: int  # bytes read per decode step
    prefill_tokens: int
    prefill_tok_s: float
    short_context: int
    decode_short_tok_s: float
    long_context: int
    decode_long_tok_s: float
    bandwidth_gb_s: float  # median of the probe's readings between the decode runs
    peak_rss_bytes: int
    overhead_s: float | None = None  # per token, outside the forward pass (needs a tokenizer)
    n_batch: int = 1
    decode_batch_steps_s: float | None = None  # steps/s with n_batch streams at short context
    products_s: float | None = None  # one token's weight products alone, seconds
    bandwidth_range: tuple[float, float] | None = None  # lowest and highest probe reading
    continuation: int = 0  # positions of the continuation measured (0: none)
    continuation_s: float | None = None  # seconds of one such forward pass
    continuation_ratio: float | None = None  # that pass / a step, median over rounds

    @property
    def roofline_tok_s(self) -> float:
        return self.bandwidth_gb_s * 1e9 / self.weight_bytes

    def share_of_roofline(self, tok_s: float) -> float:
        return tok_s / self.roofline_tok_s


def decode_weight_bytes(model: LanguageModel) -> int:
    """Bytes of weights one decode step reads: all of them, but one row of the position table."""
    params = getattr(model, "params", None)
    if params is None:
        raise ValueError("this model does not expose its params")
    flat = flatten_params(params)
    return sum(a.nbytes for name, a in flat.items() if name != "wpe")


def measure_products(model: LanguageModel, repeats: int = 9) -> float:
    """Seconds the matrix products of one decode step take alone: every weight matrix of the
    model, in its own layout, times one row. What a step cannot go below, with these BLAS
    kernels on this machine; the rest of a step is the engine's own work."""
    params = getattr(model, "params", None)
    if params is None:
        raise ValueError("this model does not expose its params")
    # The matrices a step multiplies by (not wpe or token_embd: a step reads one row of them),
    # split between the cores as the model's plan does it for a decode step.
    weights = [w for w in flatten_params(params).values() if isinstance(w, HELD)]
    planned = getattr(model, "planned", None)
    if planned is not None:
        cores.activate(planned.tuner.settings)
    rows = [np.ones((1, w.shape[0]), dtype=np.float32) for w in weights]

    def products() -> None:
        for x, w in zip(rows, weights, strict=True):
            x @ w

    products()
    return float(np.median([_timed(products) for _ in range(repeats)]))


def _probe_operands(n_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A matrix much larger than any cache, and what a BLAS matrix-vector product with it needs."""
    n_in = 4096
    # [n_in, n_out], read as x @ w: the layout and the product every projection of the engine uses
    w = np.random.default_rng(0).standard_normal((n_in, n_bytes // (4 * n_in)), dtype=np.float32)
    x = np.ones(n_in, dtype=np.float32)
    out = np.empty(w.shape[1], dtype=np.float32)
    np.matmul(x, w, out=out)  # warm up: page in, pick kernels
    return w, x, out


def _stream_rate(w: np.ndarray, x: np.ndarray, out: np.ndarray, repeats: int) -> float:
    """GB/s the product streams from w: the best of `repeats`."""
    best = min(_timed(lambda: np.matmul(x, w, out=out)) for _ in range(repeats))
    return w.nbytes / best / 1e9


PROBE_SETTLE_S = 0.4
"""The probe answers this long after its reading: OpenBLAS's threads spin for a while after a
threaded call and would hold the core the engine's next step needs (measured: products shared
between the cores took 50 ms 0.05 s after a 2-thread BLAS call, 28 ms once it settled)."""


def _serve_probe(n_bytes: int = PROBE_BYTES, repeats: int = 6) -> None:
    """The probe process: one reading per line read on stdin, printed on stdout."""
    operands = _probe_operands(n_bytes)
    time.sleep(PROBE_SETTLE_S)
    print("ready", flush=True)
    for _ in sys.stdin:
        rate = _stream_rate(*operands, repeats)
        time.sleep(PROBE_SETTLE_S)
        print(rate, flush=True)


class BandwidthProbe:
    """The machine's weight-streaming bandwidth (a 512 MB matrix-vector product), read on
    demand from a child process that keeps its matrix.

    The bandwidth this machine gives drifts (here, a shared host: 31 to 48 GB/s within a minute),
    so a roofline measured once, before the decode runs, compares figures of different moments.
    The probe is read between the decode runs instead, and their median is the roofline. A
    child process keeps its 512 MB out of our peak memory figure; it waits, idle, in between.
    """

    def __init__(self) -> None:
        import subprocess

        code = "from gpt_tui.bench.speed import _serve_probe; _serve_probe()"
        self._process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.readings: list[float] = []
        if self._answer() != "ready":
            raise RuntimeError("the bandwidth probe did not start")

    def read(self) -> float:
        """One reading, GB/s (kept in `readings`)."""
        self._process.stdin.write("\n")  # type: ignore[union-attr]
        self._process.stdin.flush()  # type: ignore[union-attr]
        self.readings.append(float(self._answer()))
        return self.readings[-1]

    def median(self) -> float:
        return float(np.median(self.readings))

    def _answer(self) -> str:
        line = self._process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the bandwidth probe ended (exit code {self._process.wait()})")
        return line.strip()

    def close(self) -> None:
        self._process.stdin.close()  # type: ignore[union-attr]
        self._process.wait()

    def __enter__(self) -> BandwidthProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def measure_prefill(model: LanguageModel, n_tokens: int, repeats: int = 3) -> float:
    ids = _ids(model, n_tokens)
    best = min(
        _timed(lambda: model.forward(ids, model.new_cache(), last_only=True))
        for _ in range(repeats)
    )
    return n_tokens / best


def measure_decode(
    model: LanguageModel,
    context: int,
    n_steps: int,
    n_batch: int = 1,
    between: Callable[[], object] | None = None,
    every: int = 8,
) -> float:
    """Steps/s of one-token-per-stream steps after `context` cached tokens (median step).

    `between` is called before every `every` steps (and not timed): a bandwidth probe reading.
    """
    cache = model.new_cache()
    model.forward(_ids(model, context), cache, last_only=True)  # only the cache is wanted
    if n_batch > 1:
        cache = cache.repeat(n_batch)
    settle_tuner(model, cache)
    times = []
    for i, token in enumerate(_ids(model, n_steps, seed=1)):
        if between is not None and i % every == 0:
            between()
        step = np.full((n_batch, 1), token)  # [n_batch, 1]
        times.append(_timed(lambda s=step: model.forward(s, cache, last_only=True)))
    return 1.0 / float(np.median(times))


class _ReplayModel:
    """Answers every forward with logits computed once: timing `generate` against it leaves
    exactly the work outside the forward pass (sampling, the top-k report, detokenising)."""

    def __init__(self, model: LanguageModel, logits: np.ndarray) -> None:
        self.n_vocab, self.n_ctx, self.model, self.logits = (
            model.n_vocab,
            model.n_ctx,
            model,
            logits,
        )

    def new_cache(self, n_batch: int = 1, n_ctx: int | None = None):
        return self.model.new_cache(n_batch, n_ctx)

    def forward(self, ids, cache=None, *, last_only=False) -> np.ndarray:
        ids = np.asarray(ids)
        if cache is not None:
            cache.commit(ids if ids.ndim == 2 else ids[None, :])
        return self.logits[None, :] if ids.ndim == 1 else self.logits[None, None, :]


def measure_overhead(model: LanguageModel, tokenizer, n_steps: int = 200) -> float:
    """Seconds per token `generate` spends outside the forward pass, with typical settings."""

    cache = model.new_cache()
    logits = model.forward(_ids(model, 16), cache, last_only=True)[-1]  # a real distribution
    replay = _ReplayModel(model, logits)
    params = SamplingParams(
        temperature=0.8, top_p=0.95, repetition_penalty=1.1, seed=0, max_tokens=n_steps
    )
    start = time.perf_counter()
    for _ in generate(replay, tokenizer, [0], params, n_top=10):
        pass
    return (time.perf_counter() - start) / n_steps


def peak_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def run_bench(
    model: LanguageModel,
    name: str,
    *,
    prefill_tokens: int = 512,
    short_context: int = 16,
    long_context: int = 900,
    decode_steps: int = 32,
    n_batch: int = 1,
    tokenizer=None,
    report: Callable[[str], None] = lambda step: None,
) -> BenchResult:
    n_ctx = model.n_ctx
    prefill_tokens = min(prefill_tokens, n_ctx)
    long_context = min(long_context, n_ctx - decode_steps)
    short_context = min(short_context, long_context)
    report("bandwidth")
    with BandwidthProbe() as probe:
        probe.read()
        report("weight products alone")
        products = measure_products(model)
        report(f"prefill of {prefill_tokens} tokens")
        prefill = measure_prefill(model, prefill_tokens)
        report(f"decode at {short_context} tokens of context")
        short = measure_decode(model, short_context, decode_steps, between=probe.read)
        report(f"decode at {long_context} tokens of context")
        long = measure_decode(model, long_context, decode_steps, between=probe.read)
        probe.read()
    overhead = None
    if tokenizer is not None:
        report("generation overhead outside the forward pass")
        overhead = measure_overhead(model, tokenizer)
    report(f"a continuation of 8 positions after {short_context}")
    continuation = measure_verification(model, positions=(8,), context=short_context)
    batch = None
    if n_batch > 1:
        report(f"decode of {n_batch} streams at {short_context} tokens of context")
        batch = measure_decode(model, short_context, decode_steps, n_batch)
    return BenchResult(
        model=name,
        weight_bytes=decode_weight_bytes(model),
        prefill_tokens=prefill_tokens,
        prefill_tok_s=prefill,
        short_context=short_context,
        decode_short_tok_s=short,
        long_context=long_context,
        decode_long_tok_s=long,
        bandwidth_gb_s=probe.median(),
        bandwidth_range=(min(probe.readings), max(probe.readings)),
        peak_rss_bytes=peak_rss_bytes(),
        overhead_s=overhead,
        n_batch=n_batch,
        decode_batch_steps_s=batch,
        products_s=products,
        continuation=8,
        continuation_s=continuation.pass_s[8],
        continuation_ratio=continuation.ratios[8],
    )


def _ids(model: LanguageModel, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, model.n_vocab, n)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
