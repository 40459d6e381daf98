"""Several streams decoded as one batch, and branching on an alternative through the cache."""

from __future__ import annotations

import numpy as np
import pytest

from gpt_tui.engine import SamplingParams, generate, generate_batch


def test_batched_streams_equal_each_stream_run_alone(tiny_gpt2, gpt2_tokenizer) -> None:
    settings = [
        SamplingParams(temperature=0.3, seed=1, max_tokens=15),
        SamplingParams(temperature=0.8, seed=2, max_tokens=9),
        SamplingParams(temperature=1.2, seed=3, max_tokens=15, top_k=40),
        SamplingParams(temperature=0, max_tokens=12),
    ]
    per_stream: dict[int, list] = {i: [] for i in range(len(settings))}
    for i, event in generate_batch(tiny_gpt2, gpt2_tokenizer, "Once upon a time", settings):
        per_stream[i].append(event)
    for i, params in enumerate(settings):
        alone = list(generate(tiny_gpt2, gpt2_tokenizer, "Once upon a time", params))
        assert [e.token_id for e in per_stream[i]] == [e.token_id for e in alone]
        np.testing.assert_allclose(
            [e.logprob for e in per_stream[i]], [e.logprob for e in alone], atol=1e-5
        )
        assert per_stream[i][-1].finish_reason == "length"


def test_batched_streams_slide_their_windows_together(tiny_gpt2, gpt2_tokenizer) -> None:
    settings = [SamplingParams(temperature=0, max_tokens=80), SamplingParams(seed=5, max_tokens=80)]
    events = list(generate_batch(tiny_gpt2, gpt2_tokenizer, "x y z", settings))
    for i, params in enumerate(settings):
        mine = [e for s, e in events if s == i]
        alone = list(generate(tiny_gpt2, gpt2_tokenizer, "x y z", params))
        assert [e.token_id for e in mine] == [e.token_id for e in alone]
        assert any(e.dropped for e in mine)


def test_stream_count_is_checked(tiny_gpt2, gpt2_tokenizer) -> None:
    with pytest.raises(ValueError, match="1 to 8 streams"):
        list(generate_batch(tiny_gpt2, gpt2_tokenizer, "x", []))


def test_branching_on_an_alternative_equals_generating_with_it_forced(
    tiny_gpt2, gpt2_tokenizer
) -> None:
    prompt = gpt2_tokenizer.encode("The weather today is")
    cache = tiny_gpt2.new_cache()
    params = SamplingParams(temperature=0, max_tokens=10)
    first = list(generate(tiny_gpt2, gpt2_tokenizer, prompt, params, cache=cache))
    # branch at step 4: take its third alternative instead of the chosen token
    step = first[4]
    alternative = step.top[2].token_id
    assert alternative != step.token_id
    branch_context = prompt + [e.token_id for e in first[:4]] + [alternative]
    branched = list(generate(tiny_gpt2, gpt2_tokenizer, branch_context, params, cache=cache))
    fresh = list(generate(tiny_gpt2, gpt2_tokenizer, branch_context, params))
    assert [e.token_id for e in branched] == [e.token_id for e in fresh]
    np.testing.assert_allclose([e.logprob for e in branched], [e.logprob for e in fresh], atol=1e-5)
    assert cache.tokens()[: len(branch_context)] == branch_context
