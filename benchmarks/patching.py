"""How long a patching sweep takes (look inside's patching tab and `gpt-tui patch`): GPT-2
124M shapes, random weights, a 16-token pair. The issue's budget: 10 s on 2 cores.

Run from the repository root:

    .venv/bin/python benchmarks/patching.py                 # 3 sweeps, 16 tokens
    .venv/bin/python benchmarks/patching.py --tokens 32 --repeats 5

Each sweep is what the tab runs when enter is pressed (playground/patching.py's `patch_ids`
with the answer and the alternative left to their defaults: two passes for the top tokens,
then 12 x 16 residual patches, 144 heads and 12 MLPs). The machine's load is printed beside
the figures: on a shared machine, compare rows of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from gpt_tui.engine import GPT2
from gpt_tui.engine.plan import cpu_name
from gpt_tui.models.catalog import GPT2_HPARAMS
from gpt_tui.models.random_weights import random_gpt2_params
from gpt_tui.playground.patching import patch_ids


class _Tokens:
    """What the sweep asks of a tokenizer: a token's text (for the report's labels)."""

    def token_text(self, token: int) -> str:
        return f"<{token}>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="124M", choices=list(GPT2_HPARAMS))
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    hparams = GPT2_HPARAMS[args.size]
    model = GPT2(random_gpt2_params(hparams, streaming=True), hparams)
    rng = np.random.default_rng(0)
    clean = rng.integers(0, hparams["n_vocab"], size=args.tokens).tolist()
    corrupt = list(clean)
    corrupt[args.tokens // 3] = (clean[args.tokens // 3] + 1) % hparams["n_vocab"]
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; load before: {os.getloadavg()}")
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        patch_ids(model, _Tokens(), clean, corrupt)
        times.append(time.perf_counter() - start)
        print(f"  sweep: {times[-1]:.2f} s  (load {os.getloadavg()[0]:.2f})")
    n_layer, n_head = hparams["n_layer"], hparams["n_head"]
    median = statistics.median(times)
    print(f"random {args.size}, {args.tokens} tokens ({n_layer} x {args.tokens} residual "
          f"patches, {n_layer * n_head} heads, {n_layer} MLPs): median {median:.2f} s, "
          f"best {min(times):.2f} s of {args.repeats}")  # fmt: skip


if __name__ == "__main__":
    main()
