"""The LLaMA forward pass: parity with Hugging Face on a tiny random model, cache equivalence."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from gpt_tui.engine import Llama, SamplingParams, generate
from gpt_tui.engine import llama as llama_module
from gpt_tui.engine.cores import Settings
from gpt_tui.engine.layers import rope_tables
from gpt_tui.engine.layout import LAYOUTS
from gpt_tui.engine.llama import expected_shapes
from gpt_tui.engine.plan import Plan
from gpt_tui.models.gguf_file import llama_params
from gpt_tui.tokenizer import Tokenizer, bytes_to_unicode

REFERENCE = Path(__file__).parents[1] / "fixtures" / "llama_reference.safetensors"


@pytest.fixture(scope="module")
def reference() -> tuple[dict, dict, np.ndarray, np.ndarray]:
    """GGUF-layout tensors, hparams, ids and HF logits (see fixtures/make_llama_reference.py)."""
    with safe_open(str(REFERENCE), "np") as file:
        hparams = json.loads(file.metadata()["hparams"])
    data = load_file(str(REFERENCE))
    tensors = {name[5:]: array for name, array in data.items() if name.startswith("gguf.")}
    return tensors, hparams, data["ids"], data["logits"]


@pytest.fixture(scope="module", params=LAYOUTS)
def tiny_llama(request: pytest.FixtureRequest, reference) -> Llama:
    """The reference model in each weight layout."""
    tensors, hparams, _, _ = reference
    plan = Plan(Settings(layout=request.param), key={})
    return Llama(llama_params(tensors, hparams), hparams, plan=plan)


def rope_adjacent(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """The textbook form of llama.cpp's "normal" rope: rotate (x[2i], x[2i+1]) by the angles."""
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def test_complex_rotation_is_the_adjacent_pair_rope() -> None:
    x = np.random.default_rng(0).standard_normal((2, 5, 3, 16)).astype(np.float32)
    positions = np.arange(7, 12)  # [n_seq]
    cos, sin = rope_tables(positions, 16, 10000.0)
    expected = rope_adjacent(x.transpose(0, 2, 1, 3), cos, sin).transpose(0, 2, 1, 3)
    rotations = llama_module.rope_rotations(positions, 16, 10000.0)[:, None, :]
    rotated = (x.view(np.complex64) * rotations).view(np.float32)
    np.testing.assert_allclose(rotated, expected, atol=1e-6, rtol=0)


def test_forward_matches_hugging_face(tiny_llama: Llama, reference) -> None:
    # GGUF's permuted q/k + adjacent-pair rope == HF's rotate_half; GQA grouping == repeat_kv.
    _, _, ids, hf_logits = reference
    logits = tiny_llama.forward(ids)
    assert logits.shape == (len(ids), tiny_llama.n_vocab) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, hf_logits, atol=1e-4, rtol=0)


def test_every_plan_matches_hugging_face(reference, every_plan: Settings) -> None:
    # grouped-query heads are tiled and shared by kv head: rows of one kv head stay together
    tensors, hparams, ids, hf_logits = reference
    model = Llama(llama_params(tensors, hparams), hparams, plan=Plan(every_plan, key={}))
    np.testing.assert_allclose(model.forward(ids), hf_logits, atol=1e-4, rtol=0)
    cache = model.new_cache()
    model.forward(ids[:-3], cache)
    steps = np.concatenate(
        [model.forward(ids[i : i + 1], cache) for i in range(len(ids) - 3, len(ids))]
    )
    np.testing.assert_allclose(steps, hf_logits[-3:], atol=1e-4, rtol=0)


def test_cached_decode_equals_full_forward(tiny_llama: Llama, reference) -> None:
    _, _, ids, _ = reference
    full = tiny_llama.forward(ids)
    cache = tiny_llama.new_cache()
    pieces = [tiny_llama.forward(ids[:7], cache)]
    pieces += [tiny_llama.forward(ids[i : i + 1], cache) for i in range(7, 15)]
    pieces.append(tiny_llama.forward(ids[15:], cache))
    np.testing.assert_allclose(np.concatenate(pieces), full, atol=1e-4, rtol=0)
    assert cache.tokens() == ids.tolist()


def test_long_prompts_run_in_chunks_with_the_same_logits(
    tiny_llama: Llama, reference, prefill_in_chunks
) -> None:
    _, _, ids, hf_logits = reference
    prefill_in_chunks(tiny_llama, 5)  # 24 positions: chunks 5,5,5,5,4
    np.testing.assert_allclose(tiny_llama.forward(ids), hf_logits, atol=1e-4, rtol=0)
    cache = tiny_llama.new_cache()
    last = tiny_llama.forward(ids, cache, last_only=True)
    assert last.shape == (1, tiny_llama.n_vocab) and cache.tokens() == ids.tolist()
    np.testing.assert_allclose(last[0], hf_logits[-1], atol=1e-4, rtol=0)


def test_batched_rows_equal_single_streams(tiny_llama: Llama, reference) -> None:
    _, _, ids, _ = reference
    rows = np.stack([ids[:12], ids[12:]])  # [2, 12]
    cache = tiny_llama.new_cache(n_batch=2)
    first = tiny_llama.forward(rows[:, :5], cache)  # [2, 5, n_vocab]
    step = tiny_llama.forward(rows[:, 5:6], cache)  # [2, 1, n_vocab]: the decode path
    last = tiny_llama.forward(rows[:, 6:], cache, last_only=True)  # [2, 1, n_vocab]
    for row in range(2):
        alone = tiny_llama.forward(rows[row])
        np.testing.assert_allclose(first[row], alone[:5], atol=1e-4, rtol=0)
        np.testing.assert_allclose(step[row, 0], alone[5], atol=1e-4, rtol=0)
        np.testing.assert_allclose(last[row, 0], alone[-1], atol=1e-4, rtol=0)


def test_untied_output_uses_its_own_embedding(reference) -> None:
    tensors, hparams, ids, _ = reference
    untied = {**hparams, "tie_word_embeddings": False}
    rng = np.random.default_rng(0)
    output = rng.standard_normal(tensors["token_embd.weight"].shape).astype(np.float32)
    params = llama_params({**tensors, "output.weight": output}, untied)
    assert set(params) == {"token_embd", "output", "output_norm", "blocks"}
    model = Llama(params, untied)
    tied = Llama(llama_params(tensors, hparams), hparams)
    # Same hidden states, different output matrix: logits differ by exactly that projection.
    assert not np.allclose(model.forward(ids[:4]), tied.forward(ids[:4]))
    params["output"] = np.ascontiguousarray(tensors["token_embd.weight"].T)
    # Float32 tolerance: the two models may be planned to different product kernels (and a
    # loaded machine measures other plans), which sum in another order: seen 5e-6 apart.
    np.testing.assert_allclose(
        Llama(params, untied).forward(ids), tied.forward(ids), rtol=1e-5, atol=1e-5
    )


def test_very_negative_gates_give_no_warnings(reference) -> None:
    # silu(g) = g / (1 + e^-g): e^-g overflows to inf for g < -88, which must stay silent.
    tensors, hparams, ids, _ = reference
    params = llama_params(tensors, hparams)
    params["blocks"][0]["ffn_gate_up"] = params["blocks"][0]["ffn_gate_up"] * 1e4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logits = Llama(params, hparams).forward(ids)
    assert np.isfinite(logits).all()


def test_errors_match_the_gpt2_contract(tiny_llama: Llama, reference) -> None:
    with pytest.raises(ValueError, match="at least one token"):
        tiny_llama.forward([])
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 80\)"):
        tiny_llama.forward([80])
    with pytest.raises(ValueError, match="exceed the context of 64"):
        tiny_llama.forward(np.zeros(65, dtype=np.int64))
    cache = tiny_llama.new_cache(n_batch=2)
    with pytest.raises(ValueError, match="cache holds 2 streams"):
        tiny_llama.forward([1, 2], cache)
    tensors, hparams, _, _ = reference
    with pytest.raises(ValueError, match="lack n_kv_head"):
        Llama(
            llama_params(tensors, hparams), {k: v for k, v in hparams.items() if k != "n_kv_head"}
        )
    with pytest.raises(ValueError, match="do not match hparams"):
        Llama(llama_params(tensors, hparams), {**hparams, "n_ff": 32})


def test_expected_shapes_fuse_qkv_and_gate_up(reference) -> None:
    _, hparams, _, _ = reference
    shapes = expected_shapes(hparams)
    assert shapes["blocks.0.attn_qkv"] == (48, (6 + 2 * 2) * 8)
    assert shapes["blocks.1.ffn_gate_up"] == (48, 2 * 64)
    assert shapes["output"] == (48, 80) and "token_embd" not in shapes


def test_generate_runs_unchanged_on_llama(tiny_llama: Llama) -> None:
    # 80 tokens: the first 80 byte characters, no merges; generation stops at max_tokens.
    tokenizer = Tokenizer(list(bytes_to_unicode()[:80]), [], {}, eos_ids=(), bos_id=0)
    params = SamplingParams(temperature=0.0, max_tokens=6)
    events = list(generate(tiny_llama, tokenizer, "0123", params))
    assert len(events) == 6 and events[-1].finish_reason == "length"
    # Greedy generation is the argmax of a full forward at every step.
    ids = tokenizer.encode("0123")
    for event in events:
        assert event.token_id == int(tiny_llama.forward(ids)[-1].argmax())
        ids.append(event.token_id)
