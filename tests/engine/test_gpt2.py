"""GPT-2 forward pass: parity with HuggingFace, kv-cache equivalence, batching, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from gpt_tui.engine import GPT2
from gpt_tui.engine.cores import Settings
from gpt_tui.engine.layout import LAYOUTS
from gpt_tui.engine.params import unflatten_params
from gpt_tui.engine.plan import Plan

FIXTURE = Path(__file__).parents[1] / "fixtures" / "gpt2_reference.safetensors"


@pytest.fixture(scope="module", params=LAYOUTS)
def reference(request: pytest.FixtureRequest) -> tuple[GPT2, np.ndarray, np.ndarray]:
    """A tiny random GPT-2, in each weight layout, and HF transformers' logits for it (see
    make_gpt2_reference.py)."""
    with safe_open(str(FIXTURE), "np") as f:
        meta = f.metadata()
        flat = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (not a dict)
    ids, logits = flat.pop("ids"), flat.pop("logits")
    hparams = {k: int(meta[k]) for k in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")}
    plan = Plan(Settings(layout=request.param), key={})
    return GPT2(unflatten_params(flat), hparams, plan=plan), ids, logits


def test_full_forward_matches_huggingface(reference) -> None:
    model, ids, expected = reference
    logits = model.forward(ids)
    assert logits.dtype == np.float32
    assert logits.shape == expected.shape
    np.testing.assert_allclose(logits, expected, atol=1e-5, rtol=0)


def test_cached_decode_matches_huggingface(reference) -> None:
    model, ids, expected = reference
    cache = model.new_cache()
    steps = [model.forward(ids[:5], cache)] + [model.forward([t], cache) for t in ids[5:]]
    np.testing.assert_allclose(np.concatenate(steps), expected, atol=1e-5, rtol=0)


def test_long_prompts_run_in_chunks_with_the_same_logits(reference, prefill_in_chunks) -> None:
    model, ids, expected = reference
    prefill_in_chunks(model, 3)  # chunks of 3 positions, the last shorter
    assert len(ids) % 3
    np.testing.assert_allclose(model.forward(ids), expected, atol=1e-5, rtol=0)
    cache = model.new_cache()
    last = model.forward(ids, cache, last_only=True)
    assert last.shape == (1, model.n_vocab) and cache.tokens() == ids.tolist()
    np.testing.assert_allclose(last[0], expected[-1], atol=1e-5, rtol=0)


def test_kv_cache_decode_equals_full_forward(tiny_gpt2: GPT2) -> None:
    ids = np.random.default_rng(1).integers(0, tiny_gpt2.n_vocab, 60)
    full = tiny_gpt2.forward(ids)
    cache = tiny_gpt2.new_cache()
    steps = [tiny_gpt2.forward(ids[:10], cache)]
    steps += [tiny_gpt2.forward(ids[i : i + 1], cache) for i in range(10, 60)]
    assert cache.length == 60
    np.testing.assert_allclose(np.concatenate(steps), full, atol=1e-4, rtol=0)


def test_truncate_then_decode_equals_full_forward(tiny_gpt2: GPT2) -> None:
    rng = np.random.default_rng(2)
    ids = rng.integers(0, tiny_gpt2.n_vocab, 40)
    cache = tiny_gpt2.new_cache()
    tiny_gpt2.forward(ids, cache)
    cache.truncate(25)
    branch = rng.integers(0, tiny_gpt2.n_vocab, 10)  # a different continuation after 25 tokens
    steps = np.concatenate([tiny_gpt2.forward([t], cache) for t in branch])
    full = tiny_gpt2.forward(np.concatenate([ids[:25], branch]))
    np.testing.assert_allclose(steps, full[25:], atol=1e-4, rtol=0)
    assert cache.tokens() == [*ids[:25].tolist(), *branch.tolist()]


def test_last_only_equals_last_row(tiny_gpt2: GPT2) -> None:
    ids = np.arange(12)
    np.testing.assert_allclose(
        tiny_gpt2.forward(ids, last_only=True), tiny_gpt2.forward(ids)[-1:], atol=1e-5
    )


def test_batched_forward_equals_each_stream_alone(tiny_gpt2: GPT2) -> None:
    ids = np.random.default_rng(3).integers(0, tiny_gpt2.n_vocab, (3, 9))
    cache = tiny_gpt2.new_cache(n_batch=3)
    batched = tiny_gpt2.forward(ids[:, :5], cache)
    step = tiny_gpt2.forward(ids[:, 5:], cache)
    for row in range(3):
        alone = tiny_gpt2.forward(ids[row])
        np.testing.assert_allclose(batched[row], alone[:5], atol=1e-5)
        np.testing.assert_allclose(step[row], alone[5:], atol=1e-5)


def test_more_positions_than_context_is_a_clear_error(tiny_gpt2: GPT2) -> None:
    with pytest.raises(ValueError, match="exceed the context of 64"):
        tiny_gpt2.forward(np.zeros(65, dtype=np.int64))
    cache = tiny_gpt2.new_cache()
    tiny_gpt2.forward(np.zeros(60, dtype=np.int64), cache)
    with pytest.raises(ValueError, match="60 cached \\+ 5 new"):
        tiny_gpt2.forward(np.zeros(5, dtype=np.int64), cache)
    assert cache.length == 60  # a refused call leaves the cache as it was


def test_out_of_vocabulary_ids_and_empty_input_are_rejected(tiny_gpt2: GPT2) -> None:
    with pytest.raises(ValueError, match="token ids must lie in"):
        tiny_gpt2.forward([tiny_gpt2.n_vocab])
    with pytest.raises(ValueError, match="at least one token"):
        tiny_gpt2.forward([])


def test_params_that_do_not_match_hparams_are_named(tiny_params: dict) -> None:
    hparams = {"n_vocab": 50257, "n_ctx": 64, "n_embd": 16, "n_head": 2, "n_layer": 3}
    with pytest.raises(ValueError, match="blocks.2"):
        GPT2(tiny_params, hparams)


def test_gelu_is_the_tanh_form() -> None:
    from gpt_tui.engine.layers import gelu

    x = np.linspace(-6, 6, 1001, dtype=np.float32)
    expected = (
        0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x.astype(np.float64) ** 3)))
    )
    np.testing.assert_allclose(gelu(x), expected, atol=1e-6)
