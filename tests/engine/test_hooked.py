"""engine/hooked.py: an intervention set's hooks on every pass, through the kv cache too."""

from __future__ import annotations

import numpy as np
import pytest

from gpt_tui.engine.hooked import HookedModel, Interventions, Steering, with_interventions
from gpt_tui.engine.hooks import run_with_cache
from gpt_tui.engine.interventions import (
    Ablation,
    ablation_hooks,
    merged,
    steering_hooks,
    steering_vector,
)

IDS = [464, 3139, 286, 4881, 318, 257, 1295]
SET = Interventions(
    (Ablation(0, "head", 1), Ablation(1, "mlp", mean=True)),
    Steering(1, 3.0, (40, 1842), (40, 5465)),
)


@pytest.fixture(params=["gpt2", "llama"])
def model(request, tiny_gpt2, tiny_random_llama):
    return tiny_gpt2 if request.param == "gpt2" else tiny_random_llama


def test_the_hooked_model_is_the_model_with_the_engines_hooks(model) -> None:
    hooks = merged(
        ablation_hooks(model, SET.ablations, IDS),
        steering_hooks(1, steering_vector(model, (40, 1842), (40, 5465), 1), 3.0),
    )
    want = model.forward(IDS, hooks=hooks)  # [n_tok, n_vocab]
    hooked = with_interventions(model, SET, IDS)
    assert isinstance(hooked, HookedModel) and hooked.n_vocab == model.n_vocab
    np.testing.assert_array_equal(hooked.forward(IDS), want)
    assert not np.allclose(model.forward(IDS), want)
    # a pass over a kv cache, one token at a time, agrees with the full pass
    cache = hooked.new_cache()
    rows = [hooked.forward([token], cache, last_only=True)[-1] for token in IDS]
    np.testing.assert_allclose(np.stack(rows), want, rtol=2e-4, atol=2e-4)


def test_a_readers_hooks_run_after_the_interventions(model) -> None:
    hooked = with_interventions(model, Interventions((Ablation(1, "head", 0),)))
    _, found = run_with_cache(hooked, IDS, ["blocks.1.attn.hook_z"])
    z = found["blocks.1.attn.hook_z"]  # [1, n_tok, n_head, head_dim]
    assert not z[:, :, 0].any() and z[:, :, 1].any()


def test_no_interventions_is_the_model_itself(model) -> None:
    assert with_interventions(model, Interventions()) is model
    assert with_interventions(model, None) is model


def test_check_says_what_the_model_lacks() -> None:
    with pytest.raises(ValueError, match="no head 5; the heads are 0-1"):
        Interventions((Ablation(0, "head", 5),)).check(2, 2)
    with pytest.raises(ValueError, match="no block 2"):
        Interventions(steering=Steering(2, 1.0, (1,), (2,))).check(2, 2)
    assert SET.describe().startswith("ablate 0.1; ablate 1.mlp:mean; steer")


def test_a_mean_over_a_text_longer_than_the_context_takes_its_end(tiny_gpt2) -> None:
    long = list(range(100, 100 + tiny_gpt2.n_ctx + 10))
    ablation = Interventions((Ablation(0, "mlp", mean=True),))
    hooked = with_interventions(tiny_gpt2, ablation, long)
    same = with_interventions(tiny_gpt2, ablation, long[-tiny_gpt2.n_ctx :])
    np.testing.assert_array_equal(hooked.forward(IDS), same.forward(IDS))
