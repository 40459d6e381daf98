"""Look inside (engine/trace.py): the logit lens, attention and direct logit attribution of one
position, against the forward pass, an independent per-head NumPy decomposition, and Hugging
Face transformers (fixtures/trace_reference.safetensors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from float64_reference import (
    causal_softmax64,
    layer_norm64,
    reference_logits,
    rms_norm64,
    rope_adjacent64,
)
from safetensors import safe_open
from safetensors.numpy import load_file

from gpt_tui.engine import GPT2, Llama
from gpt_tui.engine.blocked import BlockedMatrix
from gpt_tui.engine.cores import Settings
from gpt_tui.engine.hooked import Interventions, Steering, with_interventions
from gpt_tui.engine.interventions import Ablation, steering_vector
from gpt_tui.engine.layout import LAYOUTS
from gpt_tui.engine.params import unflatten_params
from gpt_tui.engine.plan import Plan
from gpt_tui.engine.rows import RowMatrix
from gpt_tui.engine.trace import (
    attribute,
    lens_rows,
    plain_columns,
    plain_rows,
    trace,
    trace_context,
)
from gpt_tui.models.gguf_file import llama_params

REFERENCE = Path(__file__).parents[1] / "fixtures" / "trace_reference.safetensors"
IDS = np.random.default_rng(3).integers(0, 50257, size=21)  # [21]
POSITIONS = (0, 9, 20)


@pytest.fixture(params=["gpt2", "llama"])
def case(request, tiny_gpt2, tiny_params, tiny_random_llama, tiny_llama_params):
    """(model, its plain params, a reference decomposition of IDS) for each architecture."""
    if request.param == "gpt2":
        return tiny_gpt2, reference_gpt2(tiny_params, tiny_gpt2.n_head, IDS)
    return tiny_random_llama, reference_llama(tiny_llama_params, tiny_random_llama.hparams, IDS)


@pytest.fixture
def cached(case):
    """The model's logits for IDS and a cache holding all of them."""
    model, _ = case
    cache = model.new_cache()
    logits = model.forward(IDS, cache)  # [n_seq, n_vocab]
    return logits, cache


# --- an independent reference: per-head loops in float64 -------------------------------------


def reference_gpt2(params: dict, n_head: int, ids: np.ndarray) -> dict:
    """Residuals, attention and each head's and MLP's write for every position of `ids`."""
    p = {k: v for k, v in params.items()}
    x = p["wte"][ids].astype(np.float64) + p["wpe"][: len(ids)]  # [n_seq, n_embd]
    n_embd = x.shape[1]
    hd = n_embd // n_head
    out = {"residuals": [x], "mids": [], "attention": [], "heads": [], "mlps": []}
    for block in p["blocks"]:
        a = block["attn"]
        h = layer_norm64(x, block["ln_1"]["g"], block["ln_1"]["b"])
        qkv = h @ a["c_attn"]["w"] + a["c_attn"]["b"]  # [n_seq, 3*n_embd]
        q, k, v = np.split(qkv, 3, axis=1)
        w_o = a["c_proj"]["w"]
        weights, writes = [], []
        for head in range(n_head):
            s = slice(head * hd, (head + 1) * hd)
            att = causal_softmax64(q[:, s] @ k[:, s].T / np.sqrt(hd))  # [n_seq, n_seq]
            weights.append(att)
            writes.append((att @ v[:, s]) @ w_o[s])  # [n_seq, n_embd]
        x = x + sum(writes) + a["c_proj"]["b"]
        out["mids"].append(x)
        m = block["mlp"]
        h = (
            layer_norm64(x, block["ln_2"]["g"], block["ln_2"]["b"]) @ m["c_fc"]["w"]
            + m["c_fc"]["b"]
        )
        h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))
        mlp = h @ m["c_proj"]["w"] + m["c_proj"]["b"]
        x = x + mlp
        out["residuals"].append(x)
        out["attention"].append(np.stack(weights))  # [n_head, n_seq, n_seq]
        out["heads"].append(np.stack(writes, axis=1))  # [n_seq, n_head, n_embd]
        out["mlps"].append(mlp)
    out["unembedding"] = p["wte"].T  # [n_embd, n_vocab]
    out["norm"] = (p["ln_f"]["g"], p["ln_f"]["b"])
    return {k: np.array(v) if isinstance(v, list) else v for k, v in out.items()}


def reference_llama(params: dict, hp: dict, ids: np.ndarray) -> dict:
    n_head, n_kv, hd, eps = hp["n_head"], hp["n_kv_head"], hp["head_dim"], hp["norm_eps"]
    positions = np.arange(len(ids))
    x = params["output"].T[ids].astype(np.float64)  # [n_seq, n_embd]
    out = {"residuals": [x], "mids": [], "attention": [], "heads": [], "mlps": []}
    for block in params["blocks"]:
        qkv = rms_norm64(x, block["attn_norm"], eps) @ block["attn_qkv"]
        q = qkv[:, : n_head * hd]
        k = qkv[:, n_head * hd : (n_head + n_kv) * hd]
        v = qkv[:, (n_head + n_kv) * hd :]
        weights, writes = [], []
        for head in range(n_head):
            kv = head // (n_head // n_kv)  # the kv head this query head shares
            qh = rope_adjacent64(q[:, head * hd : (head + 1) * hd], positions, hp["rope_base"])
            kh = rope_adjacent64(k[:, kv * hd : (kv + 1) * hd], positions, hp["rope_base"])
            att = causal_softmax64(qh @ kh.T / np.sqrt(hd))
            weights.append(att)
            rows = block["attn_output"][head * hd : (head + 1) * hd]
            writes.append((att @ v[:, kv * hd : (kv + 1) * hd]) @ rows)
        x = x + sum(writes)
        out["mids"].append(x)
        gate_up = rms_norm64(x, block["ffn_norm"], eps) @ block["ffn_gate_up"]
        gate, up = np.split(gate_up, 2, axis=1)
        mlp = (gate / (1 + np.exp(-gate)) * up) @ block["ffn_down"]
        x = x + mlp
        out["residuals"].append(x)
        out["attention"].append(np.stack(weights))
        out["heads"].append(np.stack(writes, axis=1))
        out["mlps"].append(mlp)
    out["unembedding"] = params["output"]
    out["norm"] = (params["output_norm"], None)
    return {k: np.array(v) if isinstance(v, list) else v for k, v in out.items()}


def reference_attribution(ref: dict, position: int, target: int) -> dict:
    """Each part's logit through the final norm frozen at the last residual's scale."""
    g, b = ref["norm"]
    final = ref["residuals"][-1, position]
    centred = b is not None
    scale = np.sqrt(np.var(final) + 1e-5) if centred else np.sqrt(np.mean(final**2) + 1e-5)
    direction = g * ref["unembedding"][:, target] / scale

    def write(c):
        return ((c - c.mean(-1, keepdims=True)) if centred else c) @ direction

    return {
        "embeddings": write(ref["residuals"][0, position]),
        "heads": write(ref["heads"][:, position]),  # [n_layer, n_head]
        "mlps": write(ref["mlps"][:, position]),  # [n_layer]
    }


# --- the trace against the forward pass and the reference ------------------------------------


@pytest.mark.parametrize("position", POSITIONS)
def test_last_lens_row_is_the_models_logits(case, cached, position) -> None:
    model, _ = case
    logits, cache = cached
    t = trace(model, cache, position)
    assert t.lens_logits.shape == (model.n_layer + 1, model.n_vocab)
    assert t.token_id == IDS[position]
    np.testing.assert_allclose(t.logits, logits[position], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("position", POSITIONS)
def test_attention_rows_are_causal_distributions(case, cached, position) -> None:
    model, ref = case
    t = trace(model, cached[1], position)
    assert t.attention.shape == (model.n_layer, model.n_head, position + 1)  # keys 0..position
    np.testing.assert_allclose(t.attention.sum(-1), 1.0, atol=1e-5)
    reference = ref["attention"][:, :, position]  # [n_layer, n_head, n_seq]
    assert np.all(reference[:, :, position + 1 :] == 0)  # what follows is never attended
    np.testing.assert_allclose(t.attention, reference[:, :, : position + 1], atol=1e-5)


@pytest.mark.parametrize("position", POSITIONS)
def test_residuals_heads_and_mlps_match_the_reference(case, cached, position) -> None:
    model, ref = case
    t = trace(model, cached[1], position)
    scale = np.abs(ref["residuals"]).max()
    atol = 1e-5 * scale
    np.testing.assert_allclose(t.residuals, ref["residuals"][:, position], atol=atol, rtol=0)
    np.testing.assert_allclose(t.mids, ref["mids"][:, position], atol=atol, rtol=0)
    np.testing.assert_allclose(t.heads, ref["heads"][:, position], atol=atol, rtol=0)
    np.testing.assert_allclose(t.mlps, ref["mlps"][:, position], atol=atol, rtol=0)


@pytest.mark.parametrize("position", POSITIONS)
def test_attribution_sums_to_the_logit_and_matches_the_reference(case, cached, position) -> None:
    model, ref = case
    logits, cache = cached
    t = trace(model, cache, position)
    rng = np.random.default_rng(position)
    for target in [int(np.argmax(logits[position])), int(rng.integers(model.n_vocab))]:
        a = attribute(model, t, target)
        assert a.heads.shape == (model.n_layer, model.n_head) and a.mlps.shape == (model.n_layer,)
        assert a.logit == pytest.approx(float(logits[position, target]), abs=1e-4)
        assert a.total == pytest.approx(a.logit, abs=1e-4)  # the parts add up
        expected = reference_attribution(ref, position, target)
        assert a.embeddings == pytest.approx(expected["embeddings"], abs=1e-4)
        np.testing.assert_allclose(a.heads, expected["heads"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(a.mlps, expected["mlps"], atol=1e-4, rtol=0)


def test_logit_difference_is_the_difference_of_attributions(case, cached) -> None:
    model, _ = case
    logits, cache = cached
    t = trace(model, cache, 12)
    first, second = np.argsort(logits[12])[::-1][:2].tolist()
    a, b = attribute(model, t, first), attribute(model, t, second)
    diff = attribute(model, t, first, against=second)
    assert diff.logit == pytest.approx(float(logits[12, first] - logits[12, second]), abs=1e-4)
    assert diff.total == pytest.approx(diff.logit, abs=1e-4) and diff.logit > 0
    np.testing.assert_allclose(diff.heads, a.heads - b.heads, atol=1e-6)
    np.testing.assert_allclose(diff.mlps, a.mlps - b.mlps, atol=1e-6)
    assert diff.bias == pytest.approx(a.bias - b.bias, abs=1e-6)


def test_gpt2_bias_holds_the_attention_biases_and_beta(tiny_gpt2, tiny_params) -> None:
    cache = tiny_gpt2.new_cache()
    tiny_gpt2.forward(IDS[:6], cache)
    a = attribute(tiny_gpt2, trace(tiny_gpt2, cache, 5), 42)
    beta = float(tiny_params["ln_f"]["b"] @ tiny_params["wte"][42])
    assert a.bias == pytest.approx(float(a.attn_biases.sum()) + beta, abs=1e-6)
    assert np.all(a.attn_biases != 0)


def test_llama_has_no_bias_terms(tiny_random_llama) -> None:
    cache = tiny_random_llama.new_cache()
    tiny_random_llama.forward(IDS[:6], cache)
    a = attribute(tiny_random_llama, trace(tiny_random_llama, cache, 5), 42)
    assert a.bias == 0 and np.all(a.attn_biases == 0)


def test_a_middle_position_traces_as_a_fresh_pass_over_its_prefix(case, cached) -> None:
    model, _ = case
    _, cache = cached
    over_cache = trace(model, cache, 9)
    fresh = trace_context(model, IDS.tolist()[:10], 9)  # only the prefix, in a cache of its own
    np.testing.assert_allclose(over_cache.lens_logits, fresh.lens_logits, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(over_cache.attention, fresh.attention, atol=1e-6)
    np.testing.assert_allclose(over_cache.heads, fresh.heads, atol=1e-5)


def test_trace_context_reuses_a_cache_that_holds_the_prefix_and_spares_one_that_does_not(
    case, cached
) -> None:
    model, _ = case
    _, cache = cached
    ids = IDS.tolist()
    assert trace_context(model, ids, 9, cache).token_id == ids[9]
    other = [*ids[:5], (ids[5] + 1) % model.n_vocab, *ids[6:]]  # another branch after 5 tokens
    t = trace_context(model, other, 9, cache)
    assert t.token_id == other[9] and cache.tokens() == ids  # the cache is left as it was
    with pytest.raises(ValueError, match="outside the 21 tokens"):
        trace_context(model, ids, 21, cache)


def test_lens_rows(case, cached, gpt2_tokenizer) -> None:
    model, _ = case
    logits, cache = cached
    t = trace(model, cache, 20)
    target = int(np.argmax(logits[20]))
    rows = lens_rows(t, target, gpt2_tokenizer, n_top=3)
    assert [(r.layer, r.stage) for r in rows[:3]] == [(0, "block"), (1, "attention"), (1, "block")]
    assert len(rows) == 2 * model.n_layer + 1
    last = rows[-1]
    assert last.score.rank == 1 and last.kl == pytest.approx(0, abs=1e-9)
    assert last.score.top[0].token_id == target and len(last.score.top) == 3
    p = np.exp(logits[20].astype(np.float64) - logits[20].max())
    assert last.score.prob == pytest.approx(p[target] / p.sum(), rel=1e-4)
    assert all(r.kl >= 0 and r.score.entropy > 0 for r in rows)
    assert len(lens_rows(trace(model, cache, 20, mid=False), target, gpt2_tokenizer)) == len(
        t.lens_logits
    )


def test_plain_rows_and_columns_of_every_layout() -> None:
    w = np.random.default_rng(0).standard_normal((70, 130)).astype(np.float32)

    class MultiplyOnly:  # a layout that only knows `x @ w`
        shape = w.shape
        __array_ufunc__ = None

        def __rmatmul__(self, x):
            return x @ w

    for layout in (w, BlockedMatrix.from_matrix(w), RowMatrix.from_matrix(w), MultiplyOnly()):
        np.testing.assert_array_equal(plain_rows(layout, 8, 24), w[8:24])
        np.testing.assert_array_equal(plain_columns(layout, [3, 129]), w[:, [3, 129]].T)


def test_a_position_the_cache_does_not_hold_is_refused(tiny_gpt2) -> None:
    cache = tiny_gpt2.new_cache()
    tiny_gpt2.forward(IDS[:4], cache)
    with pytest.raises(ValueError, match="not in the cache"):
        trace(tiny_gpt2, cache, 4)


# --- against Hugging Face transformers --------------------------------------------------------


def _reference(prefix: str) -> tuple[dict, dict]:
    with safe_open(str(REFERENCE), "np") as file:
        hparams = json.loads(file.metadata()[f"{prefix}.hparams"])
    data = load_file(str(REFERENCE))
    return hparams, {k[len(prefix) + 1 :]: v for k, v in data.items() if k.startswith(prefix)}


def _hf_model(arch: str, layout: str) -> tuple[GPT2 | Llama, dict]:
    hparams, data = _reference(arch)
    plan = Plan(Settings(layout=layout), key={})
    if arch == "gpt2":
        flat = {k.removeprefix("params."): v for k, v in data.items() if k.startswith("params.")}
        return GPT2(unflatten_params(flat), hparams, plan=plan), data
    tensors = {k.removeprefix("gguf."): v for k, v in data.items() if k.startswith("gguf.")}
    return Llama(llama_params(tensors, hparams), hparams, plan=plan), data


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_trace_agrees_with_transformers(arch, layout) -> None:
    """HF's hidden_states[l] (l < n_layer) are our residuals; its last hidden state has the
    final norm applied, so the last lens row is compared with its logits; the lens rows with
    HF's own final norm and lm_head applied to hidden_states; attentions per query head.

    Reached (max abs difference over every position): GPT-2 residuals 3.8e-6 (values up to
    9.7), lens rows and logits 2.9e-6, attention 7.5e-7; LLaMA (GQA) residuals 1.5e-5 (values
    up to 21), lens rows and logits 1.1e-5, attention 2.1e-6."""
    model, hf = _hf_model(arch, layout)
    ids = hf["ids"]
    cache = model.new_cache()
    model.forward(ids, cache)
    n_layer = model.n_layer
    for position in range(len(ids)):
        t = trace(model, cache, position)
        np.testing.assert_allclose(
            t.residuals[:n_layer], hf["hidden_states"][:n_layer, position], atol=5e-5, rtol=0
        )
        lens = hf["lens_logits"][:, position]  # [n_layer + 1, n_vocab]
        np.testing.assert_allclose(t.lens_logits, lens, atol=5e-5, rtol=0)
        np.testing.assert_allclose(t.logits, hf["logits"][position], atol=5e-5, rtol=0)
        np.testing.assert_allclose(
            t.attention, hf["attentions"][:, :, position, : position + 1], atol=1e-5, rtol=0
        )


# --- under interventions: the parts are what reached the residual stream ---------------------


def _edited_parts(arch: str, params: dict, hparams: dict, ids, edit) -> dict:
    """The float64 reference run under `edit`, taken apart at the last position: the
    embeddings, what the edits added entering each block, each block's attention and MLP
    output as they reached the stream, and the final residual."""
    parts: dict = {"added": [], "attention": [], "mlps": []}

    def capture(point, layer, x):
        out = edit(point, layer, x.copy())
        after = x if out is None else out
        if point == "hook_resid_pre":
            if layer == 0:
                parts["embeddings"] = x[-1]
            parts["added"].append(after[-1] - x[-1])
        elif point == "hook_attn_out":
            parts["attention"].append(after[-1])
        elif point == "hook_mlp_out":
            parts["mlps"].append(after[-1])
        return out

    logits = reference_logits(arch, params, hparams, ids, capture)
    parts = {k: np.array(v) for k, v in parts.items()}
    parts["final"] = (
        parts["embeddings"]
        + parts["added"].sum(0)
        + parts["attention"].sum(0)
        + parts["mlps"].sum(0)
    )
    parts["logits"] = logits[-1]
    return parts


def _write64(arch: str, params: dict, hparams: dict, parts: dict, target: int):
    """Each part's logit through the final norm frozen at the reference's final residual."""
    final = parts["final"]
    if arch == "gpt2":
        g, u = params["ln_f"]["g"], params["wte"][target].astype(np.float64)
        scale = np.sqrt(np.var(final) + 1e-5)
        return lambda c: (c - c.mean(-1, keepdims=True)) @ (g * u / scale)
    eps = hparams["norm_eps"]
    g, u = params["output_norm"], params["output"][:, target].astype(np.float64)
    scale = np.sqrt(np.mean(final**2) + eps)
    return lambda c: c @ (g * u / scale)


@pytest.mark.parametrize(
    "what", ["attn", "attn:mean", "steer", "steer+attn"], ids=lambda w: w.replace(":", "-")
)
def test_attribution_adds_up_under_attention_ablation_and_steering(
    case, tiny_params, tiny_llama_params, what
) -> None:
    """Before, a block attention's ablation (L.attn) or a steering vector left the parts
    (embeddings, heads from hook_z, MLPs, biases) short of the logit: the replaced attention
    and the vector are parts too, checked against the float64 reference run under them."""
    model, _ref = case
    arch = "gpt2" if isinstance(model, GPT2) else "llama"
    params = tiny_params if arch == "gpt2" else tiny_llama_params
    ids = IDS[:12].tolist()
    layer, coef = 1, 4.0
    ablations = (Ablation(0, "attn", mean=what.endswith("mean")),) if "attn" in what else ()
    steering = None
    if "steer" in what:
        steering = Steering(layer, coef, tuple(IDS[13:17].tolist()), tuple(IDS[17:21].tolist()))
    hooked = with_interventions(model, Interventions(ablations, steering), ids)
    t = trace_context(hooked, ids, len(ids) - 1)
    target = int(np.argmax(t.logits))
    a = attribute(hooked, t, target)
    assert a.total == pytest.approx(a.logit, abs=1e-4)  # the parts add up

    plain = model.forward(ids)[-1]  # [n_vocab]
    means = {}
    if ablations and ablations[0].mean:
        seen = {}
        reference_logits(arch, params, model.hparams, ids,
                         lambda p, at, x: seen.setdefault((p, at), x))  # fmt: skip
        means[0] = seen[("hook_attn_out", 0)].mean(axis=0)
    vector = None
    if steering is not None:
        vector = steering_vector(model, steering.add, steering.sub, layer).astype(np.float64)

    def edit(point, at, x):
        if ablations and (point, at) == ("hook_attn_out", 0):
            return np.broadcast_to(means.get(0, 0.0), x.shape).copy()
        if vector is not None and (point, at) == ("hook_resid_pre", layer):
            return x + coef * vector
        return None

    parts = _edited_parts(arch, params, model.hparams, ids, edit)
    assert np.abs(parts["logits"] - plain).max() > 1e-3  # the interventions change the run
    assert a.logit == pytest.approx(float(parts["logits"][target]), abs=2e-4)
    write = _write64(arch, params, model.hparams, parts, target)
    np.testing.assert_allclose(a.attention, write(parts["attention"]), atol=2e-4, rtol=0)
    np.testing.assert_allclose(a.mlps, write(parts["mlps"]), atol=2e-4, rtol=0)
    assert a.embeddings == pytest.approx(float(write(parts["embeddings"])), abs=2e-4)
    assert a.steering == pytest.approx(float(write(parts["added"]).sum()), abs=2e-4)
    if ablations:
        assert not a.heads[0].any()  # the replaced attention's heads wrote nothing of their own
    if steering is not None:
        assert abs(a.steering) > 1e-3
    else:
        assert a.steering == 0.0
