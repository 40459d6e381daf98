"""The playground core without a terminal: runs, stops, branches, sessions, on a tiny real model."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpt_tui.backends.local import LocalBackend
from gpt_tui.engine import Alternative, SamplingParams
from gpt_tui.engine.plan.wisdom import wisdom_dir
from gpt_tui.models.loading import LoadedModel
from gpt_tui.playground.core import Playground, PlaygroundError
from gpt_tui.playground.events import PromptScored, RunFinished, TokensStreamed
from gpt_tui.playground.transcript import Turn
from gpt_tui.settings import UserSettings

GREEDY = SamplingParams(temperature=0.0, max_tokens=6)


@pytest.fixture
def playground(tiny_gpt2, gpt2_tokenizer) -> Playground:
    core = Playground(UserSettings(sampling=GREEDY, speculative="off"))
    backend = LocalBackend(LoadedModel("tiny", tiny_gpt2, gpt2_tokenizer, None, {}))
    assert core.set_backend(core.begin_load(), "tiny", backend)
    return core


def run_all(core: Playground, run) -> list:
    return list(core.stream(run))


def test_without_a_model_a_run_is_refused_with_the_reason():
    core = Playground()
    with pytest.raises(PlaygroundError, match="still loading"):
        core.generate("Hello")
    core.load_failed(core.begin_load())
    with pytest.raises(PlaygroundError, match="No model loaded"):
        core.generate("Hello")


def test_generate_streams_scores_and_finishes(playground):
    events = run_all(playground, playground.generate("Hello world, this is"))
    assert isinstance(events[-1], RunFinished) and events[-1].finish == "length"
    tokens = [e for ev in events if isinstance(ev, TokensStreamed) for e in ev.events]
    assert len(tokens) == 6 == len(playground.transcript.reply.events)
    assert any(isinstance(ev, PromptScored) for ev in events)
    assert playground.state == "length"
    assert playground.prompt_score() is not None  # every prompt token after the first scored


def test_continue_and_regenerate_reuse_the_cache_and_keep_branches(playground):
    run_all(playground, playground.generate("Hello world"))
    first = list(playground.transcript.reply.events)
    run_all(playground, playground.continue_run())
    assert playground.transcript.reply.events[:6] == first
    assert len(playground.transcript.reply.events) == 12
    run_all(playground, playground.regenerate())
    # greedy: the same text again, as a sibling at the root of the reply's tree
    assert [e.token_id for e in playground.transcript.reply.events] == [e.token_id for e in first]


def test_a_stopped_run_is_dropped_and_the_reply_keeps_what_arrived(playground):
    run = playground.generate("Hello")
    assert playground.stop()
    assert playground.state == "user"
    received = []
    playground.execute(run, received.append, interval=0)
    assert received and not any(playground.receive(ev) for ev in received)
    assert playground.transcript.reply.events == []
    assert playground.transcript.reply.finish == "user"


def test_branch_on_another_token_goes_on_from_it(playground):
    run_all(playground, playground.generate("Hello world"))
    step = playground.transcript.reply.events[2]
    other = next(a for a in step.top if a.token_id != step.token_id)
    branched = playground.branch(2, other)
    assert branched.run is not None
    run_all(playground, branched.run)
    reply = playground.transcript.reply
    assert reply.events[2].token_id == other.token_id
    assert playground.forks() == [2]
    sibling = playground.sibling(4, 1)
    assert playground.show_branch(sibling) == 2
    assert reply.events[2].token_id == step.token_id
    with pytest.raises(PlaygroundError, match="already taken"):
        playground.branch(2, Alternative(step.token_id, step.text, step.prob))
    with pytest.raises(PlaygroundError, match="Only the reply"):
        playground.branch(99, other)
    again = playground.branch(2, other)
    assert again.existing and again.run is None


def test_chat_with_a_base_model_stops_at_the_users_turn(playground):
    playground.set_mode(chat=True)
    with pytest.raises(PlaygroundError, match="Type a message"):
        playground.generate("  ")
    run = playground.generate("Hi there")
    assert "\nUser:" in run.request.params().stop
    assert run.request.messages == [{"role": "user", "content": "Hi there"}]


def test_a_session_saves_and_reopens_bound_to_its_model(playground, tmp_path, tiny_gpt2,
                                                        gpt2_tokenizer):  # fmt: skip
    run_all(playground, playground.generate("Hello world"))
    json_path, md_path = playground.save_session(tmp_path / "s", editor="draft")
    assert json_path.exists() and md_path.exists()
    other = Playground()
    opened = other.open_session(json_path)
    assert opened.load == "tiny"  # the model to load: its token ids mean nothing without it
    backend = LocalBackend(LoadedModel("tiny", tiny_gpt2, gpt2_tokenizer, None, {}))
    other.set_backend(other.begin_load(), "tiny", backend)
    assert other.transcript.tokenizer is gpt2_tokenizer
    assert other.transcript.reply.token_ids == playground.transcript.reply.token_ids
    run_all(other, other.continue_run())
    assert len(other.transcript.reply.events) == 12


def test_a_failing_backend_ends_the_run_with_its_message(playground):
    run = playground.generate("Hello")
    broken = type("Broken", (), {"generate": lambda self, request: iter([1 / 0])})()
    finished = playground.execute(
        type(run)(run.id, broken, run.request), playground.receive, interval=0
    )
    assert finished.finish == "error" and "ZeroDivisionError" in finished.error
    assert playground.state == "error"


def test_chat_starts_with_a_system_message_only_first(playground):
    with pytest.raises(PlaygroundError, match="goes first"):
        playground.add_system_message("Be brief")  # completion mode
    playground.set_mode(chat=True)
    playground.add_system_message("Be brief")
    run = playground.generate("Hi")
    assert run.request.messages == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Hi"},
    ]
    with pytest.raises(PlaygroundError, match="goes first"):
        playground.add_system_message("Again")


def test_score_reads_the_text_as_the_engine_does(playground, tiny_gpt2, gpt2_tokenizer):
    from gpt_tui.engine import score_text

    got = playground.score("Hello world, again", n_top=3)
    want = score_text(tiny_gpt2, gpt2_tokenizer, "Hello world, again", n_top=3)
    assert [t.token_id for t in got.tokens] == [t.token_id for t in want.tokens]
    assert [t.prob for t in got.tokens] == pytest.approx([t.prob for t in want.tokens])


@pytest.mark.parametrize("bos_first", [False, True])
def test_score_and_the_prompts_scores_after_a_run_give_one_perplexity(
    tiny_gpt2, gpt2_tokenizer, bos_first_tokenizer, bos_first
):
    # One rule (transformers' perplexity guide): the first token is scored only after a BOS the
    # tokenizer puts before every text. GPT-2's (and SmolLM2's) put none; Llama 3's does.
    tokenizer = bos_first_tokenizer if bos_first else gpt2_tokenizer
    core = Playground(UserSettings(sampling=GREEDY, speculative="off"))
    core.set_backend(core.begin_load(), "t",
                     LocalBackend(LoadedModel("t", tiny_gpt2, tokenizer, None, {})))  # fmt: skip
    text = "In 1969, astronauts"
    scored = core.score(text, n_top=0)
    list(core.stream(core.generate(text)))
    perplexity, bits = core.prompt_score()
    assert scored.perplexity == pytest.approx(perplexity, rel=1e-6)
    assert scored.mean_surprisal_bits == pytest.approx(bits, rel=1e-6)
    assert scored.context == tuple(core.transcript.reply_prefix)
    assert [t.position for t in scored.tokens] == [
        s.position for s in core.transcript.prompt_scores
    ]
    n_text = len(gpt2_tokenizer.encode(text))
    assert scored.prepended_bos == bos_first and len(scored.tokens) == n_text - (not bos_first)


def test_compare_runs_every_column_of_one_context(playground):
    from gpt_tui.playground.compare import BatchFinished, compare_request, execute_compare

    request = compare_request(playground.backend, playground.transcript, "Hello world", False,
                              GREEDY, 3)  # fmt: skip
    assert request.summary.startswith("Prompt · 2 tokens")
    params = [lambda: GREEDY, lambda: GREEDY.replace(max_tokens=3)]
    events = []
    end = execute_compare(playground, 1, request, params, events.append, lambda: False)
    assert isinstance(end, BatchFinished) and end.finishes == ["length", "length"]
    per_column = [0, 0]
    for event in events:
        for stream, _ in getattr(event, "events", []):
            per_column[stream] += 1
    assert per_column == [6, 3]
    with pytest.raises(ValueError, match="Type a message"):
        compare_request(playground.backend, playground.transcript, "", True, GREEDY, 3)


def test_a_prompt_starts_with_bos_where_the_tokenizer_puts_it_first(tiny_gpt2, tmp_path):
    from tokenizers import Tokenizer, processors

    from gpt_tui.tokenizer.hf import HFTokenizer

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "hf" / "gpt2" / "tokenizer.json"
    tok = Tokenizer.from_file(str(fixture))
    tok.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 50256)]
    )  # as Llama 3's tokenizer.json starts every text with <|begin_of_text|>
    tok.save(str(tmp_path / "tokenizer.json"))
    config = fixture.with_name("tokenizer_config.json")  # names <|endoftext|> the bos token
    (tmp_path / config.name).write_bytes(config.read_bytes())
    hf = HFTokenizer.from_dir(tmp_path)
    assert hf.add_bos and hf.bos_id == 50256
    core = Playground(UserSettings(sampling=GREEDY, speculative="off"))
    core.set_backend(
        core.begin_load(), "t", LocalBackend(LoadedModel("t", tiny_gpt2, hf, None, {}))
    )
    run = core.generate("Hello world")
    assert run.request.context == [50256, *hf.encode("Hello world")]
    list(core.stream(run))
    assert core.transcript.reply.events and core.transcript.turns[0].text == "Hello world"


def test_a_plan_is_expected_only_where_none_is_kept(gpt_home, monkeypatch):
    """A first start measures the kernel plan: the front end says so while it loads."""
    monkeypatch.delenv("GPT_TUI_PLAN", raising=False)
    assert Playground.plan_expected("smollm2")
    assert not Playground.plan_expected("http://127.0.0.1:9/v1")  # a server plans nothing
    wisdom_dir().mkdir(parents=True, exist_ok=True)
    (wisdom_dir() / "llama-0123.json").write_text("{}")
    assert not Playground.plan_expected("smollm2")
    monkeypatch.setenv("GPT_TUI_PLAN", "replan")
    assert Playground.plan_expected("smollm2")
    monkeypatch.setenv("GPT_TUI_PLAN", "default")
    assert not Playground.plan_expected("smollm2")


def test_set_mode_keeps_each_modes_transcript():
    core = Playground()
    core.transcript.turns.append(Turn("prompt", "Once upon"))
    completion = core.transcript
    core.set_mode(chat=True)
    assert core.chat_mode and core.transcript.is_empty
    core.transcript.turns.append(Turn("user", "Hi"))
    chat = core.transcript
    core.set_mode(chat=False)
    assert core.transcript is completion
    core.set_mode(chat=True)
    assert core.transcript is chat
