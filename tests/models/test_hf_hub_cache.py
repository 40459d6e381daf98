"""Finding the Hugging Face cache and the models in it, and `names.describe` deciding what a
name means."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpt_tui.errors import ModelFileError, UnknownModelError
from gpt_tui.models import availability, hf_models, loading, names
from gpt_tui.models.hf.hub_cache import cached_repos, hub_cache_dir, is_repo_id


def test_cache_location_follows_huggingface_hub(monkeypatch: pytest.MonkeyPatch, tmp_path):
    for name in ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hub_cache_dir() == tmp_path / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hub_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hub_cache_dir() == tmp_path / "elsewhere"


def test_repo_ids():
    assert is_repo_id("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert is_repo_id("openai-community/gpt2") and is_repo_id("Qwen/Qwen2.5-0.5B")
    for text in ("gpt2", "a/b/c", "./a/b", "~/x", "/abs/path", "a/..", "../x"):
        assert not is_repo_id(text), text


def test_describe_decides_in_one_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert names.describe("gpt2-xl").kind == "catalog" and names.describe("GPT2").name == "124M"
    assert names.describe("HuggingFaceTB/SmolLM2-135M").kind == "hf"
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert names.describe(str(gguf)) == names.ModelRef("path", str(gguf), path=gguf)
    # A relative directory that exists is a path, even when it could be a repo id.
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert names.describe("org/name").kind == "path"
    assert names.describe("org/other").kind == "hf"
    with pytest.raises(ModelFileError, match="does not exist"):
        names.describe("./missing")
    with pytest.raises(ModelFileError, match="not a Hugging Face ORG/NAME"):
        names.describe("a/b/c")
    with pytest.raises(UnknownModelError, match="did you mean '124M'"):
        names.describe("125M")


def test_cached_models_are_listed_with_architecture_and_size(hf_hub_cache: Path):
    assert [r.repo_id for r in cached_repos()] == [
        "HuggingFaceTB/SmolLM2-Tiny",
        "openai-community/gpt2",
    ]
    models = {m.repo_id: m for m in hf_models.hf_models()}
    gpt2 = models["openai-community/gpt2"]
    assert gpt2.supported and gpt2.hf_architecture == "GPT2LMHeadModel"
    assert gpt2.n_params == 50257 * 16 + 64 * 16 + 2 * (12 * 16 * 16 + 13 * 16) + 2 * 16
    assert not gpt2.converted
    loading.load_model("openai-community/gpt2")  # from the cache: no server is running
    assert {m.repo_id: m for m in hf_models.hf_models()}["openai-community/gpt2"].converted
    assert availability.status("openai-community/gpt2") == "cached"
    assert availability.status("someone/else") == "not downloaded"


def test_an_unusable_cached_model_is_listed_with_the_reason(hf_hub_cache: Path):
    snapshot = next(r.snapshot for r in cached_repos() if r.repo_id.endswith("SmolLM2-Tiny"))
    (snapshot / "tokenizer.json").unlink()
    model = {m.repo_id: m for m in hf_models.hf_models()}["HuggingFaceTB/SmolLM2-Tiny"]
    assert not model.supported and "tokenizer.json" in model.problem


def test_the_converted_copy_outlives_a_cleared_hugging_face_cache(hf_hub_cache: Path):
    import shutil

    first = loading.load_model("openai-community/gpt2")
    shutil.rmtree(hf_hub_cache / "models--openai-community--gpt2")
    again = loading.load_model("openai-community/gpt2")  # no server: it must not ask the Hub
    assert again.path == first.path and again.name == "openai-community/gpt2"
