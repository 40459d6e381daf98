"""Draft models named by a Hugging Face repo id (backends/drafts.py)."""

from __future__ import annotations

import pytest

from gpt_tui.backends.drafts import load_draft
from gpt_tui.errors import SpeculationError
from gpt_tui.models import loading


def test_an_uncached_hub_draft_is_refused_without_downloading():
    with pytest.raises(SpeculationError, match=r"someone/draft is not downloaded yet \(pick it"):
        load_draft("someone/draft", None, download=False)  # type: ignore[arg-type]


def test_a_cached_hub_model_drafts_for_the_same_tokenizer(hf_hub_cache):
    target = loading.load_model("openai-community/gpt2")
    draft = load_draft("openai-community/gpt2", target, download=False)
    assert draft.name == "openai-community/gpt2"
    with pytest.raises(SpeculationError, match="cannot draft"):
        load_draft("HuggingFaceTB/SmolLM2-Tiny", target, download=False)
