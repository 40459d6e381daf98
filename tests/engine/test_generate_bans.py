"""Banned strings in the generate loop (rewind and draw again), and speculative decoding under
every sampling stage."""

from __future__ import annotations

import importlib

import pytest

from gpt_tui.engine import SamplingParams, generate
from gpt_tui.engine.generate import generate_batch
from gpt_tui.engine.speculative import DraftLength, DraftModel, PassStats, PromptLookup

# the module, not the function the package exports under its name
generate_module = importlib.import_module("gpt_tui.engine.generate")

PROMPT = "one two three one two three one two"


def run(model, tokenizer, params, drafter=None, prompt=PROMPT):
    stats: list[PassStats] = []
    events = generate(model, tokenizer, prompt, params, drafter=drafter, on_pass=stats.append,
                      draft_length=DraftLength(4, adaptive=False))  # fmt: skip
    return list(events), stats


def text(events) -> str:
    return "".join(e.text for e in events)


@pytest.mark.parametrize("seed", [None, 5])
def test_a_banned_string_never_appears_and_each_rewind_is_reported(
    tiny_gpt2, gpt2_tokenizer, seed
) -> None:
    params = SamplingParams(temperature=0 if seed is None else 0.9, seed=seed, max_tokens=30)
    free, _ = run(tiny_gpt2, gpt2_tokenizer, params)
    # ban a piece of what it wrote: two tokens' text from the middle
    banned = free[4].text + free[5].text
    assert banned.strip() and banned in text(free)
    events, _ = run(tiny_gpt2, gpt2_tokenizer, params.replace(banned_strings=(banned,)))
    assert banned not in text(events)
    assert [e.index for e in events] == list(range(len(events)))
    rewound = [e for e in events if e.rewinds]
    assert rewound and all(banned in e.rewound for e in rewound)
    first = rewound[0]
    # up to the token where the banned string began, the text is the free run's
    assert [e.token_id for e in events[: first.index]] == [e.token_id for e in free[: first.index]]
    assert first.token_id != free[first.index].token_id
    if seed is None:  # greedy draws the likeliest token it has not excluded there
        assert first.rank == 1 + first.rewinds
    assert events[-1].finish_reason == "length" and len(events) == 30


def test_a_ban_is_held_back_not_shown_then_taken_back(tiny_gpt2, gpt2_tokenizer) -> None:
    params = SamplingParams(temperature=0, max_tokens=20)
    free, _ = run(tiny_gpt2, gpt2_tokenizer, params)
    banned = free[3].text + free[4].text + free[5].text
    seen: list[str] = []
    for event in generate(tiny_gpt2, gpt2_tokenizer, PROMPT, params.replace(banned_strings=banned)):
        seen.append(event.text)
        assert banned not in "".join(seen)  # never shown, not even for a moment


def test_banned_strings_and_stop_strings_together(tiny_gpt2, gpt2_tokenizer) -> None:
    params = SamplingParams(temperature=0, max_tokens=40)
    free, _ = run(tiny_gpt2, gpt2_tokenizer, params)
    banned = free[2].text + free[3].text
    once, _ = run(tiny_gpt2, gpt2_tokenizer, params.replace(banned_strings=banned))
    stop = once[8].text + once[9].text
    events, _ = run(tiny_gpt2, gpt2_tokenizer, params.replace(banned_strings=banned, stop=stop))
    assert events[-1].finish_reason == "stop" and banned not in text(events)
    assert stop not in text(events)


def test_under_banned_strings_speculation_steps_plainly_with_the_same_text(
    tiny_gpt2, gpt2_tokenizer
) -> None:
    params = SamplingParams(temperature=0, max_tokens=30)
    free, _ = run(tiny_gpt2, gpt2_tokenizer, params)
    banned = params.replace(banned_strings=(free[6].text + free[7].text,))
    plain, _ = run(tiny_gpt2, gpt2_tokenizer, banned)
    fast, stats = run(tiny_gpt2, gpt2_tokenizer, banned, PromptLookup(min_ngram=1))
    assert [e.token_id for e in fast] == [e.token_id for e in plain]
    assert [e.rewinds for e in fast] == [e.rewinds for e in plain] and stats == []


def test_banned_strings_switched_on_mid_speculation_rewind_in_its_loop(
    tiny_gpt2, gpt2_tokenizer
) -> None:
    base = SamplingParams(temperature=0, max_tokens=30)
    free, _ = run(tiny_gpt2, gpt2_tokenizer, base)
    banned = base.replace(banned_strings=(free[12].text + free[13].text,))
    calls = {"n": 0}

    def current() -> SamplingParams:  # the ban arrives once the first tokens are out
        calls["n"] += 1
        return base if calls["n"] < 4 else banned

    plain, _ = run(tiny_gpt2, gpt2_tokenizer, banned)
    fast, _ = run(tiny_gpt2, gpt2_tokenizer, current, PromptLookup(min_ngram=1))
    assert banned.banned_strings[0] not in text(fast)
    assert [e.token_id for e in fast] == [e.token_id for e in plain]


def test_compare_refuses_banned_strings_saying_why(tiny_gpt2, gpt2_tokenizer) -> None:
    with pytest.raises(ValueError, match="banned strings need one stream at a time"):
        list(generate_batch(tiny_gpt2, gpt2_tokenizer, "Hi", [SamplingParams(banned_strings="x")]))


STAGES = [
    SamplingParams(seed=3, max_tokens=40, dry_multiplier=1.5, dry_allowed_length=1),
    SamplingParams(seed=3, max_tokens=40, mirostat_tau=3.0, mirostat_eta=0.3),
    SamplingParams(seed=3, max_tokens=40, xtc_probability=0.6, xtc_threshold=0.01),
    SamplingParams(seed=3, max_tokens=40, typical_p=0.7, top_n_sigma=2.0, dynatemp_range=0.5),
    SamplingParams(
        seed=9,
        max_tokens=40,
        temperature=1.2,
        top_k=200,
        top_p=0.95,
        min_p=0.01,
        repetition_penalty=1.2,
        presence_penalty=0.3,
        frequency_penalty=0.2,
        typical_p=0.95,
        top_n_sigma=3.0,
        xtc_probability=0.3,
        xtc_threshold=0.02,
        dry_multiplier=0.8,
        dynatemp_range=0.3,
        mirostat_tau=5.0,
        logit_bias={11: 2.0},
        banned_tokens=[13],
        sampler_order=(
            "dry",
            "penalties",
            "top_k",
            "typical_p",
            "mirostat",
            "temperature",
            "logit_bias",
            "banned_tokens",
            "xtc",
            "min_p",
            "top_p",
            "top_n_sigma",
        ),
    ),  # fmt: skip
]


@pytest.mark.parametrize("params", STAGES, ids=["dry", "mirostat", "xtc", "typical", "all"])
def test_speculation_is_exact_under_every_stage(tiny_gpt2, gpt2_tokenizer, params) -> None:
    plain, _ = run(tiny_gpt2, gpt2_tokenizer, params)
    for drafter in (PromptLookup(min_ngram=1), DraftModel(tiny_gpt2)):
        fast, stats = run(tiny_gpt2, gpt2_tokenizer, params, drafter)
        assert [e.token_id for e in fast] == [e.token_id for e in plain]
        assert [e.sampled_prob for e in fast] == pytest.approx(
            [e.sampled_prob for e in plain], abs=1e-5
        )  # a pass of several positions rounds a little differently
        if isinstance(drafter, DraftModel):  # the model drafting for itself: drafts hold
            assert stats[-1].accepted > 0  # so passes did verify several positions at once


def test_dry_stops_the_prompts_repeat_from_going_on(tiny_gpt2, gpt2_tokenizer) -> None:
    # " three" would extend "␣two ␣three ␣one ␣two", a repeat of 4 tokens: DRY takes
    # 3 * 1.75 ** (4 - 2) = 9.2 from its logit, more than the bias that makes it the greedy pick
    three = gpt2_tokenizer.encode(" three")[0]
    params = SamplingParams(temperature=0, max_tokens=3, logit_bias={three: 5.0})
    free, _ = run(tiny_gpt2, gpt2_tokenizer, params)
    dry, _ = run(tiny_gpt2, gpt2_tokenizer, params.replace(dry_multiplier=3.0))
    assert free[0].token_id == three and dry[0].token_id != three
    weak, _ = run(
        tiny_gpt2, gpt2_tokenizer, params.replace(dry_multiplier=3.0, dry_allowed_length=5)
    )
    assert weak[0].token_id == three  # a repeat of 4 is allowed when 5 are


def test_rewinds_at_one_position_are_capped_and_the_run_says_why(tiny_gpt2, gpt2_tokenizer):
    # every printable ASCII character banned: nearly every token begins a banned string
    bans = tuple(chr(c) for c in range(32, 127))
    params = SamplingParams(temperature=0, max_tokens=30, banned_strings=bans)
    events, _ = run(tiny_gpt2, gpt2_tokenizer, params)
    assert events[-1].finish_reason == "rewinds"
    assert not any(b in text(events) for b in bans)
    assert events[-1].rewinds == generate_module.MAX_REWINDS_AT_A_POSITION
    assert sum(e.rewinds for e in events) <= generate_module.MAX_REWINDS_PER_RUN


def test_rewinds_in_a_run_are_capped(tiny_gpt2, gpt2_tokenizer, monkeypatch) -> None:
    bans = tuple(chr(c) for c in range(32, 127))
    params = SamplingParams(temperature=0, max_tokens=30, banned_strings=bans)
    monkeypatch.setattr(generate_module, "MAX_REWINDS_PER_RUN", 5)
    events, _ = run(tiny_gpt2, gpt2_tokenizer, params)
    assert events[-1].finish_reason == "rewinds"
    assert 0 < sum(e.rewinds for e in events) <= 5
    assert events[-1].rewinds < generate_module.MAX_REWINDS_AT_A_POSITION


def test_a_banned_string_matches_in_any_case_as_koboldcpp_matches(tiny_gpt2, gpt2_tokenizer):
    params = SamplingParams(temperature=0, max_tokens=30)
    free, _ = run(tiny_gpt2, gpt2_tokenizer, params)
    piece = next(e.text for e in free[3:] if e.text.strip() and e.text.swapcase() != e.text)
    assert piece.swapcase() not in text(free)  # as written, the other case never occurs
    events, _ = run(tiny_gpt2, gpt2_tokenizer, params.replace(banned_strings=(piece.swapcase(),)))
    assert sum(e.rewinds for e in events) >= 1
    assert piece.lower() not in text(events).lower()
