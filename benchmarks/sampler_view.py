"""How fast the sampler view opens and redraws (issue 24: open <= 0.3 s at 1,000 tokens of
context on SmolLM2, a slider move <= 50 ms). A benchmark, not a test: run it by hand.

    GPT_TUI_HOME=... python benchmarks/sampler_view.py [MODEL]

The context is the README's first 1,000 tokens, held in a kv cache as after a generation; the
view is opened on its last position (`StepLab.open`: one position over the cache) and redrawn
under several settings (`StepLab.view`: the stages only), with DRY on in one of them.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

from gpt_tui.engine import SamplingParams
from gpt_tui.models.loading import load_model
from gpt_tui.playground.look_inside_requests import LensRequest
from gpt_tui.playground.sampler_lab import StepLab, StepRequest

N_CONTEXT = 1000


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "smollm2"
    loaded = load_model(name)
    model, tokenizer = loaded.model, loaded.tokenizer
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text() * 4
    ids = tokenizer.encode(text)[:N_CONTEXT]
    cache = model.new_cache()
    model.forward(ids, cache, last_only=True)  # as after a generation
    position = len(ids) - 1
    lens = LensRequest(model, tokenizer, tuple(ids), position - 1, ids[position], (), "bench",
                       cache)  # fmt: skip
    request = StepRequest(lens, n_prompt=len(ids) // 2, reply_position=0)
    lock = threading.Lock()
    opens = []
    for _ in range(5):
        start = time.perf_counter()
        lab = StepLab.open(request, lock)
        lab.view(SamplingParams())
        opens.append(time.perf_counter() - start)
    print(
        f"{name}: open (logits over the cache + first view), {len(ids)} tokens of context: "
        f"median {statistics.median(opens) * 1000:.0f} ms, min {min(opens) * 1000:.0f} ms"
    )
    settings = [
        SamplingParams(temperature=t, top_p=p, top_k=k)
        for t in (0.3, 0.7, 1.0, 1.3)
        for p in (0.5, 0.9, 1.0)
        for k in (0, 40)
    ]
    settings.append(SamplingParams(temperature=0.8, dry_multiplier=0.8, min_p=0.05))
    lab.view(settings[-1])  # DRY's breaker mask, made once per set of breakers
    for label, chosen in (("slider move", settings[:-1]), ("with DRY", settings[-1:] * 10)):
        times = []
        for params in chosen:
            start = time.perf_counter()
            lab.view(params)
            times.append(time.perf_counter() - start)
        print(
            f"{label}: redraw (stages only) median {statistics.median(times) * 1000:.1f} ms, "
            f"max {max(times) * 1000:.1f} ms over {len(times)}"
        )


if __name__ == "__main__":
    main()
