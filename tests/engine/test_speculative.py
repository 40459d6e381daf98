"""Speculative decoding: exactly plain decoding's tokens and events, several per pass."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from gpt_tui.engine import GPT2, Sampler, SamplingParams, generate
from gpt_tui.engine.speculative import (
    DraftLength,
    DraftModel,
    PassStats,
    PromptLookup,
    check_draft_model,
    lookup,
    unavailable_reason,
)
from gpt_tui.models.random_weights import random_gpt2_params
from gpt_tui.tokenizer import Tokenizer

# --- the accept/reject rule on a small vocabulary -------------------------------------------------

N_DRAWS = 100_000
P_LOGITS = np.array([2.0, 1.0, 0.5, -1.0, 3.0, 0.0])
NEVER = -1e9  # exp(-1e9) is exactly 0.0: a token outside the support

CASES = {
    "p equals q": (P_LOGITS, P_LOGITS, SamplingParams()),
    "disjoint supports": (
        np.array([2.0, 1.0, 0.5, NEVER, NEVER, NEVER]),
        np.array([NEVER, NEVER, NEVER, 1.0, 3.0, 0.0]),
        SamplingParams(),
    ),
    "a one-hot draft": (
        P_LOGITS,
        np.array([NEVER, 5.0, NEVER, NEVER, NEVER, NEVER]),
        SamplingParams(),
    ),
    # top-k 3 zeroes three of the target's tokens, and other ones of the draft's
    "top-k zeros": (P_LOGITS, P_LOGITS[::-1].copy(), SamplingParams(top_k=3, temperature=0.7)),
}


@functools.cache
def speculative_draws(case: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N_DRAWS positions through the rule decode() applies: the draft model draws its token
    for the position (as DraftModel.propose does), the target draws its own for the same
    position (the verifying pass's row); the draft holds if they are equal, and the token
    emitted is the target's draw either way. Returns (emitted, accepted, proposed)."""
    p_logits, q_logits, settings = CASES[case]
    target, draft = Sampler(6, [], 11), Sampler(6, [], 11)
    proposed = np.array([draft.sample(q_logits, settings, i)[0] for i in range(N_DRAWS)])
    emitted = np.array([target.sample(p_logits, settings, i)[0] for i in range(N_DRAWS)])
    return emitted, proposed == emitted, proposed


def chi_square_rejects(tokens: np.ndarray, probs: np.ndarray) -> bool:
    """Whether a chi-square test rejects `tokens` as draws from `probs` at p < 1e-4."""
    if np.any(np.isin(tokens, np.flatnonzero(probs == 0))):
        return True  # a token the distribution never gives
    support = probs > 0
    observed = np.bincount(tokens, minlength=probs.size)[support]
    expected = probs[support] * tokens.size
    statistic = float(((observed - expected) ** 2 / expected).sum())
    df = int(support.sum()) - 1
    if df == 0:
        return False
    z = 3.719  # the normal quantile of 1 - 1e-4 (Wilson-Hilferty's approximation of chi2)
    critical = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    return statistic > critical


def coupled_acceptance(p: np.ndarray, q: np.ndarray) -> float:
    """P(draft == target) when both are drawn from one uniform by their cumulative sums."""
    cp, cq = np.cumsum(p), np.cumsum(q)
    lo = np.maximum(np.concatenate([[0], cp[:-1]]), np.concatenate([[0], cq[:-1]]))
    return float(np.clip(np.minimum(cp, cq) - lo, 0, None).sum())


@pytest.mark.parametrize("case", list(CASES))
def test_the_rule_gives_plain_samplings_distribution(case: str) -> None:
    p_logits, q_logits, settings = CASES[case]
    p = Sampler(6, [], 0).distribution(p_logits, settings)
    q = Sampler(6, [], 0).distribution(q_logits, settings)
    emitted, accepted, _ = speculative_draws(case)
    assert not chi_square_rejects(emitted, p)
    assert abs(accepted.mean() - coupled_acceptance(p, q)) < 0.01
    if case == "p equals q":
        assert accepted.all()
    if case == "disjoint supports":
        assert not accepted.any()


@pytest.mark.parametrize("case", [c for c in CASES if c != "p equals q"])
def test_a_rule_that_accepts_every_draft_fails_the_same_test(case: str) -> None:
    p_logits, _, settings = CASES[case]
    p = Sampler(6, [], 0).distribution(p_logits, settings)
    _, _, proposed = speculative_draws(case)  # every proposal emitted
    assert chi_square_rejects(proposed, p)


# --- drafts -------------------------------------------------------------------------------------


def test_lookup_proposes_what_followed_the_longest_latest_match() -> None:
    context = np.array([5, 6, 7, 8, 9, 1, 6, 7, 3, 4, 2, 5, 6, 7])
    # "5 6 7" occurred at the start (followed by 8 9); "6 7" alone later (followed by 3 4)
    assert lookup(context, 2, max_ngram=3) == [8, 9]
    assert lookup(context, 2, max_ngram=2) == [3, 4]
    assert lookup(np.array([1, 2, 3]), 4, 3) == []
    assert lookup(np.array([4]), 4, 3) == []
    assert lookup(np.array([1, 2, 3, 1]), 9, 3) == [2, 3, 1]  # up to the end of the context
    assert lookup(np.array([1, 2, 3, 1]), 9, 3, min_ngram=2) == []  # one token: too weak
    assert PromptLookup().propose(context, 2, Sampler(10, [], 0), SamplingParams(), 0) == [8, 9]


def test_draft_length_follows_the_acceptance_and_falls_back_to_plain() -> None:
    length = DraftLength()
    for _ in range(20):  # every draft holds; a pass costs the same whatever its size
        k = length.choose()
        length.record(k, k, 1 + k, 0.02, 0.0)
    assert length.choose() == length.max_draft
    for _ in range(20):  # every draft fails, and extra positions cost 30% each
        k = max(length.choose(), 1)
        length.record(k, 0, 1 + k, 0.02 * (1 + 0.3 * k), 0.0)
        length.record(0, 0, 1, 0.02, 0.0)
    choices = [length.choose() for _ in range(2 * DraftLength.PROBE_EVERY)]
    assert choices.count(0) >= len(choices) - 2  # plain decoding, but for a probe now and then


# --- equality with plain decoding on real models ------------------------------------------------

SETTINGS = [
    SamplingParams(temperature=0, max_tokens=60),
    SamplingParams(temperature=0.9, seed=3, max_tokens=60),
    SamplingParams(temperature=1.3, top_k=20, top_p=0.9, seed=4, max_tokens=60),
    SamplingParams(temperature=0.8, min_p=0.1, repetition_penalty=1.3, seed=5, max_tokens=60),
    SamplingParams(presence_penalty=1.5, frequency_penalty=0.7, seed=6, max_tokens=60),
    SamplingParams(temperature=0, stop=("the",), max_tokens=60),
    SamplingParams(temperature=0, max_tokens=1),
]


def same_events(plain, speculative) -> None:
    """Token for token the same; the model's figures equal but for float rounding (the
    verifying pass sums in another order than single steps)."""
    assert [e.token_id for e in speculative] == [e.token_id for e in plain]
    for a, b in zip(plain, speculative, strict=True):
        assert (a.text, a.index, a.position, a.dropped, a.finish_reason) == (
            b.text,
            b.index,
            b.position,
            b.dropped,
            b.finish_reason,
        )
        assert a.prob == pytest.approx(b.prob, abs=1e-4)
        assert a.rank == b.rank or a.prob < 1e-4  # far down the tail, rounding reorders ties
        assert a.sampled_prob == pytest.approx(b.sampled_prob, abs=1e-4)
        assert a.entropy == pytest.approx(b.entropy, abs=1e-4)
        assert [t.token_id for t in a.top] == [t.token_id for t in b.top]


def run(model, tokenizer, prompt, params, drafter=None, cache=None):
    """Events and pass totals; drafting 4 tokens a pass, always: the figures asserted on must
    not depend on the machine's timings, as the adaptive length's choices do."""
    stats: list[PassStats] = []
    fixed = DraftLength(4, adaptive=False)
    events = generate(model, tokenizer, prompt, params, cache=cache, drafter=drafter,
                      on_pass=stats.append, draft_length=fixed)  # fmt: skip
    return list(events), stats


@pytest.mark.parametrize("params", SETTINGS, ids=range(len(SETTINGS)))
def test_prompt_lookup_gives_plain_decodings_tokens(tiny_gpt2, gpt2_tokenizer, params) -> None:
    prompt = "one two three one two three one two"
    plain, _ = run(tiny_gpt2, gpt2_tokenizer, prompt, params)
    fast, stats = run(tiny_gpt2, gpt2_tokenizer, prompt, params, PromptLookup())
    same_events(plain, fast)
    if params.max_tokens > 1:
        # Every token but the prefill's came from a verifying pass; a stop string may cut
        # tokens a pass had already produced.
        assert stats, "no verifying pass was reported"
        if fast[-1].finish_reason == "stop":
            assert stats[-1].tokens + 1 >= len(fast)
        else:
            assert stats[-1].tokens + 1 == len(fast)


def test_drafts_are_confirmed_and_refused_across_a_sliding_window(tiny_gpt2, gpt2_tokenizer):
    # 150 tokens in a 64-token context: the window slides twice mid-speculation
    params = SamplingParams(temperature=0, max_tokens=150)
    plain, _ = run(tiny_gpt2, gpt2_tokenizer, "a b a b a b", params)
    weak = PromptLookup(min_ngram=1)  # 1-token matches: drafts that fail as well as hold
    fast, stats = run(tiny_gpt2, gpt2_tokenizer, "a b a b a b", params, weak)
    same_events(plain, fast)
    assert any(e.dropped for e in fast)
    assert 0 < stats[-1].accepted < stats[-1].drafted  # both outcomes happened
    assert stats[-1].tokens_per_pass > 1.5


@pytest.mark.parametrize("drafter", ["lookup", "model"])
def test_kv_cache_after_a_rejection_equals_plain_decodings(
    tiny_gpt2, other_tiny_gpt2, gpt2_tokenizer, drafter
) -> None:
    params = SamplingParams(temperature=0 if drafter == "lookup" else 1.0, seed=8, max_tokens=40)
    prompt = "a b a b a b"
    plain_cache, fast_cache = tiny_gpt2.new_cache(), tiny_gpt2.new_cache()
    run(tiny_gpt2, gpt2_tokenizer, prompt, params, cache=plain_cache)
    draft = PromptLookup(min_ngram=1) if drafter == "lookup" else DraftModel(other_tiny_gpt2)
    _, stats = run(tiny_gpt2, gpt2_tokenizer, prompt, params, draft, fast_cache)
    assert stats[-1].accepted < stats[-1].drafted  # some drafts were refused
    assert fast_cache.tokens() == plain_cache.tokens()
    n = plain_cache.length
    np.testing.assert_allclose(fast_cache.k[..., :n, :], plain_cache.k[..., :n, :], atol=1e-5)
    np.testing.assert_allclose(fast_cache.v[..., :n, :], plain_cache.v[..., :n, :], atol=1e-5)


def test_closing_mid_pass_leaves_the_cache_valid_up_to_the_last_token(tiny_gpt2, gpt2_tokenizer):
    params = SamplingParams(temperature=0, max_tokens=50)
    cache = tiny_gpt2.new_cache()
    events = generate(tiny_gpt2, gpt2_tokenizer, "a b a b a b", params, cache=cache,
                      drafter=PromptLookup())  # fmt: skip
    taken = [next(events) for _ in range(12)]
    events.close()
    prompt_ids = gpt2_tokenizer.encode("a b a b a b")
    held = cache.tokens()
    assert held[: len(prompt_ids)] == prompt_ids
    assert held[len(prompt_ids) :] == [e.token_id for e in taken][: len(held) - len(prompt_ids)]
    # continuing reuses it: the same text as one uninterrupted run
    whole, _ = run(tiny_gpt2, gpt2_tokenizer, "a b a b a b", params)
    assert [e.token_id for e in whole[:12]] == [e.token_id for e in taken]


@pytest.fixture(scope="module")
def other_tiny_gpt2(tiny_gpt2) -> GPT2:
    hparams = tiny_gpt2.hparams
    return GPT2(random_gpt2_params(hparams, seed=8, scale=0.3), hparams)


@pytest.mark.parametrize("params", SETTINGS[:5], ids=range(5))
def test_a_draft_model_gives_plain_decodings_tokens(
    tiny_gpt2, other_tiny_gpt2, gpt2_tokenizer, params
) -> None:
    plain, _ = run(tiny_gpt2, gpt2_tokenizer, "Hello there", params)
    for draft in (tiny_gpt2, other_tiny_gpt2):  # itself (every draft holds), and another
        fast, stats = run(tiny_gpt2, gpt2_tokenizer, "Hello there", params, DraftModel(draft))
        same_events(plain, fast)
        if draft is tiny_gpt2:
            assert stats[-1].accepted == stats[-1].drafted > 0


# --- bad input --------------------------------------------------------------------------------


def test_a_draft_model_with_another_tokenizer_is_refused_naming_both(
    tiny_gpt2, gpt2_tokenizer
) -> None:
    other = Tokenizer(tokens=["a", "b", "c"], merges=[], special_tokens={}, eos_ids=(), bos_id=None)
    with pytest.raises(ValueError, match="the draft model tiny-b cannot draft for tiny-a") as err:
        check_draft_model("tiny-a", tiny_gpt2, gpt2_tokenizer, "tiny-b", tiny_gpt2, other)
    assert "tokenizers differ" in str(err.value)
    check_draft_model("tiny-a", tiny_gpt2, gpt2_tokenizer, "tiny-a", tiny_gpt2, gpt2_tokenizer)


def test_a_model_without_a_local_cache_says_speculation_is_not_available(tiny_gpt2) -> None:
    class RemoteModel:  # the seam a remote backend fills: no kv cache to verify drafts in
        name = "gpt-4o at api.example.com"
        verifies_drafts = False

    reason = unavailable_reason(RemoteModel())
    assert reason and "not available for gpt-4o at api.example.com" in reason
    assert unavailable_reason(tiny_gpt2) is None


# --- the bundled SmolLM2 ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2():
    from gpt_tui.engine import Llama
    from gpt_tui.models import bundled
    from gpt_tui.models.gguf_file import read_gguf

    gguf = read_gguf(bundled.smollm2_gguf_path())  # ~6 s: the gguf reader parses 98k strings
    return Llama(gguf.params, gguf.hparams), gguf.tokenizer


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(temperature=0, max_tokens=48),
        SamplingParams(temperature=0.7, top_p=0.95, seed=2, max_tokens=48),
    ],
    ids=["greedy", "seeded"],
)
def test_smollm2_copying_a_paragraph_gives_the_same_text(smollm2, params) -> None:
    from gpt_tui.tokenizer.chat import render_chat

    model, tokenizer = smollm2
    paragraph = (
        "The river wound through the valley for three hundred miles, past farms and mills and "
        "the old stone bridge at Carver's Ford, where travellers once paid a penny to cross."
    )
    message = f"Repeat this sentence exactly:\n\n{paragraph}"
    prompt = render_chat(tokenizer, [{"role": "user", "content": message}])
    plain = list(generate(model, tokenizer, prompt, params, allowed_special="all"))
    stats: list[PassStats] = []
    fast = list(generate(model, tokenizer, prompt, params, allowed_special="all",
                         drafter=PromptLookup(), on_pass=stats.append,
                         draft_length=DraftLength(adaptive=False)))  # fmt: skip
    same_events(plain, fast)
    assert stats[-1].tokens_per_pass > 2  # the copy is found and confirmed several at a time
