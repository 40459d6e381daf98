"""Ablation, steering and activation patching (engine/interventions.py) against an independent
float64 NumPy pass edited at the same points (tests/engine/float64_reference.py), for GPT-2 and
the grouped-query LLaMA path, and against transformers with PyTorch forward hooks on the same
random weights (fixtures/interventions_reference.safetensors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from float64_reference import reference_logits
from safetensors import safe_open
from safetensors.numpy import load_file

from gpt_tui.engine import GPT2, Llama
from gpt_tui.engine.interventions import (
    Ablation,
    ablation_hooks,
    parse_ablation,
    patch,
    steering_hooks,
    steering_vector,
)
from gpt_tui.engine.params import unflatten_params
from gpt_tui.models.gguf_file import llama_params

IDS = np.random.default_rng(8).integers(0, 50257, size=11)  # [11]
OTHER = np.random.default_rng(9).integers(0, 50257, size=11)  # [11]
POINT = {"head": "attn.hook_z", "attn": "hook_attn_out", "mlp": "hook_mlp_out"}


@pytest.fixture(params=["gpt2", "llama"])
def case(request, tiny_gpt2, tiny_params, tiny_random_llama, tiny_llama_params):
    if request.param == "gpt2":
        return "gpt2", tiny_gpt2, tiny_params
    return "llama", tiny_random_llama, tiny_llama_params


def _captured(arch, model, params, ids) -> dict:
    """The float64 reference's arrays at every edit point of a plain pass: {(point, layer)}."""
    seen = {}

    def capture(point, layer, x):
        seen[(point, layer)] = x

    reference_logits(arch, params, model.hparams, ids, capture)
    return seen


def _close(actual, expected) -> None:
    np.testing.assert_allclose(actual, expected, atol=2e-4 * np.abs(expected).max(), rtol=0)


@pytest.mark.parametrize("mean", [False, True])
@pytest.mark.parametrize(
    "ablation", [Ablation(1, "head", 1), Ablation(0, "attn"), Ablation(1, "mlp")], ids=str
)
def test_ablation_agrees_with_the_reference(case, ablation, mean) -> None:
    arch, model, params = case
    a = Ablation(ablation.layer, ablation.part, ablation.head, mean)
    logits = model.forward(IDS, hooks=ablation_hooks(model, [a], IDS))
    seen = _captured(arch, model, params, IDS)
    point = POINT[a.part]

    def edit(at, layer, x):
        if (at, layer) != (point, a.layer):
            return None
        value = seen[(at, layer)].mean(axis=0) if mean else np.zeros(x.shape[1:])
        if a.part == "head":
            x[:, a.head] = value[a.head] if mean else 0.0
        else:
            x[:] = value
        return x

    expected = reference_logits(arch, params, model.hparams, IDS, edit)
    assert np.abs(expected - reference_logits(arch, params, model.hparams, IDS)).max() > 1e-3
    _close(logits, expected)


def test_an_ablation_holds_over_a_kv_cache(case) -> None:
    """A mean is taken once from the text, so a pass over a cache equals a full one."""
    _, model, _ = case
    hooks = ablation_hooks(model, [Ablation(0, "head", 0, mean=True), Ablation(1, "mlp")], IDS)
    cache = model.new_cache()
    model.forward(IDS[:-2], cache, hooks=hooks)
    stepped = model.forward(IDS[-2:], cache, hooks=hooks)
    np.testing.assert_allclose(stepped, model.forward(IDS, hooks=hooks)[-2:], atol=2e-5, rtol=1e-5)


def test_steering_agrees_with_the_reference(case) -> None:
    arch, model, params = case
    layer, coef = 1, 3.0
    vector = steering_vector(model, IDS[:6], OTHER[:9], layer)  # texts of any lengths
    a = _captured(arch, model, params, IDS[:6])[("hook_resid_pre", layer)][-1]
    b = _captured(arch, model, params, OTHER[:9])[("hook_resid_pre", layer)][-1]
    np.testing.assert_allclose(vector, a - b, atol=1e-5 * np.abs(a).max())
    logits = model.forward(IDS, hooks=steering_hooks(layer, vector, coef))

    def edit(at, at_layer, x):
        return x + coef * (a - b) if (at, at_layer) == ("hook_resid_pre", layer) else None

    _close(logits, reference_logits(arch, params, model.hparams, IDS, edit))


def test_patching_agrees_with_the_reference(case) -> None:
    arch, model, params = case
    clean, corrupt = IDS, OTHER
    plain_clean = reference_logits(arch, params, model.hparams, clean)
    plain_corrupt = reference_logits(arch, params, model.hparams, corrupt)
    answer, against = int(np.argmax(plain_clean[-1])), int(np.argmax(plain_corrupt[-1]))
    if answer == against:
        against = int(np.argsort(plain_clean[-1])[-2])
    reported = []
    result = patch(model, clean, corrupt, answer, against,
                   progress=lambda done, total: reported.append((done, total)))  # fmt: skip

    def diff(logits):
        return logits[-1, answer] - logits[-1, against]

    clean_diff, corrupt_diff = diff(plain_clean), diff(plain_corrupt)
    assert result.clean == pytest.approx(clean_diff, abs=1e-4)
    assert result.corrupted == pytest.approx(corrupt_diff, abs=1e-4)
    seen = _captured(arch, model, params, clean)

    def patched(point, layer, where) -> float:
        def edit(at, at_layer, x):
            if (at, at_layer) != (point, layer):
                return None
            x[where] = seen[(point, layer)][where]
            return x

        logits = reference_logits(arch, params, model.hparams, corrupt, edit)
        return (diff(logits) - corrupt_diff) / (clean_diff - corrupt_diff)

    n_layer, n_tok = model.n_layer, len(clean)
    resid = [
        [patched("hook_resid_pre", layer, p) for p in range(n_tok)] for layer in range(n_layer)
    ]
    heads = [[patched("attn.hook_z", layer, (slice(None), h)) for h in range(model.n_head)]
             for layer in range(n_layer)]  # fmt: skip
    mlps = [patched("hook_mlp_out", layer, slice(None)) for layer in range(n_layer)]
    np.testing.assert_allclose(result.resid_pre, resid, atol=2e-4)
    np.testing.assert_allclose(result.heads, heads, atol=2e-4)
    np.testing.assert_allclose(result.mlps, mlps, atol=2e-4)
    assert reported[-1][0] == reported[-1][1] and len(reported) == reported[-1][1]


def test_patching_refuses_texts_of_different_lengths(tiny_gpt2) -> None:
    with pytest.raises(ValueError, match="same token length, not 11 and 10 tokens"):
        patch(tiny_gpt2, IDS, OTHER[:10], 1, 2)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1.0", Ablation(1, "head", 0)),
        ("0.attn", Ablation(0, "attn")),
        ("1.mlp:mean", Ablation(1, "mlp", mean=True)),
        ("0.1:mean", Ablation(0, "head", 1, True)),
    ],
)
def test_ablation_specs(spec, expected) -> None:
    assert parse_ablation(spec, 2, 2) == expected
    assert expected.describe() == spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("2.0", "no block 2; the blocks are 0-1"),
        ("1.2", "no head 2; the heads are 0-1"),
        ("1.ffn", "is not L.H, L.attn or L.mlp"),
        ("x", "is not L.H"),
    ],
)
def test_bad_ablation_specs(spec, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ablation(spec, 2, 2)


# --- against Hugging Face transformers with PyTorch forward hooks --------------------------------

INTERVENTIONS = Path(__file__).parents[1] / "fixtures" / "interventions_reference.safetensors"
TRACE = Path(__file__).parents[1] / "fixtures" / "trace_reference.safetensors"


def _hf_case(arch: str) -> tuple:
    """The model of fixtures/trace_reference.safetensors, its ids, and what transformers
    computed with the interventions (fixtures/make_interventions_reference.py)."""
    with safe_open(str(TRACE), "np") as file:
        hparams = json.loads(file.metadata()[f"{arch}.hparams"])
    data = load_file(str(TRACE))
    mine = {k.removeprefix(f"{arch}."): v for k, v in data.items() if k.startswith(f"{arch}.")}
    if arch == "gpt2":
        flat = {k.removeprefix("params."): v for k, v in mine.items() if k.startswith("params.")}
        model = GPT2(unflatten_params(flat), hparams, plan="default")
    else:
        tensors = {k.removeprefix("gguf."): v for k, v in mine.items() if k.startswith("gguf.")}
        model = Llama(llama_params(tensors, hparams), hparams, plan="default")
    hf = load_file(str(INTERVENTIONS))
    hf = {k.removeprefix(f"{arch}."): v for k, v in hf.items() if k.startswith(f"{arch}.")}
    return model, mine["ids"], hf


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_interventions_agree_with_transformers_forward_hooks(arch) -> None:
    """Reached (max abs difference): ablated and steered logits 3.6e-6 (GPT-2) and 8.2e-6
    (LLaMA, grouped-query); normalised patching values 2.2e-6 and 1.3e-6."""
    model, ids, hf = _hf_case(arch)
    cases = {
        "ablate_head": [Ablation(1, "head", 1)],
        "ablate_head_mean": [Ablation(1, "head", 1, mean=True)],
        "ablate_attn": [Ablation(0, "attn")],
        "ablate_mlp_mean": [Ablation(1, "mlp", mean=True)],
    }
    for name, ablations in cases.items():
        logits = model.forward(ids, hooks=ablation_hooks(model, ablations, ids))
        np.testing.assert_allclose(logits, hf[name], atol=5e-5, rtol=0, err_msg=name)
    corrupt = hf["corrupt"]
    vector = steering_vector(model, ids, corrupt, 1)
    steered = model.forward(corrupt, hooks=steering_hooks(1, vector, 4.0))
    np.testing.assert_allclose(steered, hf["steer"], atol=5e-5, rtol=0)
    answer, against = hf["answer_against"].tolist()
    result = patch(model, ids, corrupt, answer, against)
    np.testing.assert_allclose([result.clean, result.corrupted], hf["patch_clean_corrupted"],
                               atol=5e-5)  # fmt: skip
    np.testing.assert_allclose(result.resid_pre, hf["patch_resid_pre"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(result.heads, hf["patch_heads"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(result.mlps, hf["patch_mlps"], atol=1e-4, rtol=0)
