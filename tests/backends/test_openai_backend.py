"""The remote backend against a small real server on 127.0.0.1 that behaves, then misbehaves on
purpose (tests/backends/fake_openai_server.py): tokens and their figures, stop strings, chat,
compare streams, and every failure the reliability page lists, each as one clear line."""

from __future__ import annotations

import math
import time

import pytest
from fake_openai_server import LP_TOKEN, PIECES, FakeOpenAIServer

from gpt_tui.backends.base import Request
from gpt_tui.backends.openai import (
    ConnectionLost,
    Timeouts,
    connect,
    describe,
    is_server_url,
    models_at,
    status_line,
)
from gpt_tui.engine import SamplingParams
from gpt_tui.errors import BackendError

SECRET = "sk-test-not-a-real-key-1234"


def request(backend, text: str = "The capital of France is", **settings) -> Request:
    params = SamplingParams(**{"temperature": 0.0, "max_tokens": 4, **settings})
    return Request(context=backend.tokenizer.encode(text), params=lambda: params, n_top=5)


def test_connect_probes_and_describes(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    caps = backend.capabilities
    assert backend.kind.name == "generic" and backend.model == "fake-model"
    assert caps.completion and caps.chat and caps.alternatives == 3
    assert caps.prompt_scoring, backend.report.notes
    assert caps.why_not("look_inside").startswith("look inside needs the local engine")
    assert "top_k" not in caps.sampling and "takes no such setting" in caps.why_not("top_k")
    lines = describe(backend)
    assert lines[0].startswith("an OpenAI-compatible server at http://127.0.0.1:")
    assert status_line(backend) == (
        "an OpenAI-compatible server: fake-model · 3 alternatives · no look inside"
    )
    assert any(line.startswith("not here: look inside") for line in lines)
    backend.close()


def test_generate_streams_tokens_with_their_figures(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    events = list(backend.generate(request(backend)))
    assert [e.text for e in events] == PIECES[:4]
    assert [e.index for e in events] == [0, 1, 2, 3]
    first = events[0]
    assert first.prob == pytest.approx(0.6) and first.logprob == pytest.approx(LP_TOKEN)
    assert first.rank == 1 and first.sampled_prob == 1.0  # greedy
    assert [a.text for a in first.top] == [" Paris", " London", " Rome"]
    assert sum(a.prob for a in first.top) <= 1.0
    # a lower bound: the three listed tokens, plus the 0.1 left over as if it were one token
    assert first.entropy == pytest.approx(-sum(p * math.log(p) for p in (0.6, 0.2, 0.1, 0.1)))
    assert first.position == len(request(backend).context)
    assert events[-1].finish_reason == "length" and all(
        e.finish_reason is None for e in events[:-1]
    )
    assert backend.tokenizer.token_text(first.token_id) == " Paris"
    body = fake.posts("/v1/completions")[-1].body
    assert body["prompt"] == "The capital of France is" and body["stream"] is True
    assert body["logprobs"] == 3 and body["temperature"] == 0.0


def test_sampled_probability_is_unknown_when_sampling(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    events = list(backend.generate(request(backend, temperature=0.8)))
    assert all(math.isnan(e.sampled_prob) for e in events)
    assert "does not report" in backend.capabilities.why_not("sampled_prob")


def test_stop_string_cuts_the_text_and_closes_the_stream(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    events = list(backend.generate(request(backend, max_tokens=6, stop=(" is",))))
    assert "".join(e.text for e in events) == " Paris. It"
    assert events[-1].finish_reason == "stop"
    assert "stop" not in fake.posts("/v1/completions")[-1].body  # applied here, not there


def test_branching_sends_the_prefix_and_the_chosen_piece(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    events = list(backend.generate(request(backend)))
    chosen = events[0].top[1]  # " London" instead of " Paris"
    context = [*request(backend).context, chosen.token_id]
    list(backend.generate(Request(context, params=lambda: SamplingParams(max_tokens=2))))
    assert fake.posts("/v1/completions")[-1].body["prompt"] == "The capital of France is London"


def test_a_setting_the_server_ignores_is_told_not_dropped(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    notices: list[str] = []
    params = SamplingParams(temperature=0.0, max_tokens=2, top_k=5, min_p=0.1)
    req = Request(backend.tokenizer.encode("Hi"), params=lambda: params, on_notice=notices.append)
    list(backend.generate(req))
    assert len(notices) == 1 and "top k" in notices[0] and "min p" in notices[0]
    body = fake.posts("/v1/completions")[-1].body
    assert "top_k" not in body and "min_p" not in body


def test_chat_turns_go_to_the_chat_endpoint_with_logprobs(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    messages = [{"role": "user", "content": "Hi"}]
    req = Request(
        [], params=lambda: SamplingParams(temperature=0.0, max_tokens=3), messages=messages
    )
    events = list(backend.generate(req))
    assert [e.text for e in events] == ["Hello", "!", " How"]
    assert events[0].prob == pytest.approx(0.6) and len(events[0].top) == 3
    body = fake.posts("/v1/chat/completions")[-1].body
    assert body["messages"] == messages and body["logprobs"] is True and body["top_logprobs"] == 3


def test_score_reads_the_echo(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    ids = backend.tokenizer.encode("The capital of France")
    assert [backend.tokenizer.token_text(i) for i in ids] == ["The", " capital", " of", " France"]
    scores = backend.score(ids).tokens
    assert [s.position for s in scores] == [1, 2, 3]
    assert [s.text for s in scores] == [" capital", " of", " France"]
    assert all(s.prob == pytest.approx(0.6) and s.rank == 1 for s in scores)


def test_prompt_scores_arrive_through_the_request(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    got = []
    req = request(backend)
    req = Request(req.context, req.params, reuse_limit=2, on_prompt_scored=got.append)
    list(backend.generate(req))
    assert [s.position for s in got[0]] == [2, 3, 4]


def test_a_server_that_lies_about_prompt_scores_is_refused(fake: FakeOpenAIServer) -> None:
    fake.lie = 1.0
    backend = connect(fake.url)
    assert not backend.capabilities.prompt_scoring
    why = backend.capabilities.why_not("prompt_scoring")
    assert "disagree with its own generation logprobs" in why
    with pytest.raises(BackendError, match="disagree"):
        backend.score(backend.tokenizer.encode("a b c"))
    assert backend.capabilities.completion  # generation is still fine


def test_a_server_without_logprobs_streams_text_with_unknown_odds(fake: FakeOpenAIServer) -> None:
    fake.reject_logprobs = True
    backend = connect(fake.url)
    caps = backend.capabilities
    assert caps.completion and caps.alternatives == 0 and not caps.prompt_scoring
    assert "logprobs are not supported" in caps.why_not("alternatives")
    events = list(backend.generate(request(backend)))
    assert [e.text for e in events] == PIECES[:4]
    assert all(math.isnan(e.prob) and e.rank == 0 and e.top == () for e in events)
    assert events[-1].finish_reason == "length"


def test_alternatives_summing_past_one_are_refused(fake: FakeOpenAIServer) -> None:
    fake.over_one = True
    backend = connect(fake.url)
    assert backend.capabilities.alternatives == 0 and not backend.capabilities.prompt_scoring
    assert "sum to more than 1" in backend.capabilities.why_not("alternatives")
    events = list(backend.generate(request(backend)))  # the text, without made-up odds
    assert [e.text for e in events] == PIECES[:4] and all(math.isnan(e.prob) for e in events)
    assert "logprobs" not in fake.posts("/v1/completions")[-1].body


@pytest.mark.parametrize(
    ("status", "message", "hint"),
    [
        (401, "Invalid API key", "check --api-key or OPENAI_API_KEY"),
        (404, "model not found", "it usually ends in /v1"),
        (429, "Rate limit reached for requests", "wait and try again"),
        (500, "CUDA out of memory", "the server failed"),
        (503, "overloaded", "the server failed"),
    ],
)
def test_error_statuses_show_the_servers_message(fake, status, message, hint) -> None:
    fake.status = (status, message)
    with pytest.raises(BackendError) as caught:
        connect(fake.url, SECRET)
    text = str(caught.value)
    assert f"answered {status}" in text and message in text and hint in text
    assert "\n" not in text and SECRET not in text


def test_the_api_key_is_sent_but_never_shown(fake: FakeOpenAIServer) -> None:
    fake.status = (401, f"key {SECRET} is not valid")  # a server that echoes what it got
    with pytest.raises(BackendError) as caught:
        connect(fake.url, SECRET)
    assert SECRET not in str(caught.value) and "***" in str(caught.value)
    assert fake.seen[0].authorization == f"Bearer {SECRET}"
    fake.status = None
    backend = connect(fake.url, SECRET)
    assert SECRET not in repr(backend) + repr(backend.client) + "\n".join(describe(backend))


def test_credentials_in_the_url_become_basic_auth_and_leave_it(fake: FakeOpenAIServer) -> None:
    url = fake.url.replace("http://", "http://user:pa%24%24word@")
    backend = connect(url)
    assert "pa" not in backend.client.base_url and "user" not in backend.name
    assert fake.seen[0].authorization.startswith("Basic ")
    fake.status = (401, "bad password pa$$word")
    with pytest.raises(BackendError) as caught:
        connect(url)
    assert "pa$$word" not in str(caught.value) and "user" not in str(caught.value)


def test_a_server_that_is_down(fake: FakeOpenAIServer) -> None:
    url = fake.url
    fake.close()
    with pytest.raises(
        BackendError, match=r"cannot reach http://127\.0\.0\.1:\d+ .*is the server running"
    ):
        connect(url)


def test_a_server_that_does_not_answer_times_out(fake: FakeOpenAIServer) -> None:
    fake.answer_after = 3.0
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"did not answer within 0\.5 s; it may be overloaded"):
        connect(fake.url, timeouts=Timeouts(connect=1.0, read=9.0, probe=0.5))
    assert time.monotonic() - started < 2.0


def test_models_that_are_not_json(fake: FakeOpenAIServer) -> None:
    fake.models_body = "<html>It works!</html>"
    with pytest.raises(BackendError, match="answered models with no JSON: <html>It works!</html>"):
        connect(fake.url)


def test_a_dropped_stream_keeps_what_arrived(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    fake.drop_after = 2
    got = []
    with pytest.raises(ConnectionLost, match="stopped: connection lost"):
        for event in backend.generate(request(backend)):
            got.append(event)
    assert [e.text for e in got] == PIECES[:2]
    assert list(backend.generate(request(backend, max_tokens=1)))  # still usable


def test_a_malformed_event_stops_with_a_message(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    fake.malformed_event_after = 3
    got = []
    with pytest.raises(
        BackendError, match=r"stopped: the server sent a malformed event: \{not json"
    ):
        for event in backend.generate(request(backend)):
            got.append(event)
    assert [e.text for e in got] == PIECES[:3]


def test_a_stream_without_finish_reason_says_so(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    fake.done_without_finish = True
    got = []
    with pytest.raises(BackendError, match="ended the answer without saying why"):
        for event in backend.generate(request(backend)):
            got.append(event)
    assert len(got) == 4


def test_a_stalled_stream_times_out_between_events(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url, timeouts=Timeouts(connect=2.0, read=0.5, probe=5.0))
    fake.stall_after, fake.stall_seconds = 2, 3.0
    got = []
    started = time.monotonic()
    with pytest.raises(ConnectionLost, match=r"sent nothing for 0\.5 s"):
        for event in backend.generate(request(backend)):
            got.append(event)
    assert time.monotonic() - started < 2.5
    assert [e.text for e in got] == PIECES[:2]


def test_closing_the_generator_closes_the_connection(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    fake.stall_after, fake.stall_seconds = 1, 0.5
    events = backend.generate(request(backend, max_tokens=6))
    next(events)
    events.close()
    deadline = time.monotonic() + 5
    while fake.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.disconnects == 1


def test_compare_streams_run_in_parallel(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    reqs = [request(backend, max_tokens=3), request(backend, max_tokens=5, temperature=0.7)]
    pairs = list(backend.generate_batch(reqs))
    by_stream = {i: [e.text for _, e in pairs if _ == i] for i in (0, 1)}
    assert by_stream == {0: PIECES[:3], 1: PIECES[:5]}


def test_compare_stream_errors_reach_the_caller(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    fake.drop_after = 1
    with pytest.raises(ConnectionLost):
        list(backend.generate_batch([request(backend), request(backend)]))


def test_model_list_and_urls(fake: FakeOpenAIServer) -> None:
    assert [m.id for m in models_at(fake.url)] == ["fake-model"]
    assert is_server_url("http://127.0.0.1:8000/v1") and not is_server_url("smollm2")
    with pytest.raises(BackendError, match="has no model 'gpt-9'; it has: fake-model"):
        connect(fake.url, model="gpt-9")
    assert connect(fake.url + "#fake-model").model == "fake-model"
    with pytest.raises(BackendError, match="no model 'other'"):
        connect(fake.url + "#other")
    root = fake.url.removesuffix("/v1")
    assert connect(root).client.base_url == fake.url  # /v1 is added to a bare server URL
    # every request went to the server the URL named, nowhere else
    assert {s.path.split("?")[0] for s in fake.seen} <= {
        "/v1/models", "/v1/completions", "/v1/chat/completions",
        "/openapi.json", "/api/version", "/props", "/version",
    }  # fmt: skip


def test_speculation_asked_of_a_server_says_it_is_local_only(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    notices: list[str] = []
    req = request(backend)
    req = Request(req.context, req.params, speculative="lookup", on_notice=notices.append)
    assert [e.text for e in backend.generate(req)] == PIECES[:4]
    assert notices == [backend.capabilities.why_not("speculative")]


def test_text_is_one_piece_while_the_server_cannot_split_it(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url)
    fake.status = (503, "loading")
    ids = backend.tokenizer.encode("The capital")
    assert [backend.tokenizer.token_text(i) for i in ids] == ["The capital"]
    fake.status = None  # not cached: once the server answers, its own pieces
    assert len(backend.tokenizer.encode("The capital")) == 2


# --- issue 24's samplers on a server: sent under the names each kind reads, or said ---------------

LAB = SamplingParams(
    temperature=0.0,
    max_tokens=2,
    typical_p=0.9,
    top_n_sigma=1.5,
    xtc_probability=0.3,
    dry_multiplier=0.8,
    dry_sequence_breakers=("\n",),
    mirostat_tau=4.0,
    sampler_order=("top_k", "typical_p", "temperature"),
)


def run_lab(fake: FakeOpenAIServer, kind: str, **changes) -> tuple[dict, list[str]]:
    backend = connect(fake.url, kind=kind)
    paris, london = backend.tokenizer.encode(" Paris London")
    params = LAB.replace(logit_bias={paris: 2.5}, banned_tokens=[london], **changes)
    notices: list[str] = []
    req = Request(backend.tokenizer.encode("Hi"), params=lambda: params, on_notice=notices.append)
    list(backend.generate(req))
    backend.close()
    return fake.posts("/v1/completions")[-1].body, notices


def test_llama_server_is_sent_every_sampler_it_reads(fake: FakeOpenAIServer) -> None:
    body, notices = run_lab(fake, "llama-server")
    assert body["typical_p"] == 0.9 and body["top_n_sigma"] == 1.5
    assert body["xtc_probability"] == 0.3 and body["xtc_threshold"] == 0.1
    assert body["dry_multiplier"] == 0.8 and body["dry_base"] == 1.75
    assert body["dry_allowed_length"] == 2 and body["dry_sequence_breakers"] == ["\n"]
    assert body["dynatemp_range"] == 0.0 and body["dynatemp_exponent"] == 1.0
    assert body["mirostat"] == 2 and body["mirostat_tau"] == 4.0 and body["mirostat_eta"] == 0.1
    assert body["samplers"] == ["top_k", "typ_p", "temperature"]
    assert body["logit_bias"] == [[" Paris", 2.5], [" London", False]]  # tokens by their text
    assert notices == []  # everything set is read


def test_llama_server_is_told_off_in_its_own_terms(fake: FakeOpenAIServer) -> None:
    body, _ = run_lab(fake, "llama-server", top_n_sigma=0.0, mirostat_tau=0.0)
    assert body["top_n_sigma"] == -1.0 and body["mirostat"] == 0  # its "off"


def test_llama_cpp_python_reads_biases_by_text_and_mirostat(fake: FakeOpenAIServer) -> None:
    body, notices = run_lab(fake, "llama-cpp-python")
    assert body["logit_bias"] == {" Paris": 2.5, " London": -1e30}
    assert body["logit_bias_type"] == "tokens"
    assert body["mirostat_mode"] == 2 and body["mirostat_tau"] == 4.0
    assert "typical_p" not in body and "samplers" not in body
    (notice,) = notices
    for name in ("typical p", "top n sigma", "xtc probability", "dry multiplier", "sampler order"):
        assert name in notice, name
    assert "logit bias" not in notice and "mirostat" not in notice


def test_openai_says_why_it_gets_no_logit_bias(fake: FakeOpenAIServer) -> None:
    body, notices = run_lab(fake, "openai", banned_strings=("x",))
    assert "logit_bias" not in body and "typical_p" not in body
    (notice,) = notices
    assert "logit bias: OpenAI reads logit_bias by its own tokenizer's token ids" in notice
    assert "banned strings: banned strings rewind the text" in notice


def test_llama_server_gives_a_step_before_and_after_its_sampling(fake: FakeOpenAIServer) -> None:
    backend = connect(fake.url, kind="llama-server")
    context = backend.tokenizer.encode("The capital of France is")
    step = backend.sampler_step(context, SamplingParams(top_k=2, temperature=0.7), 10)
    bodies = [s.body for s in fake.posts("/completion")]
    assert [b["post_sampling_probs"] for b in bodies] == [False, True]
    for body in bodies:
        assert body["prompt"] == "The capital of France is" and body["n_predict"] == 1
        assert body["n_probs"] == 10 and body["top_k"] == 2 and body["temperature"] == 0.7
        assert "max_tokens" not in body
    text = backend.tokenizer.token_text
    assert [(text(a.token_id), round(a.prob, 3)) for a in step.before] == [
        (" Paris", 0.6), (" London", 0.2), (" Rome", 0.1)
    ]  # fmt: skip
    assert [(text(a.token_id), round(a.prob, 3)) for a in step.after] == [
        (" Paris", 0.75), (" London", 0.25)
    ]  # fmt: skip
    assert text(step.drawn) == " Paris"
    assert backend.sampler_note(10) == (
        "llama-server: its top 10 before and after its sampling; each stage needs the local engine"
    )
    backend.close()


def test_other_servers_say_the_sampler_view_shows_before_sampling_only(
    fake: FakeOpenAIServer,
) -> None:
    backend = connect(fake.url, kind="vllm")
    assert backend.sampler_note(5) == (
        "vllm: its top 5 before sampling only; the stages need the local engine"
    )
    with pytest.raises(BackendError, match="before sampling only"):
        backend.sampler_step(backend.tokenizer.encode("Hi"), SamplingParams(), 10)
    assert fake.posts("/completion") == []
    backend.close()
