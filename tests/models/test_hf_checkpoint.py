"""Bad Hugging Face directories: each refused with one line that says what to do, and nothing
half-written in the cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gpt_tui import locations
from gpt_tui.errors import ModelFileError
from gpt_tui.models import loading
from gpt_tui.models.hf.checkpoint import open_checkpoint, summarize
from gpt_tui.models.hf.safetensors import read_float32, read_header

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hf"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / "smollm2", tmp_path / "smollm2"))


def refused(path: Path, match: str) -> str:
    with pytest.raises(ModelFileError, match=match) as info:
        loading.load_model(path)
    message = str(info.value)
    assert "\n" not in message
    local = locations.models_dir() / "local"
    assert not local.exists() or not [p for p in local.iterdir() if p.suffix != ".lock"]
    return message


def test_directory_without_weights(model: Path):
    (model / "model.safetensors").unlink()
    refused(model, r"has no weights \(no \*.safetensors files\); fetch the model again")


def test_pickle_only_checkpoint_is_refused_saying_why(model: Path):
    (model / "model.safetensors").rename(model / "pytorch_model.bin")
    refused(model, r"only a PyTorch pickle checkpoint \(pytorch_model.bin\).*never loads")


def test_unknown_architecture_names_it_and_what_is_supported(model: Path):
    config = json.loads((model / "config.json").read_text())
    config["architectures"] = ["MistralForCausalLM"]
    (model / "config.json").write_text(json.dumps(config))
    refused(model, r"is a MistralForCausalLM model; gpt-tui runs GPT2LMHeadModel, "
            r"LlamaForCausalLM, Qwen2ForCausalLM")  # fmt: skip


def test_unsupported_rope_scaling(model: Path):
    config = json.loads((model / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}
    (model / "config.json").write_text(json.dumps(config))
    refused(model, r"asks for 'yarn' rope scaling; gpt-tui implements default, linear, llama3")


def test_truncated_shard(model: Path):
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 2])
    refused(model, r"model.safetensors is truncated .*; fetch the model again")


def test_corrupt_header(model: Path):
    data = bytearray((model / "model.safetensors").read_bytes())
    data[8:20] = b"not json at!"
    (model / "model.safetensors").write_bytes(bytes(data))
    refused(model, r"model.safetensors is not a readable safetensors file")


def test_missing_shard_of_an_index(tmp_path: Path):
    model = Path(shutil.copytree(FIXTURES / "llama3", tmp_path / "llama3"))
    (model / "model-00003-of-00005.safetensors").unlink()
    refused(model, r"lacks the shard model-00003-of-00005.safetensors .*fetch the model again")


def test_config_that_disagrees_with_the_tensor_shapes(model: Path):
    config = json.loads((model / "config.json").read_text())
    config["intermediate_size"] = 48
    (model / "config.json").write_text(json.dumps(config))
    refused(model, r"down_proj.weight as \[16, 40\], but config.json implies \[16, 48\]")


def test_missing_tokenizer(model: Path):
    (model / "tokenizer.json").unlink()
    refused(model, r"has no tokenizer.json .*copy it from the model's repository")


def test_not_a_model_directory_at_all(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello")
    refused(tmp_path, r"is not a model: expected a Hugging Face model directory")


def test_bfloat16_widens_exactly():
    bf16 = dict(read_float32(FIXTURES / "smollm2" / "model.safetensors"))
    embedding = bf16["model.embed_tokens.weight"]
    assert embedding.dtype == np.float32
    # A widened bfloat16 has zeros in its low 16 bits, and is not all zeros.
    assert not (embedding.view(np.uint32) & 0xFFFF).any() and embedding.any()
    assert {t.dtype for t in read_header(FIXTURES / "smollm2" / "model.safetensors")} == {"BF16"}


def test_summary_for_the_picker():
    summary = summarize(FIXTURES / "llama3")
    assert summary.supported and summary.hf_architecture == "LlamaForCausalLM"
    assert summary.n_params == sum(
        t.n_elements
        for shard in sorted((FIXTURES / "llama3").glob("*.safetensors"))
        for t in read_header(shard)
    )
    assert summary.size_bytes > 0


def test_summary_of_a_bad_directory_says_why(model: Path):
    (model / "tokenizer.json").unlink()
    summary = summarize(model)
    assert not summary.supported and "tokenizer.json" in summary.problem
    assert open_checkpoint(FIXTURES / "gpt2").architecture == "gpt2"
