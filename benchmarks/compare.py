"""Compare gpt-tui's engine with HuggingFace transformers and a no-cache reference, same weights.

Run from the repository root, in a Python that has numpy and (optionally) torch + transformers:

    python3.11 -m venv /tmp/ref-torch
    /tmp/ref-torch/bin/pip install torch==2.13.0 transformers numpy platformdirs threadpoolctl
    PYTHONPATH=. /tmp/ref-torch/bin/python benchmarks/compare.py --size 124M

(that exact torch installs a CPU build from a file on these machines). torch is not a dependency
of gpt-tui; without it the transformers rows are skipped. Before timing,
the script checks that transformers' logits agree with ours within 1e-4 on the same weights.
Machines are shared and noisy: each figure is measured in rounds that alternate the
implementations, and the medians and each round's ratio are printed.
"""

from __future__ import annotations

# isort: off
import gpt_tui  # noqa: F401  (first: OpenBLAS's threads are told to sleep before NumPy loads it)
# isort: on

import argparse
import time
from collections.abc import Callable

import numpy as np

from gpt_tui.bench.speculative import measure_verification
from gpt_tui.bench.speed import BandwidthProbe, measure_decode, measure_prefill
from gpt_tui.engine import GPT2
from gpt_tui.engine.params import flatten_params
from gpt_tui.engine.plan.measure import measure_each_layout
from gpt_tui.models.catalog import GPT2_HPARAMS
from gpt_tui.models.random_weights import random_gpt2_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=list(GPT2_HPARAMS), default="124M")
    parser.add_argument("--prefill", type=int, default=512)
    parser.add_argument("--long", type=int, default=900, help="context of the long decode figure")
    parser.add_argument("--steps", type=int, default=32, help="decode steps per figure")
    parser.add_argument("--threads", type=int, default=2, help="torch's threads")
    parser.add_argument("--rounds", type=int, default=3, help="rounds alternating the two")
    parser.add_argument(
        "--layouts",
        action="store_true",
        help="gpt-tui in each weight layout (both planned in the same rounds), not the plan's",
    )
    args = parser.parse_args()

    hparams = GPT2_HPARAMS[args.size]
    params = random_gpt2_params(hparams, seed=0)
    if args.layouts:  # each model converts its own copy of the plain weights
        plans = measure_each_layout(GPT2(params, hparams, plan="default"))
        models = {f"gpt-tui, {lay}": GPT2(params, hparams, plan=p) for lay, p in plans.items()}
    else:
        models = {"gpt-tui (NumPy, kv cache)": GPT2(params, hparams)}
    ours = next(iter(models.values()))
    weight_bytes = sum(a.nbytes for n, a in flatten_params(params).items() if n != "wpe")
    print(f"GPT-2 {args.size} shapes, random weights; {weight_bytes / 1e6:.0f} MB read per token")

    hf = _transformers_model(params, hparams, args.threads)
    if hf is None:
        print("transformers/torch not importable here: skipping that implementation")
    else:
        _check_agreement(ours, hf)
    implementations: dict[str, dict[str, Callable[[], float]]] = {
        name: {
            "prefill": lambda m=m: measure_prefill(m, args.prefill),
            "decode@16": lambda m=m: measure_decode(m, 16, args.steps, between=probe.read),
            "decode@long": lambda m=m: measure_decode(m, args.long, args.steps, between=probe.read),
        }
        for name, m in models.items()
    }
    if hf is not None:
        implementations["transformers + torch (kv cache)"] = {
            "prefill": lambda: _hf_prefill(hf, hparams, args.prefill),
            "decode@16": lambda: _hf_decode(hf, hparams, 16, args.steps),
            "decode@long": lambda: _hf_decode(hf, hparams, args.long, args.steps),
        }
    # A pass over 8 new positions after 16 cached ones, against a one-position step: the cost
    # of a speculative verification (or 8 streams' worth of rows), which rests on how the
    # BLAS at hand does small matrix products whose weights come from memory.
    for name, m in models.items():
        implementations[name]["8 positions"] = lambda m=m: measure_verification(
            m, positions=(8,), context=16, rounds=5
        ).ratios[8]
    if hf is not None:
        hf_row = implementations["transformers + torch (kv cache)"]
        hf_row["8 positions"] = lambda: _hf_continuation(hf, hparams, 16, 8)
    figures = ("prefill", "decode@16", "decode@long", "8 positions")
    # The machines are shared and their speed drifts from one minute to the next, so each
    # figure is taken in rounds that alternate the implementations; the roofline is read
    # between our decode runs. Reported: the median of the rounds, and each round's ratio.
    results: dict[str, dict[str, list[float]]] = {
        name: {f: [] for f in figures} for name in implementations
    }
    with BandwidthProbe() as probe:
        for _ in range(args.rounds):
            for figure in figures:
                for name, measure in implementations.items():
                    results[name][figure].append(measure[figure]())
    bandwidth = probe.median()
    roofline = bandwidth * 1e9 / weight_bytes
    print(
        f"weight streaming {bandwidth:.1f} GB/s (readings {min(probe.readings):.1f}-"
        f"{max(probe.readings):.1f}) -> decode roofline {roofline:.1f} tokens/s; "
        f"{args.rounds} rounds, each implementation in turn\n"
    )
    naive_16 = 1 / _median_time(lambda: naive_forward(params, hparams, np.arange(16)), 5)
    naive_256 = 1 / _median_time(lambda: naive_forward(params, hparams, np.arange(256)), 3)

    long = f"decode@{args.long}"
    header = f"{'implementation':34} {'prefill':>10} {'decode@16':>10} {long:>11}"
    print(header + f" {'% roofline @16':>15} {'% roofline @' + str(args.long):>16}")
    median = {n: {f: float(np.median(v)) for f, v in r.items()} for n, r in results.items()}
    for name, row in median.items():
        print(
            f"{name:34} {row['prefill']:10.1f} {row['decode@16']:10.1f} {row['decode@long']:11.1f} "
            f"{row['decode@16'] / roofline:15.0%} {row['decode@long'] / roofline:16.0%}"
        )
    print(f"{'no cache, per-head loop (picoGPT)':34} {'':>10} {naive_16:10.1f}")
    print(f"(tokens/s, medians of the rounds; prefill of {args.prefill} tokens)")
    print(
        "\na pass over 8 new positions after 16 cached ones, in one-position steps "
        "(median of the rounds; each round):"
    )
    for name, row in results.items():
        each = " ".join(f"{x:.2f}" for x in row["8 positions"])
        print(f"{name:34} {np.median(row['8 positions']):.2f}x ({each})")
    ours_name = next(iter(results))
    for name in models if hf is not None else ():
        ours_r, hf_r = results[name], results["transformers + torch (kv cache)"]
        ratios = {
            f: [o / t for o, t in zip(ours_r[f], hf_r[f], strict=True)]
            for f in figures
            if f != "8 positions"  # a cost, not a speed: printed on its own above
        }
        print(
            f"\n{name} / transformers, median of the rounds' ratios (each round): "
            + ", ".join(
                f"{f.replace('long', str(args.long))} {np.median(r):.2f}x "
                f"({' '.join(f'{x:.2f}' for x in r)})"
                for f, r in ratios.items()
            )
        )
    print(
        f"gpt-tui / no-cache per-head loop: {median[ours_name]['decode@16'] / naive_16:.0f}x at "
        f"a 16-token context; at 256 tokens the reference makes {naive_256:.2f} tokens/s, "
        f"gpt-tui {measure_decode(ours, 256, args.steps) / naive_256:.0f}x that"
    )
    row = median[ours_name]
    print(
        f"per-token decode time at {args.long} vs 16: {row['decode@16'] / row['decode@long']:.2f}x"
    )


# --- the reference the original article builds: no cache, one head at a time -----------------


def naive_forward(params: dict, hparams: dict, ids: np.ndarray) -> np.ndarray:
    """picoGPT's forward pass, as written there: recomputes everything, loops over heads."""

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))

    def softmax(x):
        e = np.exp(x - np.max(x, axis=-1, keepdims=True))
        return e / np.sum(e, axis=-1, keepdims=True)

    def layer_norm(x, g, b, eps=1e-5):
        mean = np.mean(x, axis=-1, keepdims=True)
        variance = np.var(x, axis=-1, keepdims=True)
        return g * (x - mean) / np.sqrt(variance + eps) + b

    def linear(x, w, b):
        return x @ w + b

    def attention(q, k, v, mask):
        return softmax(q @ k.T / np.sqrt(q.shape[-1]) + mask) @ v

    def mha(x, c_attn, c_proj, n_head):
        x = linear(x, **c_attn)
        qkv_heads = [np.split(part, n_head, axis=-1) for part in np.split(x, 3, axis=-1)]
        mask = (1 - np.tri(x.shape[0], dtype=x.dtype)) * -1e10
        heads = [attention(q, k, v, mask) for q, k, v in zip(*qkv_heads, strict=True)]
        return linear(np.hstack(heads), **c_proj)

    x = params["wte"][ids] + params["wpe"][range(len(ids))]
    for block in params["blocks"]:
        x = x + mha(layer_norm(x, **block["ln_1"]), **block["attn"], n_head=hparams["n_head"])
        h = gelu(linear(layer_norm(x, **block["ln_2"]), **block["mlp"]["c_fc"]))
        x = x + linear(h, **block["mlp"]["c_proj"])
    return layer_norm(x, **params["ln_f"]) @ params["wte"].T


# --- transformers --------------------------------------------------------------------------------


def _transformers_model(params: dict, hparams: dict, threads: int):
    try:
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        return None
    torch.set_num_threads(threads)
    config = GPT2Config(
        vocab_size=hparams["n_vocab"],
        n_positions=hparams["n_ctx"],
        n_embd=hparams["n_embd"],
        n_layer=hparams["n_layer"],
        n_head=hparams["n_head"],
        activation_function="gelu_new",
        layer_norm_epsilon=1e-5,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
    )
    model = GPT2LMHeadModel(config).eval()
    # HF's Conv1D keeps OpenAI's [n_in, n_out] layout: weights go in untransposed.
    state = {
        "transformer.wte.weight": params["wte"],
        "transformer.wpe.weight": params["wpe"],
        "transformer.ln_f.weight": params["ln_f"]["g"],
        "transformer.ln_f.bias": params["ln_f"]["b"],
    }
    for i, block in enumerate(params["blocks"]):
        h = f"transformer.h.{i}."
        for ours, theirs in [("ln_1", "ln_1"), ("ln_2", "ln_2")]:
            state[h + theirs + ".weight"] = block[ours]["g"]
            state[h + theirs + ".bias"] = block[ours]["b"]
        for group, layer in [
            ("attn", "c_attn"),
            ("attn", "c_proj"),
            ("mlp", "c_fc"),
            ("mlp", "c_proj"),
        ]:
            state[f"{h}{group}.{layer}.weight"] = block[group][layer]["w"]
            state[f"{h}{group}.{layer}.bias"] = block[group][layer]["b"]
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    model.tie_weights()
    return model


def _check_agreement(ours: GPT2, hf) -> None:
    import torch

    ids = np.random.default_rng(5).integers(0, ours.n_vocab, 24)
    with torch.no_grad():
        theirs = hf(torch.from_numpy(ids)[None]).logits[0].numpy()
    diff = float(np.abs(ours.forward(ids) - theirs).max())
    print(f"transformers vs gpt-tui logits on the same weights: max |diff| = {diff:.2e}")
    if diff > 1e-4:
        raise SystemExit("the implementations disagree: timings would compare different things")


def _hf_prefill(hf, hparams: dict, n: int) -> float:
    import torch

    ids = torch.from_numpy(np.random.default_rng(0).integers(0, hparams["n_vocab"], n))[None]
    with torch.no_grad():
        return n / _median_time(lambda: hf(ids, use_cache=True), 3)


def _hf_decode(hf, hparams: dict, context: int, steps: int) -> float:
    import torch

    rng = np.random.default_rng(0)
    with torch.no_grad():
        out = hf(
            torch.from_numpy(rng.integers(0, hparams["n_vocab"], context))[None], use_cache=True
        )
        past = out.past_key_values
        times = []
        for token in rng.integers(0, hparams["n_vocab"], steps):
            start = time.perf_counter()
            out = hf(torch.tensor([[int(token)]]), past_key_values=past, use_cache=True)
            times.append(time.perf_counter() - start)
            past = out.past_key_values
    return 1 / float(np.median(times))


def _hf_continuation(hf, hparams: dict, context: int, n: int, repeats: int = 5) -> float:
    """A pass over n positions after `context` cached tokens / a one-position step, for
    transformers (its cache cropped back after each pass, as a verification's rejected rows
    are): the median of `repeats` pairs timed back to back (after one warm-up pair), so a slow
    spell of a shared machine falls on both."""
    import torch

    rng = np.random.default_rng(0)
    with torch.no_grad():
        ids = torch.from_numpy(rng.integers(0, hparams["n_vocab"], context))[None]
        past = hf(ids, use_cache=True).past_key_values
        new = torch.from_numpy(rng.integers(0, hparams["n_vocab"], n))[None]

        def timed(ids) -> float:
            start = time.perf_counter()
            hf(ids, past_key_values=past, use_cache=True)
            seconds = time.perf_counter() - start
            past.crop(context - past.get_seq_length())  # (transformers 5: minus the surplus)
            return seconds

        timed(new[:, :1]), timed(new)
        return float(np.median([timed(new) / timed(new[:, :1]) for _ in range(repeats)]))


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


if __name__ == "__main__":
    main()
