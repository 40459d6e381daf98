"""The weights' two layouts (column blocks, rows of W^T) against each other: same weights, same
run, rounds alternating the two.

Both layouts are planned on the same model in the same rounds (`measure_each_layout`: each
one's best splits), then two models are built, each from its own copy of the weights and
arranged in its layout, and every figure is taken in rounds that alternate them: decode at a
short and a long context (with the bandwidth probe read between, for the share of the
roofline), a prefill, several streams at once, and a pass of several positions (speculative
verification). Run from the repository root:

    .venv/bin/python benchmarks/layouts.py --random 124M
    .venv/bin/python benchmarks/layouts.py -m smollm2
"""

from __future__ import annotations

# isort: off
import gpt_tui  # noqa: F401  (first: OpenBLAS's threads are told to sleep before NumPy loads it)
# isort: on

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from gpt_tui.bench.speculative import measure_verification
from gpt_tui.bench.speed import BandwidthProbe, decode_weight_bytes, measure_decode, measure_prefill
from gpt_tui.engine import GPT2, Llama
from gpt_tui.engine.layout import LAYOUTS
from gpt_tui.engine.plan import cpu_name
from gpt_tui.engine.plan.measure import measure_each_layout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--random", metavar="SIZE", help="random GPT-2 weights of this size")
    which.add_argument("--model", "-m", help="a model name or path (converted on first use)")
    parser.add_argument("--prefill", type=int, default=512)
    parser.add_argument("--long", type=int, default=900, help="context of the long decode figure")
    parser.add_argument("--steps", type=int, default=16, help="decode steps per figure")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--positions", type=int, default=8, help="positions of one pass")
    parser.add_argument("--rounds", type=int, default=3, help="rounds alternating the layouts")
    args = parser.parse_args()

    build, name = _builder(args)
    base = build("default")  # blocks, nothing measured: what each layout's plan is timed on
    plans = measure_each_layout(base)
    del base
    models = {layout: build(plans[layout]) for layout in LAYOUTS}
    weight_bytes = decode_weight_bytes(models[LAYOUTS[0]])
    blas = plans[LAYOUTS[0]].key["machine"]["blas"]
    print(f"{name} on {cpu_name()} ({blas}); {weight_bytes / 1e6:.0f} MB read per token")
    for layout, plan in plans.items():
        print(f"  {layout} plan: " + "; ".join(f"{k} {v}" for k, v in plan.describe()[1:6]))

    long = min(args.long, models[LAYOUTS[0]].n_ctx - args.steps)
    with BandwidthProbe() as probe:
        figures: dict[str, Callable[[Any], float]] = {
            "decode @16 (tok/s)": lambda m: measure_decode(m, 16, args.steps, between=probe.read),
            f"decode @{long} (tok/s)": lambda m: measure_decode(
                m, long, args.steps, between=probe.read
            ),
            f"prefill {args.prefill} (tok/s)": lambda m: measure_prefill(m, args.prefill, 2),
            f"{args.streams} streams (step ms)": lambda m: (
                1e3 / measure_decode(m, 16, args.steps, args.streams)
            ),
            f"{args.positions} positions @16 (pass ms)": lambda m: (
                1e3
                * measure_verification(m, (args.positions,), 16, rounds=5).pass_s[args.positions]
            ),
        }
        results = {f: {layout: [] for layout in LAYOUTS} for f in figures}
        for _ in range(args.rounds):
            for figure, run in figures.items():
                for layout, model in models.items():
                    results[figure][layout].append(run(model))
    roofline = probe.median() * 1e9 / weight_bytes
    print(
        f"weight streaming {probe.median():.1f} GB/s (readings {min(probe.readings):.1f}-"
        f"{max(probe.readings):.1f}): roofline {roofline:.1f} tok/s"
    )
    print(f"{'figure':28s}" + "".join(f"{layout:>24s}" for layout in LAYOUTS) + "   rows/blocks")
    for figure, by_layout in results.items():
        cells = []
        for layout in LAYOUTS:
            values = by_layout[layout]
            median = float(np.median(values))
            share = f" {median / roofline:4.0%}" if figure.startswith("decode") else "     "
            cells.append(f"{median:8.1f} ({min(values):.1f}-{max(values):.1f}){share}")
        ratios = [r / b for b, r in zip(by_layout["blocks"], by_layout["rows"], strict=True)]
        print(
            f"{figure:28s}" + "".join(f"{c:>24s}" for c in cells)
            + "   " + " ".join(f"{r:.2f}" for r in ratios)
        )  # fmt: skip


def _builder(args: argparse.Namespace) -> tuple[Callable[[Any], Any], str]:
    """What builds a model from its own copy of the weights under a plan, and its name."""
    if args.random:
        from gpt_tui.models.catalog import GPT2_HPARAMS
        from gpt_tui.models.random_weights import random_gpt2_params

        hparams = GPT2_HPARAMS[args.random]
        return (
            lambda plan: GPT2(random_gpt2_params(hparams, streaming=True), hparams, plan=plan),
            f"random GPT-2 {args.random}",
        )
    from gpt_tui.models.loading import load_model
    from gpt_tui.models.model_dir import read_hparams, read_params

    path = load_model(args.model).path  # converted into the cache on first use
    hparams = read_hparams(path)
    model_class = {"gpt2": GPT2, "llama": Llama}[hparams["architecture"]]
    return lambda plan: model_class(read_params(path), hparams, plan=plan), args.model


if __name__ == "__main__":
    main()
