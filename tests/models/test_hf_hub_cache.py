"""Finding the Hugging Face cache, and what a repo id looks like."""

from __future__ import annotations

import pytest

from gpt_tui.models.hf.hub_cache import hub_cache_dir, is_repo_id


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
