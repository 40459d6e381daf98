"""The models in the Hugging Face cache as gpt-tui lists them: architecture, size, whether it runs
them and has converted them."""

from __future__ import annotations

from pathlib import Path

from gpt_tui.models import availability, hf_models, loading
from gpt_tui.models.hf.hub_cache import cached_repos


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
