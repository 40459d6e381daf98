"""The token-event stream: what each event says, and every way a generation ends."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from gpt_tui.engine import GPT2, KVCache, SamplingParams, TokenEvent, generate

EOT = 50256
GREEDY = SamplingParams(temperature=0, max_tokens=12)


class ScriptedModel:
    """The real tiny GPT-2, with a large bonus on the next token of a script at each step.

    Lets a test drive generation through chosen tokens (a split emoji, end-of-text) while every
    number still comes from a real forward pass. Also counts the positions it computes.
    """

    def __init__(self, model: GPT2, script: Sequence[int] = ()) -> None:
        self.model, self.script = model, list(script)
        self.n_vocab, self.n_ctx = model.n_vocab, model.n_ctx
        self.positions_computed = 0
        self.step = 0

    def new_cache(self, n_batch: int = 1, n_ctx: int | None = None) -> KVCache:
        return self.model.new_cache(n_batch, n_ctx)

    def forward(self, ids, cache=None, *, last_only=False):
        self.positions_computed += np.size(ids)
        logits = self.model.forward(ids, cache, last_only=last_only).copy()
        if self.step < len(self.script):
            logits[..., -1, self.script[self.step]] += 1e4  # [n_seq, V] or [n_batch, n_seq, V]
        self.step += 1
        return logits


def run(model, tokenizer, prompt, params=GREEDY, **kwargs) -> list[TokenEvent]:
    return list(generate(model, tokenizer, prompt, params, **kwargs))


def test_events_describe_the_models_distribution(tiny_gpt2, gpt2_tokenizer) -> None:
    events = run(tiny_gpt2, gpt2_tokenizer, "Hello world", SamplingParams(seed=3, max_tokens=8))
    assert [e.index for e in events] == list(range(8))
    ids = gpt2_tokenizer.encode("Hello world")
    for e in events:
        assert 0 < e.prob <= 1 and math.isclose(e.logprob, math.log(e.prob), rel_tol=1e-6)
        assert e.rank >= 1 and 0 <= e.entropy <= math.log(tiny_gpt2.n_vocab) + 1e-6
        assert len(e.top) == 10
        assert [a.prob for a in e.top] == sorted((a.prob for a in e.top), reverse=True)
        if e.rank <= 10:
            assert e.top[e.rank - 1].token_id == e.token_id
        assert e.position == len(ids) + e.index
    # the event's numbers are those of a full forward pass over the same context
    context = ids + [e.token_id for e in events]
    logits = tiny_gpt2.forward(context).astype(np.float64)
    for e in events:
        row = logits[len(ids) + e.index - 1]
        probs = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        assert math.isclose(e.prob, probs[e.token_id], rel_tol=1e-4)
        assert e.rank == 1 + int((row > row[e.token_id]).sum())
    assert events[-1].finish_reason == "length"
    assert all(e.finish_reason is None for e in events[:-1])


def test_greedy_follows_the_argmax_of_a_full_forward(tiny_gpt2, gpt2_tokenizer) -> None:
    events = run(tiny_gpt2, gpt2_tokenizer, "The cat")
    context = gpt2_tokenizer.encode("The cat")
    for e in events:
        assert e.token_id == int(np.argmax(tiny_gpt2.forward(context)[-1]))
        assert e.rank == 1 and e.sampled_prob == 1.0
        context.append(e.token_id)


def test_n_top_is_settable(tiny_gpt2, gpt2_tokenizer) -> None:
    events = run(tiny_gpt2, gpt2_tokenizer, "Hi", n_top=25)
    assert all(len(e.top) == 25 for e in events)


def test_same_seed_same_tokens(tiny_gpt2, gpt2_tokenizer) -> None:
    params = SamplingParams(temperature=1.0, seed=11, max_tokens=20)
    first = [e.token_id for e in run(tiny_gpt2, gpt2_tokenizer, "Once", params)]
    again = [e.token_id for e in run(tiny_gpt2, gpt2_tokenizer, "Once", params)]
    other = [e.token_id for e in run(tiny_gpt2, gpt2_tokenizer, "Once", params.replace(seed=12))]
    assert first == again != other


def test_end_of_text_ends_the_generation(tiny_gpt2, gpt2_tokenizer) -> None:
    model = ScriptedModel(tiny_gpt2, [262, 3797, EOT])  # " the", " cat", <|endoftext|>
    events = run(model, gpt2_tokenizer, "Hi", GREEDY.replace(max_tokens=50))
    assert [e.token_id for e in events] == [262, 3797, EOT]
    assert events[-1].finish_reason == "eos" and events[-1].text == ""
    assert "".join(e.text for e in events) == " the cat"


def test_multibyte_characters_split_across_tokens_never_show_broken(
    tiny_gpt2, gpt2_tokenizer
) -> None:
    text = " 日本語 👩‍👩‍👧 🇫🇷"
    script = gpt2_tokenizer.encode(text)
    assert any("\ufffd" in gpt2_tokenizer.token_text(t) for t in script)  # the test has teeth
    model = ScriptedModel(tiny_gpt2, script)
    events = run(model, gpt2_tokenizer, "Say:", GREEDY.replace(max_tokens=len(script)))
    assert [e.token_id for e in events] == script
    assert all("\ufffd" not in e.text for e in events)
    assert "".join(e.text for e in events) == text


def test_stop_string_spanning_tokens_ends_and_is_not_emitted(tiny_gpt2, gpt2_tokenizer) -> None:
    script = gpt2_tokenizer.encode(" alpha beta gamma delta")
    plain = run(ScriptedModel(tiny_gpt2, script), gpt2_tokenizer, "x", GREEDY)
    assert "".join(e.text for e in plain).startswith(" alpha beta gamma delta")
    params = GREEDY.replace(stop=("ta gam", "never"))  # spans " beta" and " gamma"
    events = run(ScriptedModel(tiny_gpt2, script), gpt2_tokenizer, "x", params)
    assert "".join(e.text for e in events) == " alpha be"
    assert events[-1].finish_reason == "stop"
    assert [e.token_id for e in events] == script[:2]  # " alpha", " beta" (cut to " be")


def test_stop_string_at_a_token_boundary(tiny_gpt2, gpt2_tokenizer) -> None:
    script = gpt2_tokenizer.encode(" one two three")
    params = GREEDY.replace(stop=(" two",))
    events = run(ScriptedModel(tiny_gpt2, script), gpt2_tokenizer, "x", params)
    assert "".join(e.text for e in events) == " one"
    assert events[-1].finish_reason == "stop" and events[-1].text == ""


def test_text_that_only_looks_like_a_stop_string_is_released(tiny_gpt2, gpt2_tokenizer) -> None:
    script = gpt2_tokenizer.encode(" ab ac ad")
    params = GREEDY.replace(stop=(" ax",), max_tokens=len(script))
    events = run(ScriptedModel(tiny_gpt2, script), gpt2_tokenizer, "x", params)
    assert "".join(e.text for e in events) == " ab ac ad"
    assert len(events) == len(script) and events[-1].finish_reason == "length"


def test_empty_prompt_starts_from_end_of_text(tiny_gpt2, gpt2_tokenizer) -> None:
    cache = tiny_gpt2.new_cache()
    events = run(tiny_gpt2, gpt2_tokenizer, "", GREEDY.replace(max_tokens=3), cache=cache)
    assert len(events) == 3 and cache.tokens()[0] == EOT


def test_window_slides_instead_of_failing(tiny_gpt2, gpt2_tokenizer) -> None:
    cache = tiny_gpt2.new_cache()
    prompt = gpt2_tokenizer.encode(" a b c d e")
    events = run(tiny_gpt2, gpt2_tokenizer, prompt, GREEDY.replace(max_tokens=120), cache=cache)
    assert len(events) == 120
    slid = [e for e in events if e.dropped]
    assert slid, "a 64-token context must slide during 120 tokens"
    assert [e.position for e in events] == [len(prompt) + i for i in range(120)]
    # after sliding, the greedy choice is that of a full forward over the kept window
    first = slid[0]
    kept = cache.n_ctx - cache.n_ctx // 4
    context = (prompt + [e.token_id for e in events])[: len(prompt) + first.index]
    logits = tiny_gpt2.forward(context[-kept:])
    assert first.token_id == int(np.argmax(logits[-1]))


def test_prompt_longer_than_the_context_keeps_its_end(tiny_gpt2, gpt2_tokenizer) -> None:
    prompt = list(range(1000, 1100))
    cache = tiny_gpt2.new_cache()
    events = run(tiny_gpt2, gpt2_tokenizer, prompt, GREEDY.replace(max_tokens=2), cache=cache)
    assert events[0].dropped == 100 - 48 and events[1].dropped == 0
    assert events[0].position == 100
    assert cache.tokens()[:48] == prompt[-48:]


def test_closing_the_iterator_stops_the_work(tiny_gpt2, gpt2_tokenizer) -> None:
    model = ScriptedModel(tiny_gpt2)
    stream = generate(model, gpt2_tokenizer, "Hello", GREEDY.replace(max_tokens=50))
    next(stream)
    next(stream)
    computed = model.positions_computed
    stream.close()
    with pytest.raises(StopIteration):
        next(stream)
    assert model.positions_computed == computed


def test_a_reused_cache_computes_only_the_new_suffix(tiny_gpt2, gpt2_tokenizer) -> None:
    model = ScriptedModel(tiny_gpt2)
    cache = model.new_cache()
    prompt = gpt2_tokenizer.encode("The quick brown fox jumps over")
    first = run(model, gpt2_tokenizer, prompt, GREEDY.replace(max_tokens=5), cache=cache)
    model.positions_computed = 0
    again = run(model, gpt2_tokenizer, prompt, GREEDY.replace(max_tokens=5), cache=cache)
    assert [e.token_id for e in again] == [e.token_id for e in first]
    assert model.positions_computed == 1 + 4  # the prompt's last token, then 4 decode steps
    # continue: prompt + output, all but the last output token already cached
    model.positions_computed = 0
    context = prompt + [e.token_id for e in again]
    run(model, gpt2_tokenizer, context, GREEDY.replace(max_tokens=1), cache=cache)
    assert model.positions_computed == 1


def test_params_are_read_before_every_token(tiny_gpt2, gpt2_tokenizer) -> None:
    settings = {"params": SamplingParams(temperature=0, max_tokens=100)}
    stream = generate(tiny_gpt2, gpt2_tokenizer, "Hi", lambda: settings["params"])
    events = [next(stream), next(stream)]
    settings["params"] = settings["params"].replace(max_tokens=4)
    events += list(stream)
    assert len(events) == 4 and events[-1].finish_reason == "length"
