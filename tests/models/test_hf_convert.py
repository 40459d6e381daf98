"""Hugging Face directories made by transformers -> our converted cache -> the same logits and
greedy text as transformers (tests/fixtures/make_hf_models.py wrote both)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from gpt_tui import locations
from gpt_tui.errors import ModelFileError
from gpt_tui.models import loading
from gpt_tui.models.download import DownloadCancelled
from gpt_tui.models.hf.checkpoint import open_checkpoint
from gpt_tui.models.hf.convert import convert_checkpoint, rope_pairs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hf"
PROMPT = "Hello, world! The quick brown fox jumps over 12 lazy dogs."
MODELS = {
    "gpt2": ("gpt2", "GPT2LMHeadModel"),  # float16, GPT-2's real vocabulary
    "smollm2": ("llama", "LlamaForCausalLM"),  # bfloat16, SmolLM2's tokenizer, tied
    "llama3": ("llama", "LlamaForCausalLM"),  # float32, llama3 rope scaling, 5 shards, untied
    "qwen2": ("llama", "Qwen2ForCausalLM"),  # float16, q/k/v biases
}


@pytest.mark.parametrize("name", list(MODELS))
def test_logits_and_greedy_text_equal_transformers(name: str):
    reference = load_file(str(FIXTURES / f"{name}.reference.safetensors"))
    loaded = loading.load_model(FIXTURES / name)

    assert loaded.hparams["architecture"] == MODELS[name][0]
    ids = loaded.tokenizer.encode(PROMPT)
    assert ids == reference["ids"].tolist()  # the tokenizer's ids are transformers' too
    logits = loaded.model.forward(ids)[:, reference["columns"]]
    np.testing.assert_allclose(logits, reference["logits"], atol=1e-4, rtol=0)

    cache, greedy, step = loaded.model.new_cache(), [], ids
    for _ in range(len(reference["greedy"])):
        token = int(loaded.model.forward(step, cache)[-1].argmax())
        greedy.append(token)
        step = [token]
    assert greedy == reference["greedy"].tolist()
    assert loaded.tokenizer.decode(greedy) == loaded.tokenizer.decode(reference["greedy"])


def test_converted_once_then_read_from_the_cache():
    first = loading.load_model(FIXTURES / "smollm2")
    target = first.path
    assert target.parent == locations.models_dir() / "local"
    written = (target / "model.safetensors").stat().st_mtime_ns
    second = loading.load_model(str(FIXTURES / "smollm2"))
    assert second.path == target and (target / "model.safetensors").stat().st_mtime_ns == written
    assert json.loads((target / "hparams.json").read_text())["tie_word_embeddings"] is True
    # The tokenizer travels with the converted model: it loads without the source directory.
    assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= {
        p.name for p in target.iterdir()
    }


def test_a_changed_source_is_converted_again(tmp_path: Path):
    source = Path(shutil.copytree(FIXTURES / "gpt2", tmp_path / "gpt2"))
    first = loading.load_model(source)
    config = json.loads((source / "config.json").read_text())
    config["n_positions"] = 32  # disagrees with wpe's 64 rows now
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match=r"wpe.weight as \[64, 16\].*implies \[32, 16\]"):
        loading.load_model(source)
    # The refused version left the good converted copy as it was, and nothing half-written.
    assert loading.load_model_dir(first.path).hparams["n_ctx"] == 64
    assert not list(first.path.parent.glob(".*.tmp"))


def test_rope_pairs_make_rotate_half_partners_adjacent():
    head_dim, n_heads = 8, 2
    rows = np.arange(n_heads * head_dim)[:, None]  # [16, 1]: row r holds r
    paired = rope_pairs(rows, n_heads)[:, 0]
    # Head 0: (0, 4), (1, 5), (2, 6), (3, 7); head 1 the same, 8 on.
    assert paired.tolist() == [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15]


def test_cancelled_conversion_leaves_nothing(tmp_path: Path):
    checkpoint = open_checkpoint(FIXTURES / "llama3")
    target = tmp_path / "out" / "llama3"

    def cancel(done: int, total: int) -> None:
        if done == 5:
            raise DownloadCancelled("stop")

    with pytest.raises(DownloadCancelled):
        convert_checkpoint(checkpoint, target, progress=cancel)
    assert not target.exists()
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


@pytest.mark.parametrize("name", ["llama3", "qwen2"])
def test_look_inside_traces_scaled_rope_and_qkv_biases(name: str):
    from gpt_tui.engine.trace import holding, trace

    loaded = loading.load_model(FIXTURES / name)
    ids = loaded.tokenizer.encode(PROMPT)[:20]
    logits = loaded.model.forward(ids)
    for position in (0, 7, 19):
        t = trace(loaded.model, holding(loaded.model, ids, position), position)
        np.testing.assert_allclose(t.logits, logits[position], atol=2e-5, rtol=1e-5)


def test_gpt2_as_older_uploads_name_it(tmp_path: Path):
    """openai-community/gpt2's own model.safetensors: no `transformer.` prefix, the causal-mask
    buffers (`h.N.attn.bias`) stored as tensors, and sometimes the tied lm_head too."""
    from safetensors.numpy import save_file

    from gpt_tui.models.hf.safetensors import read_float32

    source = Path(shutil.copytree(FIXTURES / "gpt2", tmp_path / "gpt2"))
    tensors = {
        name.removeprefix("transformer."): array.astype(np.float16)
        for name, array in read_float32(source / "model.safetensors")
    }
    tensors["lm_head.weight"] = tensors["wte.weight"]
    for i in range(2):
        tensors[f"h.{i}.attn.bias"] = np.tril(np.ones((64, 64), np.float16))[None, None]
    save_file(tensors, str(source / "model.safetensors"), metadata={"format": "pt"})

    reference = load_file(str(FIXTURES / "gpt2.reference.safetensors"))
    loaded = loading.load_model(source)
    logits = loaded.model.forward(reference["ids"].tolist())[:, reference["columns"]]
    np.testing.assert_allclose(logits, reference["logits"], atol=1e-4, rtol=0)
