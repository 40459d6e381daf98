"""Every model is built by one path whatever its source (engine/plan/__init__.py's `prepare`):
plain arrays, streaming random weights and a converted directory end in the same layout under
the same plan; measuring leaves the model as it was given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpt_tui.engine import GPT2, Llama, gpt2, llama, plan
from gpt_tui.engine.cores import Settings
from gpt_tui.engine.layout import LAYOUTS, layout_of
from gpt_tui.engine.plan import Plan
from gpt_tui.engine.plan.keys import plan_key, weight_matrices
from gpt_tui.engine.plan.measure import measure
from gpt_tui.models.model_dir import read_hparams, read_params, write_model_dir
from gpt_tui.models.random_weights import random_gpt2_params

HPARAMS = {"n_vocab": 300, "n_ctx": 32, "n_embd": 64, "n_head": 4, "n_layer": 2}
IDS = np.arange(0, 300, 37)  # [9]


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GPT_TUI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(plan.PLAN_ENV, raising=False)
    return tmp_path


def _layouts(model) -> set[str | None]:
    return {layout_of(w) for _, w in weight_matrices(model)}


def _converted(directory: Path, model_class):
    """What loading a converted directory builds (models/loading.py's load_model_dir)."""
    return model_class(read_params(directory), read_hparams(directory))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_plain_streaming_and_converted_weights_end_alike(tmp_path, layout) -> None:
    given = Plan(Settings(layout=layout), key={})
    params = random_gpt2_params(HPARAMS, seed=3, scale=0.3)
    directory = write_model_dir(
        tmp_path / "model", gpt2.streaming_params(params), {"architecture": "gpt2", **HPARAMS}
    )  # as a converter writes it
    models = {
        "plain": GPT2(params, HPARAMS, plan=given),
        "streaming": GPT2(random_gpt2_params(HPARAMS, seed=3, scale=0.3, streaming=True),
                          HPARAMS, plan=given),
        "converted": GPT2(read_params(directory), read_hparams(directory), plan=given),
    }  # fmt: skip
    for name, model in models.items():
        assert _layouts(model) == {layout}, name
        assert plan_key(model) == plan_key(models["plain"]), name
    np.testing.assert_array_equal(models["plain"].forward(IDS), models["converted"].forward(IDS))


def test_a_measured_plan_is_the_same_for_plain_and_converted_weights(tmp_path) -> None:
    params = random_gpt2_params(HPARAMS, seed=3, scale=0.3)
    directory = write_model_dir(tmp_path / "model", gpt2.streaming_params(params),
                                {"architecture": "gpt2", **HPARAMS})  # fmt: skip
    plain = GPT2(params, HPARAMS)  # measured now, and kept
    converted = _converted(directory, GPT2)  # the kept plan
    assert plain.planned.plan.source.startswith("measured")
    assert converted.planned.plan.settings == plain.planned.plan.settings
    assert _layouts(converted) == _layouts(plain) == {plain.planned.plan.settings.layout}
    np.testing.assert_array_equal(converted.forward(IDS), plain.forward(IDS))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_llama_from_plain_arrays_and_from_a_directory_end_alike(
    tmp_path, tiny_llama_params, layout
) -> None:
    hparams = {"n_vocab": 50257, "n_ctx": 64, "n_embd": 32, "n_head": 4, "n_kv_head": 2,
               "head_dim": 8, "n_ff": 48, "n_layer": 3, "rope_base": 10000.0, "norm_eps": 1e-5,
               "tie_word_embeddings": True}  # fmt: skip
    directory = write_model_dir(tmp_path / "llama", llama.streaming_params(tiny_llama_params),
                                {"architecture": "llama", **hparams})  # fmt: skip
    given = Plan(Settings(layout=layout), key={})
    plain = Llama(tiny_llama_params, hparams, plan=given)
    converted = Llama(read_params(directory), read_hparams(directory), plan=given)
    assert _layouts(plain) == _layouts(converted) == {layout}
    assert plan_key(plain) == plan_key(converted)
    np.testing.assert_array_equal(plain.forward(IDS), converted.forward(IDS))


def test_measuring_leaves_the_model_as_it_was_given() -> None:
    model = GPT2(random_gpt2_params(HPARAMS, seed=4, scale=0.3), HPARAMS, plan="default")
    before = {name: (type(w), np.array(w.to_matrix())) for name, w in weight_matrices(model)}
    logits = model.forward(IDS)
    measure(model, rounds=2)
    after = dict(weight_matrices(model))
    for name, (kind, matrix) in before.items():
        assert type(after[name]) is kind
        np.testing.assert_array_equal(after[name].to_matrix(), matrix)
    np.testing.assert_array_equal(model.forward(IDS), logits)
