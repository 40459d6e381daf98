"""The remote backend against a real OpenAI-compatible server: llama-cpp-python's, serving the
bundled SmolLM2 GGUF on 127.0.0.1 (started once per session, tests/backends/llama_cpp_server.py).

What is checked is what the app will show: tokens with alternatives whose probabilities make a
distribution and whose ranks agree with them, greedy runs that repeat, seeds that repeat, chat
through the server's own template, prompt scores that agree with the server's own generation
logprobs, and the server's errors as one line.
"""

from __future__ import annotations

import math

import pytest

from gpt_tui.backends.base import Request
from gpt_tui.backends.openai import OpenAIBackend, connect, describe, models_at
from gpt_tui.engine import SamplingParams
from gpt_tui.errors import BackendError

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def backend(llama_server) -> OpenAIBackend:
    backend = connect(llama_server.url)
    yield backend
    backend.close()


def run(backend: OpenAIBackend, text: str = PROMPT, n_top: int = 10, **settings):
    params = SamplingParams(**{"temperature": 0.0, "max_tokens": 8, **settings})
    request = Request(backend.tokenizer.encode(text), params=lambda: params, n_top=n_top)
    return request, list(backend.generate(request))


def test_the_probe_finds_what_llama_cpp_python_can_do(backend: OpenAIBackend) -> None:
    caps = backend.capabilities
    assert backend.kind.name == "llama-cpp-python"
    assert caps.completion and caps.chat
    assert caps.alternatives >= 10, backend.report.notes
    assert {"top_k", "min_p", "repetition_penalty", "seed"} <= caps.sampling
    assert not caps.look_inside and not caps.speculative
    lines = describe(backend)
    assert lines[0].startswith("llama-cpp-python at http://127.0.0.1:")
    assert any("look inside needs the local engine" in line for line in lines)
    assert backend.report.seconds < 60
    assert backend.n_ctx == 1024  # the --n_ctx it was started with, read from its refusal


def test_generation_reports_a_distribution_per_token(backend: OpenAIBackend) -> None:
    request, events = run(backend)
    assert 1 <= len(events) <= 8 and events[-1].finish_reason in ("length", "eos")
    assert "".join(e.text for e in events).strip()
    for i, e in enumerate(events):
        assert e.index == i and e.position == len(request.context) + i
        assert 0.0 < e.prob <= 1.0 and e.logprob == pytest.approx(math.log(e.prob))
        assert len(e.top) == 10
        probs = [a.prob for a in e.top]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-3
        # greedy: the token is the likeliest, rank 1, and the first alternative
        assert e.rank == 1 and e.top[0].token_id == e.token_id
        assert e.top[0].prob == pytest.approx(e.prob, rel=1e-4)
        assert e.sampled_prob == 1.0
        assert e.entropy >= -sum(p * math.log(p) for p in probs) - 1e-9


def test_the_streamed_text_is_the_servers_text(backend: OpenAIBackend) -> None:
    _, events = run(backend)
    answer = backend.client.post_json(
        "completions",
        {"model": backend.model, "prompt": PROMPT, "max_tokens": 8, "temperature": 0.0,
         "top_k": 0, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0},
    )  # fmt: skip
    assert "".join(e.text for e in events) == answer["choices"][0]["text"]


def test_greedy_repeats_and_a_seed_repeats(backend: OpenAIBackend) -> None:
    texts = ["".join(e.text for e in run(backend)[1]) for _ in range(2)]
    assert texts[0] == texts[1]
    seeded = ["".join(e.text for e in run(backend, temperature=1.0, seed=7)[1]) for _ in range(2)]
    assert seeded[0] == seeded[1]
    for e in run(backend, temperature=1.0, seed=7)[1]:
        assert math.isnan(e.sampled_prob)  # the server does not say how likely its draw was
        assert 1 <= e.rank <= 11  # among the 10 listed, or 11: beyond them


def test_chat_uses_the_servers_template(backend: OpenAIBackend) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    params = SamplingParams(temperature=0.0, max_tokens=12)
    request = Request([], params=lambda: params, n_top=5, messages=messages)
    events = list(backend.generate(request))
    text = "".join(e.text for e in events)
    answer = backend.client.post_json(
        "chat/completions",
        {"model": backend.model, "messages": messages, "max_tokens": 12, "temperature": 0.0,
         "top_k": 0, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0},
    )  # fmt: skip
    assert text and text == answer["choices"][0]["message"]["content"]
    assert "<|im_start|>" not in text and events[-1].finish_reason in ("length", "eos")
    if backend.report.chat_alternatives:
        assert all(len(e.top) == 5 and e.rank >= 1 for e in events)


def test_prompt_scoring_is_refused_because_its_echo_disagrees(backend: OpenAIBackend) -> None:
    """llama-cpp-python 0.3.36 scores an echoed prompt's tokens off by one position (each
    token's value is read from the distribution that predicts the next one). The probe sees
    its echo disagree with its own generation logprobs, and the backend refuses to show them."""
    caps = backend.capabilities
    assert not caps.prompt_scoring
    why = caps.why_not("prompt_scoring")
    assert "disagree with its own generation logprobs" in why
    assert backend.report.echo_error > 1.0
    with pytest.raises(BackendError, match="disagree"):
        backend.score(backend.tokenizer.encode(PROMPT))
    # the disagreement, seen directly: " Paris" after the prompt, generated vs echoed
    _, events = run(backend, max_tokens=1)
    assert events[0].text == " Paris"
    echo = backend.client.post_json(
        "completions",
        {"model": backend.model, "prompt": PROMPT + " Paris", "echo": True, "logprobs": 1,
         "max_tokens": 1, "temperature": 0.0},
    )  # fmt: skip
    logprobs = echo["choices"][0]["logprobs"]
    index = logprobs["tokens"].index(" Paris")
    assert abs(logprobs["token_logprobs"][index] - events[0].logprob) > 1.0


def test_text_is_split_into_the_servers_tokens(backend: OpenAIBackend) -> None:
    text = "Héllo 😀 wörld. The capital of France"
    ids = backend.tokenizer.encode(text)
    assert backend.tokenizer.decode(ids) == text
    pieces = [backend.tokenizer.token_text(i) for i in ids]
    assert "😀" in pieces and " capital" in pieces and len(ids) > 8


def test_text_the_server_drops_from_its_stream_is_told(backend: OpenAIBackend) -> None:
    """llama-cpp-python streams a character of several bytes as "" when logprobs are on: the
    text offsets it sends with each token show the gap, and the user is told."""
    notices: list[str] = []
    params = SamplingParams(temperature=0.0, max_tokens=8)
    context = backend.tokenizer.encode("Write a smiley emoji: 😀 and another one:")
    request = Request(context, params=lambda: params, n_top=3, on_notice=notices.append)
    events = list(backend.generate(request))
    assert events
    assert len(notices) == 1 and "streamed text lacks" in notices[0]


def test_branching_continues_from_the_chosen_alternative(backend: OpenAIBackend) -> None:
    request, events = run(backend, max_tokens=3)
    alternative = events[0].top[1]
    context = [*request.context, alternative.token_id]
    params = SamplingParams(temperature=0.0, max_tokens=3)
    branch = list(backend.generate(Request(context, params=lambda: params, n_top=3)))
    assert branch and branch[0].position == len(context)
    assert backend.tokenizer.decode(context) == PROMPT + alternative.text


def test_compare_columns(backend: OpenAIBackend) -> None:
    ids = backend.tokenizer.encode(PROMPT)
    reqs = [
        Request(ids, params=lambda: SamplingParams(temperature=0.0, max_tokens=4), n_top=3),
        Request(ids, params=lambda: SamplingParams(temperature=1.0, seed=3, max_tokens=4), n_top=3),
    ]
    pairs = list(backend.generate_batch(reqs))
    assert {i for i, _ in pairs} == {0, 1}
    assert all(e.finish_reason for i in (0, 1) for e in [[e for j, e in pairs if j == i][-1]])


def test_the_servers_errors_are_one_line(llama_server, backend: OpenAIBackend) -> None:
    assert [m.id for m in models_at(llama_server.url)]
    with pytest.raises(BackendError, match="has no model 'nope'"):
        connect(llama_server.url, model="nope")
    too_long = " ".join(["word"] * 3000)  # past its 1024-token context
    params = SamplingParams(temperature=0.0, max_tokens=4)
    request = Request(backend.tokenizer.encode("x"), params=lambda: params)
    request = Request([backend.tokenizer.intern(too_long.encode())], params=request.params)
    with pytest.raises(BackendError) as caught:
        list(backend.generate(request))
    assert "\n" not in str(caught.value) and "answered" in str(caught.value)


def test_each_mapped_setting_is_read_by_the_server(backend: OpenAIBackend) -> None:
    """The names the backend sends are the ones llama-cpp-python reads: each setting changes
    what it does (a misspelt name would be ignored without a word)."""

    def text(**settings) -> str:
        return "".join(e.text for e in run(backend, "Once upon a time", n_top=1, **settings)[1])

    greedy = text(max_tokens=12)
    # top_k 1 and min_p 0.99 leave only the likeliest token: sampling becomes greedy
    assert text(max_tokens=12, temperature=1.5, top_k=1, seed=1) == greedy
    assert text(max_tokens=12, temperature=1.5, min_p=0.99, seed=1) == greedy
    assert text(max_tokens=12, temperature=1.5, seed=1) != greedy
    # penalties change a greedy continuation of a repetitive text
    loop = "the cat the cat the cat the cat"
    plain = "".join(e.text for e in run(backend, loop, n_top=1, max_tokens=6)[1])
    for name, value in (("repetition_penalty", 2.0), ("frequency_penalty", 2.0),
                        ("presence_penalty", 2.0)):  # fmt: skip
        changed = "".join(
            e.text for e in run(backend, loop, n_top=1, max_tokens=6, **{name: value})[1]
        )
        assert changed != plain, name
    # top_p that keeps only the likeliest
    assert text(max_tokens=12, temperature=1.5, top_p=0.01, seed=1) == greedy


def test_logit_bias_bans_and_mirostat_are_read_by_the_server(backend: OpenAIBackend) -> None:
    """llama-cpp-python reads logit_bias by token text and mirostat v2: each changes what the
    server does (a misspelt field would be ignored without a word)."""

    def first(**settings) -> str:
        return run(backend, n_top=1, max_tokens=1, **settings)[1][0].text

    greedy = first()
    (top,) = backend.tokenizer.encode(greedy)
    (other,) = backend.tokenizer.encode(" London")
    assert greedy != " London"
    assert first(banned_tokens=[top]) != greedy
    assert first(logit_bias={other: 100.0}) == " London"
    assert first(logit_bias={top: -100.0}) != greedy
    # mirostat v2 with a tiny target keeps only the likeliest token: sampling becomes greedy
    long = "".join(e.text for e in run(backend, "Once upon a time", n_top=1, max_tokens=10)[1])
    hot = {"max_tokens": 10, "temperature": 1.5, "seed": 1, "n_top": 1}
    assert "".join(e.text for e in run(backend, "Once upon a time", **hot)[1]) != long
    cold = "".join(e.text for e in run(backend, "Once upon a time", mirostat_tau=0.01, **hot)[1])
    assert cold == long
