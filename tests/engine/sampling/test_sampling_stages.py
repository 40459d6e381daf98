"""Each stage as its reference defines it, on fixed logits; every stage off leaves the logits as
they were. The llama.cpp references are transcribed from src/llama-sampling.cpp loop by loop
(over a candidate list sorted by logit, as it works), so the vectorised stages are checked
against the definition, not against themselves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpt_tui.engine.sampling import (
    DEFAULT_ORDER,
    STAGES,
    Sampler,
    SamplingParams,
    active_stages,
    history_for,
    run_chain,
)
from gpt_tui.engine.sampling.dry import (
    breaker_ids,
    dry_breakers,
    dry_penalties,
    repeat_lengths,
)
from gpt_tui.engine.sampling.stages import History

RNG = np.random.default_rng(7)
LOGITS = (RNG.standard_normal(3000) * 2.5).astype(np.float32)  # [n_vocab]
LOGITS[RNG.integers(0, 3000, 8)] += 6.0  # a few clear favourites, as a model's logits have
CONTEXT = RNG.integers(0, 3000, 50).tolist()
EMPTY = history_for([], LOGITS.size)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z[np.isfinite(z)].max())
    return e / e.sum()


def kept(z: np.ndarray) -> set[int]:
    return set(np.flatnonzero(np.isfinite(z)).tolist())


# --- off is off ---------------------------------------------------------------------------------


def test_every_stage_is_off_by_default_and_the_chain_then_returns_the_logits_bit_for_bit() -> None:
    params = SamplingParams()
    assert active_stages(params) == []
    assert [name for name in DEFAULT_ORDER if STAGES[name].on(params)] == []
    out = run_chain(LOGITS, params, history_for(CONTEXT, LOGITS.size))
    assert out.tobytes() == LOGITS.astype(np.float64).tobytes()


def test_companion_settings_alone_turn_nothing_on() -> None:
    # settings that only shape an active stage (XTC's threshold, DRY's base) change nothing
    params = SamplingParams(
        xtc_threshold=0.3, dry_base=3.0, dry_allowed_length=5, dynatemp_exponent=2.0,
        mirostat_eta=0.5, dry_sequence_breakers=("x",),
    )  # fmt: skip
    assert active_stages(params) == []
    a = Sampler(LOGITS.size, CONTEXT, 1).distribution(LOGITS, params)
    b = Sampler(LOGITS.size, CONTEXT, 1).distribution(LOGITS, SamplingParams())
    assert a.tobytes() == b.tobytes()


# --- the order ------------------------------------------------------------------------------------


def test_order_is_validated_and_can_be_given_as_text() -> None:
    with pytest.raises(ValueError, match="unknown sampler stage 'top_q' in sampler_order; known"):
        SamplingParams(sampler_order=("top_k", "top_q"))
    with pytest.raises(ValueError, match="names 'top_k' twice"):
        SamplingParams(sampler_order=("top_k", "top_k"))
    assert SamplingParams(sampler_order="top_k, temperature").sampler_order == (
        "top_k",
        "temperature",
    )


def test_temperature_last_moves_only_temperature() -> None:
    from gpt_tui.engine.sampling import temperature_last

    order = temperature_last()
    assert order[-1] == "temperature" and sorted(order) == sorted(DEFAULT_ORDER)
    # top-p on the model's own distribution, then the temperature: another kept set
    params = SamplingParams(temperature=1.8, top_p=0.5)
    first = run_chain(LOGITS, params, EMPTY)
    last = run_chain(LOGITS, params.replace(sampler_order=order), EMPTY)
    assert len(kept(last)) < len(kept(first))
    expected = run_chain(LOGITS, SamplingParams(top_p=0.5), EMPTY) / 1.8
    np.testing.assert_array_equal(last, expected)


def test_a_stage_left_out_of_the_order_does_not_run() -> None:
    params = SamplingParams(top_k=5, sampler_order=("temperature", "top_p"))
    assert active_stages(params) == []
    np.testing.assert_array_equal(run_chain(LOGITS, params, EMPTY), LOGITS.astype(np.float64))


# --- logit bias and banned tokens -------------------------------------------------------------


def test_logit_bias_adds_openai_style_and_banned_tokens_are_removed() -> None:
    params = SamplingParams(logit_bias={"3": 100, 5: -2.5}, banned_tokens=[7, 9])
    assert params.logit_bias == ((3, 100.0), (5, -2.5))
    out = run_chain(LOGITS, params, EMPTY)
    expected = LOGITS.astype(np.float64)
    expected[3] += 100.0
    expected[5] -= 2.5
    expected[[7, 9]] = -np.inf
    np.testing.assert_array_equal(out, expected)
    assert Sampler(LOGITS.size, [], 0).sample(LOGITS, params, 0)[0] == 3  # +100 dominates


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"logit_bias": {1: 101}}, r"must be in \[-100, 100\]"),
        ({"logit_bias": [(1, 2), (1, 3)]}, "gives token 1 twice"),
        ({"logit_bias": {-1: 2}}, "token ids"),
        ({"banned_tokens": ["a"]}, "token ids"),
        ({"banned_strings": [""]}, "non-empty"),
        ({"typical_p": 0.0}, r"typical_p must be in \(0, 1\]"),
        ({"xtc_probability": 1.5}, "xtc_probability must be in"),
        ({"dry_base": 0.5}, r"dry_base must be in \[1, 4\]"),
        ({"dry_allowed_length": 0}, "dry_allowed_length must be in"),
        ({"mirostat_eta": 0.0}, r"mirostat_eta must be in \(0, 1\]"),
    ],
)
def test_new_settings_are_validated(changes, message) -> None:
    with pytest.raises(ValueError, match=message):
        SamplingParams(**changes)


def test_tokens_outside_the_vocabulary_and_banning_everything_are_errors() -> None:
    with pytest.raises(ValueError, match="token 5000 is not in this model's vocabulary of 3000"):
        run_chain(LOGITS, SamplingParams(banned_tokens=[5000]), EMPTY)
    with pytest.raises(ValueError, match="every possible token is banned"):
        run_chain(LOGITS[:3], SamplingParams(banned_tokens=[0, 1, 2]), history_for([], 3))


# --- top-n-sigma, XTC, dynamic temperature, mirostat: llama.cpp's loops -------------------------


def llama_top_n_sigma(logits: np.ndarray, n: float) -> set[int]:
    """llama_sampler_top_n_sigma_apply, over the candidates."""
    values = [float(x) for x in logits if x != -math.inf]
    mx, mean = max(values), sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {i for i, x in enumerate(logits) if not x < mx - n * std}


@pytest.mark.parametrize("n", [0.5, 1.0, 2.0, 4.0])
def test_top_n_sigma_is_llama_cpps(n: float) -> None:
    out = run_chain(LOGITS, SamplingParams(top_n_sigma=n), EMPTY)
    assert kept(out) == llama_top_n_sigma(LOGITS.astype(np.float64), n)
    # it is the same at any temperature: n sigma scales with the logits
    hot = run_chain(LOGITS, SamplingParams(top_n_sigma=n, temperature=1.7), EMPTY)
    assert kept(hot) == kept(out)


def llama_xtc(logits: np.ndarray, threshold: float) -> set[int]:
    """llama_sample_xtc_apply once its coin said yes: sort, find the last token at or above
    the threshold, drop everything before it."""
    order = sorted(range(logits.size), key=lambda i: -logits[i])
    p = softmax(logits)
    pos_last = 0
    for rank, i in enumerate(order):
        if p[i] >= threshold:
            pos_last = rank
        else:
            break
    return set(order[pos_last:]) if pos_last > 0 else set(order)


@pytest.mark.parametrize("threshold", [0.01, 0.05, 0.1, 0.6])
def test_xtc_removes_all_top_choices_but_the_least_likely_as_llama_cpp(threshold: float) -> None:
    z = LOGITS.astype(np.float64)
    on = History(EMPTY.seen, EMPTY.counts, EMPTY.tokens, xtc_fires=True)
    out = run_chain(z, SamplingParams(xtc_probability=1.0, xtc_threshold=threshold), on)
    expected = llama_xtc(z, threshold) if threshold <= 0.5 else set(range(z.size))
    assert kept(out) == expected
    off = History(EMPTY.seen, EMPTY.counts, EMPTY.tokens, xtc_fires=False)
    params = SamplingParams(xtc_probability=0.5, xtc_threshold=threshold)
    assert kept(run_chain(z, params, off)) == set(range(z.size))


def test_xtcs_coin_comes_up_at_its_probability_and_depends_on_seed_and_position() -> None:
    from gpt_tui.engine.sampling.chain import xtc_fires

    params = SamplingParams(xtc_probability=0.3)
    coins = [xtc_fires(params, 5, p) for p in range(5000)]
    assert abs(np.mean(coins) - 0.3) < 0.03
    assert coins == [xtc_fires(params, 5, p) for p in range(5000)]
    assert coins != [xtc_fires(params, 6, p) for p in range(5000)]


def llama_dynatemp(logits: np.ndarray, temp: float, delta: float, exponent: float) -> np.ndarray:
    """llama_sampler_temp_ext_apply with delta > 0."""
    low, high = max(0.0, temp - delta), temp + delta
    p = softmax(logits)
    entropy = -sum(float(q) * math.log(q) for q in p if q > 0)
    t = low + (high - low) * (entropy / math.log(logits.size)) ** exponent
    return logits / t


@pytest.mark.parametrize(("temp", "delta", "exponent"), [(1.0, 0.5, 1.0), (0.7, 1.0, 2.0)])
def test_dynamic_temperature_is_llama_cpps_temp_ext(temp, delta, exponent) -> None:
    params = SamplingParams(temperature=temp, dynatemp_range=delta, dynatemp_exponent=exponent)
    z = LOGITS.astype(np.float64)
    np.testing.assert_allclose(
        run_chain(z, params, EMPTY), llama_dynatemp(z, temp, delta, exponent), rtol=1e-12
    )


def test_a_flat_distribution_gets_the_top_temperature_and_a_sure_one_the_bottom() -> None:
    params = SamplingParams(temperature=1.0, dynatemp_range=0.5)
    flat = np.zeros(100)
    np.testing.assert_allclose(run_chain(flat, params, history_for([], 100)), flat / 1.5)
    sure = np.full(100, -50.0)
    sure[0] = 50.0
    np.testing.assert_allclose(run_chain(sure, params, history_for([], 100)), sure / 0.5)


def test_mirostat_v2_keeps_tokens_within_mu_bits_and_updates_mu_as_llama_cpp() -> None:
    tau, eta = 3.0, 0.2
    params = SamplingParams(mirostat_tau=tau, mirostat_eta=eta, seed=4)
    sampler = Sampler(LOGITS.size, [], seed=4)
    mu = 2 * tau  # llama.cpp's start
    for position in range(30):
        z = np.roll(LOGITS, position * 17).astype(np.float64)
        # llama_sampler_mirostat_v2_apply: sorted candidates, truncated where -log2 p > mu
        order = np.argsort(-z, kind="stable")
        p = softmax(z)
        n = next((i for i, t in enumerate(order) if -math.log2(p[t]) > mu), len(order)) or 1
        assert set(np.flatnonzero(sampler.distribution(z, params, position))) == set(order[:n])
        token, prob = sampler.sample(z, params, position)
        renormalised = p[token] / p[order[:n]].sum()
        assert prob == pytest.approx(renormalised, rel=1e-9)
        mu -= eta * (-math.log2(renormalised) - tau)
        sampler.observe(token)
        assert sampler.mu == pytest.approx(mu, rel=1e-9)


def test_mirostat_holds_the_surprise_near_its_target() -> None:
    params = SamplingParams(mirostat_tau=4.0, mirostat_eta=0.1, seed=1)
    sampler = Sampler(LOGITS.size, [], seed=1)
    surprises = []
    for position in range(400):
        z = np.roll(LOGITS, position * 31)
        token, prob = sampler.sample(z, params, position)
        sampler.observe(token)
        surprises.append(-math.log2(prob))  # under the distribution it was drawn from
    assert abs(np.mean(surprises[100:]) - 4.0) < 0.5  # unbounded sampling averages far more
    plain = Sampler(LOGITS.size, [], seed=1)
    free = [
        -math.log2(softmax(np.roll(LOGITS, p * 31).astype(np.float64))[
            plain.sample(np.roll(LOGITS, p * 31), SamplingParams(), p)[0]])
        for p in range(400)
    ]  # fmt: skip
    assert np.mean(free) > np.mean(surprises[100:]) + 1.0


# --- DRY ------------------------------------------------------------------------------------------


def webui_dry(
    ids: list[int], breakers: set[int], multiplier: float, base: float, allowed: int
) -> dict[int, float]:
    """text-generation-webui's DRYLogitsProcessor.__call__ for one row (its 50-token cap on
    a match is far above the repeats here)."""
    last = ids[-1]
    if last in breakers:
        return {}
    match_lengths: dict[int, int] = {}
    for i in [i for i, v in enumerate(ids[:-1]) if v == last]:
        nxt = ids[i + 1]
        if nxt in breakers:
            continue
        length = 1
        while length < 50:
            j = i - length
            if j < 0:
                break
            previous = ids[-(length + 1)]
            if ids[j] != previous or previous in breakers:
                break
            length += 1
        match_lengths[nxt] = max(length, match_lengths.get(nxt, 0))
    return {t: multiplier * base ** (n - allowed) for t, n in match_lengths.items() if n >= allowed}


@pytest.mark.parametrize("trial", range(40))
def test_dry_penalises_as_text_generation_webui(trial: int) -> None:
    rng = np.random.default_rng(trial)
    vocab = 12  # a small alphabet: many repeats of every length
    ids = rng.integers(0, vocab, int(rng.integers(2, 120)))
    if trial % 3 == 0:  # a long verbatim repeat
        ids = np.concatenate([ids, ids[: int(rng.integers(1, ids.size + 1))]])
    breaker_set = {int(b) for b in rng.choice(vocab, int(rng.integers(0, 3)), replace=False)}
    breakers = np.zeros(vocab, dtype=bool)
    breakers[list(breaker_set)] = True
    allowed = int(rng.integers(1, 4))
    expected = webui_dry(ids.tolist(), breaker_set, 0.8, 1.75, allowed)
    tokens, amounts = dry_penalties(ids, breakers, 0.8, 1.75, allowed)
    assert dict(zip(tokens.tolist(), amounts.tolist(), strict=True)) == pytest.approx(expected)
    # through the chain: those logits lowered by exactly that
    z = np.zeros(vocab)
    history = History(np.zeros(vocab, bool), np.zeros(vocab, np.int64), ids, breakers)
    out = run_chain(z, SamplingParams(dry_multiplier=0.8, dry_allowed_length=allowed), history)
    want = np.zeros(vocab)
    for t, a in expected.items():
        want[t] -= a
    np.testing.assert_allclose(out, want)


@pytest.mark.parametrize("trial", range(10))
def test_dry_window_is_llama_cpps_dry_penalty_last_n(trial: int) -> None:
    # -1: the whole context; 0: off; n: only the last n tokens are searched for repeats (as
    # text-generation-webui's dry_range slices the ids)
    rng = np.random.default_rng(100 + trial)
    vocab = 12
    ids = rng.integers(0, vocab, 80)
    ids = np.concatenate([ids, ids[:30]])  # a long repeat reaching far back
    breakers = np.zeros(vocab, dtype=bool)
    whole = dry_penalties(ids, breakers, 0.8, 1.75, 2, -1)
    assert dict(zip(*(a.tolist() for a in whole), strict=True)) == pytest.approx(
        webui_dry(ids.tolist(), set(), 0.8, 1.75, 2)
    )
    assert dry_penalties(ids, breakers, 0.8, 1.75, 2, 0)[0].size == 0
    last_n = int(rng.integers(3, 60))
    tokens, amounts = dry_penalties(ids, breakers, 0.8, 1.75, 2, last_n)
    expected = webui_dry(ids[-last_n:].tolist(), set(), 0.8, 1.75, 2)
    assert dict(zip(tokens.tolist(), amounts.tolist(), strict=True)) == pytest.approx(expected)
    # off, the stage is not in the chain: the logits are untouched
    params = SamplingParams(dry_multiplier=0.8, dry_penalty_last_n=0)
    history = History(np.zeros(vocab, bool), np.zeros(vocab, np.int64), ids, breakers)
    z = rng.normal(size=vocab)
    assert np.array_equal(run_chain(z, params, history), z)


def test_dry_example_of_llama_cpps_comment() -> None:
    # "a b c c b c y a b c": the last three tokens repeat the first three, so "c" (which
    # followed them) extends a repeat of 3; "y" follows "b c" (2); "b" follows "c" (1)
    a, b, c, y = 0, 1, 2, 3
    lengths = repeat_lengths(np.array([a, b, c, c, b, c, y, a, b, c]), np.zeros(4, dtype=bool))
    assert lengths == {c: 3, y: 2, b: 1}


def test_dry_breakers_are_the_tokens_holding_a_breaker_string() -> None:
    pieces = [b"hello", b"\n", b"a:", b" world", b'"quote', b"x"]
    assert breaker_ids(pieces, ("\n", ":", '"')).tolist() == [0, 1, 1, 0, 1, 0]


def test_breaker_mask_pads_ids_the_tokenizer_has_no_text_for() -> None:
    from gpt_tui.engine.sampling.dry import breaker_mask

    pieces = [b"a", b"b\n", b"c"]
    assert breaker_mask(pieces.__getitem__, 3, 5, ("\n",)).tolist() == [0, 1, 0, 0, 0]


def test_a_breaker_split_over_tokens_is_recognised_as_llama_cpp_does(gpt2_tokenizer) -> None:
    # "###" is one GPT-2 token, and also "#" + "##" or "##" + "#": llama.cpp's
    # get_overlapping_token_sequences makes "#" and "##" heads of the rest, encoded
    hash1, hash2, hash3 = (gpt2_tokenizer.encode(t)[0] for t in ("#", "##", "###"))
    assert len({hash1, hash2, hash3}) == 3
    breakers = dry_breakers(gpt2_tokenizer, gpt2_tokenizer.n_vocab, ("###",))
    assert breakers.mask[hash3] and not breakers.mask[hash1] and not breakers.mask[hash2]
    assert (hash2,) in breakers.sequences[hash1] and (hash1,) in breakers.sequences[hash2]
    # c "#" "##" a c "#" "##" a: without breakers c extends a repeat of 4; "#" "##" is "###",
    # a breaker, so the repeat may span only the "a" after it
    c, a = (gpt2_tokenizer.encode(t)[0] for t in (" c", " a"))
    tokens = np.array([c, hash1, hash2, a, c, hash1, hash2, a])
    none = np.zeros(gpt2_tokenizer.n_vocab, dtype=bool)
    assert repeat_lengths(tokens, none) == {c: 4}
    assert repeat_lengths(tokens, breakers.mask, breakers.sequences) == {c: 1}
    ids, _ = dry_penalties(tokens, breakers, 1.0, 1.75, 2)
    assert ids.size == 0 and dry_penalties(tokens, none, 1.0, 1.75, 2)[0].tolist() == [c]
    # a head not followed by its tail breaks nothing
    other = np.array([c, hash1, a, a, c, hash1, a, a])
    assert repeat_lengths(other, breakers.mask, breakers.sequences) == repeat_lengths(other, none)


def test_the_view_applies_dry_breakers_it_is_given() -> None:
    from gpt_tui.engine.sampling import sampler_view

    # "x y x" then "y" would repeat "x y"; with "x" a breaker nothing is penalised
    x, y = 1, 2
    params = SamplingParams(dry_multiplier=1.0, dry_allowed_length=1)
    z = np.zeros(4)
    plain = sampler_view(z, params, [x, y, x], k=2)
    assert plain.final.logits[y] == -1.0
    breakers = np.array([False, True, False, False])
    broken = sampler_view(z, params, [x, y, x], k=2, dry_breakers=breakers)
    assert broken.final.logits[y] == 0.0
