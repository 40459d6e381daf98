"""Hook points (engine/hooks.py) on the GPT-2 and LLaMA (grouped-query) passes: readers change
nothing, bit for bit; replacements agree with an independent float64 pass edited at the same
point; the kv cache holds what a hooked pass computed."""

from __future__ import annotations

import numpy as np
import pytest
from float64_reference import reference_logits

from gpt_tui.engine.hooks import BLOCK_POINTS, HookPoint, hook_names, run_with_cache

IDS = np.random.default_rng(5).integers(0, 50257, size=13)  # [13]


@pytest.fixture(params=["gpt2", "llama"])
def case(request, tiny_gpt2, tiny_params, tiny_random_llama, tiny_llama_params):
    """(architecture, model, its plain params)."""
    if request.param == "gpt2":
        return "gpt2", tiny_gpt2, tiny_params
    return "llama", tiny_random_llama, tiny_llama_params


def _readers(model, seen: dict) -> dict:
    def read(x: np.ndarray, hook: HookPoint) -> None:
        assert isinstance(hook, HookPoint) and hook.name in names
        seen[hook.name] = x.shape
        float(x.sum())  # a reader that touches every value

    names = hook_names(model)
    return {name: read for name in names}


@pytest.mark.parametrize("last_only", [False, True])
def test_readers_at_every_point_change_nothing_bit_for_bit(case, last_only) -> None:
    _, model, _ = case
    plain = model.forward(IDS, last_only=last_only)
    seen: dict = {}
    hooked = model.forward(IDS, hooks=_readers(model, seen), last_only=last_only)
    np.testing.assert_array_equal(hooked, plain)
    assert set(seen) == set(hook_names(model))


def test_readers_change_nothing_over_a_cache_and_in_batches(case) -> None:
    _, model, _ = case
    ids = np.stack([IDS, IDS[::-1]])  # [2, 13]
    plain_cache, hooked_cache = model.new_cache(2), model.new_cache(2)
    plain = [model.forward(ids[:, :9], plain_cache), model.forward(ids[:, 9:10], plain_cache)]
    hooks = _readers(model, {})
    hooked = [model.forward(ids[:, :9], hooked_cache, hooks=hooks),
              model.forward(ids[:, 9:10], hooked_cache, hooks=hooks)]  # fmt: skip
    for a, b in zip(plain, hooked, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(plain_cache.k, hooked_cache.k)
    np.testing.assert_array_equal(plain_cache.v, hooked_cache.v)


def test_points_have_transformer_lens_shapes(case) -> None:
    arch, model, _ = case
    cache = model.new_cache()
    model.forward(IDS[:4], cache)
    _, found = run_with_cache(model, IDS[4:7], cache=cache)  # 3 new positions after 4
    n_head = model.n_head
    n_kv = getattr(model, "n_kv_head", n_head)
    head_dim = getattr(model, "head_dim", model.n_embd // n_head)
    resid = (1, 3, model.n_embd)
    expected = {
        "hook_resid_pre": resid, "attn.hook_q": (1, 3, n_head, head_dim),
        "attn.hook_k": (1, 3, n_kv, head_dim), "attn.hook_v": (1, 3, n_kv, head_dim),
        "attn.hook_pattern": (1, n_head, 3, 7), "attn.hook_z": (1, 3, n_head, head_dim),
        "hook_attn_out": resid, "hook_resid_mid": resid, "hook_mlp_out": resid,
        "hook_resid_post": resid,
    }  # fmt: skip
    assert set(expected) == set(BLOCK_POINTS)
    for layer in range(model.n_layer):
        for point, shape in expected.items():
            assert found[f"blocks.{layer}.{point}"].shape == shape, point
    assert found["hook_embed"].shape == resid and found["ln_final.hook_scale"].shape == (1, 3, 1)
    assert ("hook_pos_embed" in found) == (arch == "gpt2")
    np.testing.assert_allclose(found["blocks.1.attn.hook_pattern"].sum(-1), 1.0, atol=1e-6)
    # The residual stream adds up: resid_mid = resid_pre + attn_out, resid_post = mid + mlp_out.
    for layer in range(model.n_layer):
        b = f"blocks.{layer}."
        np.testing.assert_allclose(found[b + "hook_resid_mid"],
                                   found[b + "hook_resid_pre"] + found[b + "hook_attn_out"],
                                   atol=1e-5)  # fmt: skip
        np.testing.assert_allclose(found[b + "hook_resid_post"],
                                   found[b + "hook_resid_mid"] + found[b + "hook_mlp_out"],
                                   atol=1e-5)  # fmt: skip


def test_the_final_scale_is_the_norms_divisor(case) -> None:
    arch, model, _ = case
    last = f"blocks.{model.n_layer - 1}.hook_resid_post"
    _, found = run_with_cache(model, IDS, [last, "ln_final.hook_scale"])
    x = found[last][0].astype(np.float64)  # [n_seq, n_embd]
    if arch == "gpt2":
        x = x - x.mean(-1, keepdims=True)
    eps = model.readout()[2]
    expected = np.sqrt((x * x).mean(-1) + eps)  # [n_seq]
    np.testing.assert_allclose(found["ln_final.hook_scale"][0, :, 0], expected, rtol=1e-5)


# --- replacing ---------------------------------------------------------------------------------


def _zero_head(layer: int, head: int):
    def engine_hook(z: np.ndarray, hook: HookPoint) -> np.ndarray:
        z = z.copy()
        z[:, :, head] = 0.0
        return z

    def reference_edit(point: str, at: int, x: np.ndarray) -> np.ndarray | None:
        if point == "attn.hook_z" and at == layer:
            x[:, head] = 0.0
            return x
        return None

    return {f"blocks.{layer}.attn.hook_z": engine_hook}, reference_edit


@pytest.mark.parametrize(("layer", "head"), [(0, 1), (1, 0)])
def test_zeroing_a_heads_z_agrees_with_the_float64_reference(case, layer, head) -> None:
    arch, model, params = case
    hooks, edit = _zero_head(layer, head)
    logits = model.forward(IDS, hooks=hooks)
    expected = reference_logits(arch, params, model.hparams, IDS, edit)
    untouched = reference_logits(arch, params, model.hparams, IDS)
    assert np.abs(expected - untouched).max() > 1e-2  # the ablation does something
    np.testing.assert_allclose(logits, expected, atol=2e-4 * np.abs(expected).max(), rtol=0)


def test_in_place_changes_count_as_replacements(case) -> None:
    arch, model, params = case

    def double(x: np.ndarray, hook: HookPoint) -> None:
        x *= 2.0  # in place, returning nothing

    logits = model.forward(IDS, hooks={"blocks.0.hook_mlp_out": double})

    def edit(point: str, layer: int, x: np.ndarray) -> np.ndarray | None:
        return 2.0 * x if (point, layer) == ("hook_mlp_out", 0) else None

    expected = reference_logits(arch, params, model.hparams, IDS, edit)
    np.testing.assert_allclose(logits, expected, atol=2e-4 * np.abs(expected).max(), rtol=0)


def test_a_replaced_pattern_is_what_the_values_are_weighted_by(case) -> None:
    """Uniform attention over the keys seen, through hook_pattern, equals each head's z set to
    the running mean of its values (by the float64 reference's z edit)."""
    arch, model, params = case
    _, found = run_with_cache(model, IDS, ["blocks.0.attn.hook_v"])
    v = found["blocks.0.attn.hook_v"][0].astype(np.float64)  # [n_seq, n_kv, hd]
    n_seq = len(IDS)
    uniform = np.tril(np.ones((n_seq, n_seq))) / np.arange(1, n_seq + 1)[:, None]

    def flat(pattern: np.ndarray, hook: HookPoint) -> np.ndarray:
        return np.broadcast_to(uniform, pattern.shape).astype(np.float32)

    logits = model.forward(IDS, hooks={"blocks.0.attn.hook_pattern": flat})
    group = model.n_head // v.shape[1]
    means = np.einsum("qk,khd->qhd", uniform, v)  # [n_seq, n_kv, hd]
    z = np.repeat(means, group, axis=1)  # [n_seq, n_head, hd]: query head h reads kv h//group

    def edit(point: str, layer: int, x: np.ndarray) -> np.ndarray | None:
        return z if (point, layer) == ("attn.hook_z", 0) else None

    expected = reference_logits(arch, params, model.hparams, IDS, edit)
    np.testing.assert_allclose(logits, expected, atol=2e-4 * np.abs(expected).max(), rtol=0)


def test_the_cache_after_a_hooked_prefill_and_decode_equals_a_full_hooked_pass(case) -> None:
    _, model, _ = case
    hooks, _ = _zero_head(0, 1)
    hooks["blocks.0.hook_resid_pre"] = lambda x, hook: x + np.float32(0.5)
    cache = model.new_cache()
    model.forward(IDS[:-1], cache, hooks=hooks)
    stepped = model.forward(IDS[-1:], cache, hooks=hooks)  # [1, n_vocab]
    full_cache = model.new_cache()
    full = model.forward(IDS, full_cache, hooks=hooks)  # [n_seq, n_vocab]
    np.testing.assert_allclose(stepped[0], full[-1], atol=2e-5, rtol=1e-5)
    n = len(IDS)
    np.testing.assert_allclose(cache.k[:, :, :, :n], full_cache.k[:, :, :, :n], atol=1e-5)
    np.testing.assert_allclose(cache.v[:, :, :, :n], full_cache.v[:, :, :, :n], atol=1e-5)
    plain = model.new_cache()
    model.forward(IDS, plain)
    assert not np.allclose(plain.k[1, :, :, :n], cache.k[1, :, :, :n], atol=1e-3)  # hooked


def test_the_kv_cache_holds_replaced_keys(case) -> None:
    _, model, _ = case
    cache = model.new_cache()

    def zero(x: np.ndarray, hook: HookPoint) -> np.ndarray:
        return np.zeros_like(x)

    model.forward(IDS[:5], cache, hooks={"blocks.1.attn.hook_v": zero})
    assert np.all(cache.v[1, :, :, :5] == 0) and np.any(cache.v[0, :, :, :5] != 0)


def test_decode_over_a_cache_still_equals_a_full_pass(case) -> None:
    _, model, _ = case
    cache = model.new_cache()
    model.forward(IDS[:-1], cache)
    stepped = model.forward(IDS[-1:], cache)
    np.testing.assert_allclose(stepped[0], model.forward(IDS)[-1], atol=2e-5, rtol=1e-5)


# --- bad hooks ---------------------------------------------------------------------------------


def test_unknown_points_and_wrong_shapes_are_refused(case) -> None:
    arch, model, _ = case
    n = model.n_layer
    with pytest.raises(ValueError, match=f"no block {n} for hook"):
        model.forward(IDS, hooks={f"blocks.{n}.hook_resid_pre": lambda x, hook: None})
    with pytest.raises(ValueError, match="no hook point 'blocks.0.hook_nope'"):
        model.forward(IDS, hooks={"blocks.0.hook_nope": lambda x, hook: None})
    if arch == "llama":
        with pytest.raises(ValueError, match="no hook point 'hook_pos_embed'"):
            model.forward(IDS, hooks={"hook_pos_embed": lambda x, hook: None})
    with pytest.raises(ValueError, match=r"returned shape \(3,\)"):
        model.forward(IDS, hooks=[("blocks.0.hook_mlp_out", lambda x, hook: np.zeros(3))])
    with pytest.raises(TypeError, match="not callable"):
        model.forward(IDS, hooks={"hook_embed": 3})


def test_hooks_run_in_order_and_see_each_others_changes(case) -> None:
    _, model, _ = case
    calls = []

    def first(x: np.ndarray, hook: HookPoint) -> np.ndarray:
        calls.append(("first", hook.name, hook.layer))
        return np.zeros_like(x)

    def second(x: np.ndarray, hook: HookPoint) -> None:
        calls.append(("second", float(np.abs(x).sum())))

    model.forward(IDS[:3], hooks=[("blocks.1.hook_attn_out", first),
                                  ("blocks.1.hook_attn_out", second)])  # fmt: skip
    assert calls == [("first", "blocks.1.hook_attn_out", 1), ("second", 0.0)]


def test_pos_embed_hooks_never_touch_the_weights(tiny_gpt2) -> None:
    wpe = tiny_gpt2.params["wpe"].copy()
    tiny_gpt2.forward(IDS, hooks={"hook_pos_embed": lambda x, hook: np.zeros_like(x)})
    np.testing.assert_array_equal(tiny_gpt2.params["wpe"], wpe)


def test_a_pass_resumed_at_a_block_equals_the_whole_pass(case) -> None:
    _, model, _ = case
    layer = model.n_layer - 1
    name = f"blocks.{layer}.hook_resid_pre"
    logits, found = run_with_cache(model, IDS, [name])
    resumed = model.resume(layer, found[name])  # [1, n_seq, n_vocab]
    np.testing.assert_allclose(resumed[0], logits, atol=2e-5, rtol=1e-5)
    cache = model.new_cache()
    model.forward(IDS[:4], cache)
    after = model.resume(layer, found[name][:, 4:], cache, last_only=True)  # [1, 1, n_vocab]
    np.testing.assert_allclose(after[0, -1], logits[-1], atol=2e-5, rtol=1e-5)
    assert cache.length == 4  # written from the block on, not committed
    with pytest.raises(ValueError, match="no block"):
        model.resume(model.n_layer, found[name])
