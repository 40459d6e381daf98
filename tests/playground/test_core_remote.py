"""The playground core on a real OpenAI-compatible server (llama-cpp-python, the bundled
SmolLM2, on 127.0.0.1): the same runs as locally, and one line for what a server cannot do."""

from __future__ import annotations

import pytest

from gpt_tui.backends.opening import open_backend
from gpt_tui.engine import SamplingParams
from gpt_tui.playground.core import Playground, PlaygroundError
from gpt_tui.playground.events import RunFinished, RunNotice, TokensStreamed
from gpt_tui.settings import UserSettings

GREEDY = SamplingParams(temperature=0.0, max_tokens=6)


@pytest.fixture
def remote(llama_server) -> Playground:
    core = Playground(UserSettings(sampling=GREEDY, n_top=5))
    core.set_backend(core.begin_load(), llama_server.url, open_backend(llama_server.url))
    yield core
    core.backend.close()


def tokens(events) -> list:
    return [t for e in events if isinstance(e, TokensStreamed) for t in e.events]


def test_a_completion_streams_tokens_with_their_alternatives(remote):
    events = list(remote.stream(remote.generate("The capital of France is")))
    assert isinstance(events[-1], RunFinished) and events[-1].finish == "length"
    got = tokens(events)
    assert len(got) == 6 == len(remote.transcript.reply.events)
    assert all(t.rank == 1 and t.top[0].token_id == t.token_id for t in got)  # greedy
    assert all(0 < t.prob <= 1 and len(t.top) == 5 for t in got)
    assert remote.prompt_score() is None  # this server's echo is refused: nothing shown


def test_speculation_is_off_on_a_server_and_the_request_says_so(remote):
    remote.speculative = "lookup"
    run = remote.generate("Hello")
    assert run.request.speculative == "off"
    assert not any(isinstance(e, RunNotice) for e in remote.stream(run))


def test_branching_re_sends_the_prefix_and_the_chosen_token(remote):
    list(remote.stream(remote.generate("The capital of France is")))
    step = remote.transcript.reply.events[1]
    other = step.top[1]
    branched = remote.branch(1, other)
    list(remote.stream(branched.run))
    reply = remote.transcript.reply
    assert reply.events[1].token_id == other.token_id
    assert len(reply.events) == 2 + 6
    assert remote.forks() == [1]


def test_chat_goes_to_the_servers_template_and_cannot_be_continued(remote):
    remote.set_mode(chat=True)
    run = remote.generate("Say hello")
    assert run.request.messages == [{"role": "user", "content": "Say hello"}]
    assert "\nUser:" not in run.request.params().stop  # the server's template ends turns
    events = list(remote.stream(run))
    assert tokens(events) and events[-1].finish in ("length", "eos")
    with pytest.raises(PlaygroundError, match="chat endpoint starts every reply afresh"):
        remote.continue_run()


def test_a_session_reopens_with_the_servers_tokens(remote, llama_server, tmp_path):
    list(remote.stream(remote.generate("One, two, three,")))
    json_path, _ = remote.save_session(tmp_path / "remote")
    reopened = Playground(UserSettings(sampling=GREEDY))
    opened = reopened.open_session(json_path)
    assert opened.load == llama_server.url
    backend = open_backend(llama_server.url)  # a fresh connection: an empty vocabulary
    try:
        reopened.set_backend(reopened.begin_load(), llama_server.url, backend)
        assert reopened.transcript.tokenizer is backend.tokenizer
        texts = [backend.tokenizer.token_text(e.token_id) for e in reopened.transcript.reply.events]
        assert texts == [e.text for e in remote.transcript.reply.events]
        list(reopened.stream(reopened.continue_run()))
        assert len(reopened.transcript.reply.events) == 12
    finally:
        backend.close()


def test_scoring_is_refused_with_the_servers_reason(remote):
    with pytest.raises(PlaygroundError, match="cannot score a text with .*disagree"):
        remote.score("The capital of France is Paris.")


def test_a_prompt_longer_than_the_servers_context_is_refused_in_its_words(remote):
    # llama-cpp-python splits a text into tokens only through its echo, which refuses a text
    # longer than its context: the prompt stays one piece, and the server's refusal is the
    # run's one-line error (a server with /tokenize gets the prompt's end: see the next test)
    events = list(remote.stream(remote.generate("one two three four " * 400)))
    assert events[-1].finish == "error" and "1024" in events[-1].error
    assert remote.state == "error" and remote.transcript.reply.events == []


def test_the_window_keeps_a_long_prompts_end_as_the_engine_does():
    from gpt_tui.backends.openai.backend import _window

    assert _window(list(range(10)), 16) == (list(range(10)), 0)
    assert _window(list(range(20)), 16) == (list(range(8, 20)), 8)  # 3/4 of the context kept
