"""Scoring given tokens: the same numbers as a full forward pass, in one window or many."""

from __future__ import annotations

import math

import numpy as np

from gpt_tui.engine import SamplingParams, generate, generate_batch, rank_bucket, score_text
from gpt_tui.engine.scoring import score_rows

EOT = 50256


def log_probs(model, context: list[int]) -> np.ndarray:
    logits = model.forward(context).astype(np.float64)
    logits -= logits.max(axis=-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


def test_score_rows_matches_a_direct_computation(tiny_gpt2, gpt2_tokenizer) -> None:
    ids = gpt2_tokenizer.encode("The cat sat on the mat")
    logits = tiny_gpt2.forward(ids)
    scores = score_rows(logits[:-1], ids[1:], gpt2_tokenizer, n_top=3, first_position=1)
    lp = log_probs(tiny_gpt2, ids)
    for i, s in enumerate(scores):
        assert s.position == i + 1 and s.token_id == ids[i + 1]
        assert math.isclose(s.logprob, lp[i, ids[i + 1]], abs_tol=1e-6)
        assert s.rank == 1 + int((logits[i] > logits[i, ids[i + 1]]).sum())
        assert [a.token_id for a in s.top] == np.argsort(-logits[i])[:3].tolist()


def test_a_text_is_scored_after_its_first_token_without_a_bos(tiny_gpt2, gpt2_tokenizer):
    # GPT-2's tokenizer puts nothing before a text: nothing predicts its first token, which has
    # no score (transformers' perplexity guide; the playground's prompt scores alike)
    text = "Hello there, general Kenobi"
    ids = gpt2_tokenizer.encode(text)
    result = score_text(tiny_gpt2, gpt2_tokenizer, text)
    assert not result.prepended_bos and result.context == tuple(ids)
    assert [s.position for s in result.tokens] == list(range(1, len(ids)))
    lp = log_probs(tiny_gpt2, ids)
    expected = [lp[i - 1, ids[i]] for i in range(1, len(ids))]
    np.testing.assert_allclose([s.logprob for s in result.tokens], expected, atol=1e-6)
    assert math.isclose(result.perplexity, math.exp(-np.mean(expected)), rel_tol=1e-9)
    assert math.isclose(result.mean_surprisal_bits, -np.mean(expected) / math.log(2))


def test_a_tokenizer_that_puts_a_bos_first_has_every_token_of_the_text_scored(
    tiny_gpt2, gpt2_tokenizer, bos_first_tokenizer
):
    bos_first = bos_first_tokenizer  # as Llama 3's does
    text = "Hello there, general Kenobi"
    ids = gpt2_tokenizer.encode(text)
    result = score_text(tiny_gpt2, bos_first, text)
    assert result.prepended_bos and result.context == (EOT, *ids)
    assert [s.position for s in result.tokens] == list(range(1, len(ids) + 1))
    lp = log_probs(tiny_gpt2, [EOT, *ids])
    expected = [lp[i, t] for i, t in enumerate(ids)]
    np.testing.assert_allclose([s.logprob for s in result.tokens], expected, atol=1e-6)


def test_text_longer_than_the_context_is_read_in_overlapping_windows(tiny_gpt2, gpt2_tokenizer):
    ids = np.random.default_rng(4).integers(0, 50000, 150).tolist()
    result = score_text(tiny_gpt2, gpt2_tokenizer, ids)
    assert [s.position for s in result.tokens] == list(range(1, 150))
    for s in result.tokens[::17]:
        target = s.position  # index in `ids`
        # its window: at least half a context (32 tokens) of what precedes it, at most 64
        found = False
        for lo in range(max(0, target - 63), max(1, target - 31)):
            lp = log_probs(tiny_gpt2, ids[lo : target + 1])[-2, ids[target]]
            found |= math.isclose(s.logprob, lp, abs_tol=1e-5)
        assert found, s.position


def test_rank_buckets() -> None:
    assert [rank_bucket(r) for r in (1, 2, 10, 11, 100, 101)] == [
        "top-1",
        "top-10",
        "top-10",
        "top-100",
        "top-100",
        "beyond",
    ]


def test_prompt_scores_come_from_the_prefill(tiny_gpt2, gpt2_tokenizer) -> None:
    ids = gpt2_tokenizer.encode("A quick test of scoring the prompt")
    received = []
    events = generate(
        tiny_gpt2,
        gpt2_tokenizer,
        ids,
        SamplingParams(max_tokens=1),
        on_prompt_scored=received.extend,
    )
    list(events)
    lp = log_probs(tiny_gpt2, ids)
    assert [s.position for s in received] == list(range(1, len(ids)))
    np.testing.assert_allclose(
        [s.logprob for s in received], [lp[i - 1, ids[i]] for i in range(1, len(ids))], atol=1e-5
    )


def test_a_batch_scores_its_prompt_like_a_single_stream(tiny_gpt2, gpt2_tokenizer) -> None:
    ids = gpt2_tokenizer.encode("A quick test of scoring the prompt")
    alone, batched = [], []
    one = SamplingParams(max_tokens=1)
    list(generate(tiny_gpt2, gpt2_tokenizer, ids, one, on_prompt_scored=alone.extend))
    params = [SamplingParams(max_tokens=1, seed=s) for s in (1, 2, 3)]
    list(generate_batch(tiny_gpt2, gpt2_tokenizer, ids, params, on_prompt_scored=batched.extend))
    assert batched == alone and len(batched) == len(ids) - 1


def test_prompt_scores_after_cache_reuse_cover_only_new_tokens(tiny_gpt2, gpt2_tokenizer):
    cache = tiny_gpt2.new_cache()
    ids = gpt2_tokenizer.encode("one two three four five six")
    list(generate(tiny_gpt2, gpt2_tokenizer, ids, SamplingParams(max_tokens=1), cache=cache))
    received = []
    longer = ids + gpt2_tokenizer.encode(" seven eight")
    list(
        generate(
            tiny_gpt2,
            gpt2_tokenizer,
            longer,
            SamplingParams(max_tokens=1),
            cache=cache,
            on_prompt_scored=received.extend,
        )
    )
    lp = log_probs(tiny_gpt2, longer)
    first = received[0].position
    assert first == len(ids)  # the prompt's old last token is recomputed, so it predicts " seven"
    np.testing.assert_allclose(
        [s.logprob for s in received],
        [lp[p - 1, longer[p]] for p in range(first, len(longer))],
        atol=1e-5,
    )
