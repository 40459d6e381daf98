"""Scoring the prompt in the playground: what the prefill computed, kept across runs, drawn as
tokens, coloured, selectable, summed up in the status line."""

from __future__ import annotations

import math

from textual.pilot import Pilot
from textual.widgets import OptionList
from tui_helpers import wait_generated, wait_loaded, wait_until

from gpt_tui.engine.generate import window_keep
from gpt_tui.engine.scoring import score_rows
from gpt_tui.playground.prompt_tokens import prompt_spans
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.colouring import MODES, token_style
from gpt_tui.tui.widgets.legend import ColourLegend

SIZE = (180, 40)  # the status line has room for every field, the prompt's perplexity included
PROMPT = "The quick brown fox jumps over the lazy dog"


async def generate_from(pilot: Pilot, prompt: str, key: str = "ctrl+j") -> None:
    pilot.app.prompt_editor.load_text(prompt)
    await pilot.pause()
    await pilot.press(key)
    await wait_generated(pilot)


def full_forward_logprobs(app: GptTuiApp, ids: list[int]) -> list[float]:
    """Each token's log-probability under one independent forward pass over all of `ids`,
    no kv cache. (Not `score_text`: it puts <|endoftext|> first so the first token is scored
    too; the playground generates from the prompt as written, where nothing predicts it.)"""
    logits = app.core.backend.model.forward(ids)  # [len(ids), n_vocab]
    return [s.logprob for s in score_rows(logits[:-1], ids[1:], app.core.backend.tokenizer, 0)]


def assert_scores_match_a_full_forward(app: GptTuiApp) -> None:
    ids = app.core.transcript.reply_prefix
    scores = app.core.transcript.prompt_scores
    assert [s.position for s in scores] == list(range(1, len(ids)))
    assert [s.token_id for s in scores] == ids[1:]
    expected = full_forward_logprobs(app, ids)
    assert max(abs(s.logprob - e) for s, e in zip(scores, expected, strict=True)) < 1e-5
    # ... and what the view draws is the same scores, the first token without one
    drawn = app.output.prompt_tokens
    assert [t.token_id for t in drawn] == ids
    assert drawn[0].score is None and [t.score for t in drawn[1:]] == scores


def count_forward_calls(monkeypatch, app: GptTuiApp) -> list[int]:
    """The number of tokens of each forward pass from now on (the real model still runs)."""
    calls: list[int] = []
    original = app.core.backend.model.forward

    def counting_forward(ids, cache=None, **kwargs):
        calls.append(len(ids))
        return original(ids, cache, **kwargs)

    monkeypatch.setattr(app.core.backend.model, "forward", counting_forward)
    return calls


def status_text(app: GptTuiApp) -> str:
    return app.status.render().plain


async def test_prompt_logprobs_equal_a_full_forward_across_runs(
    tiny_model_dir, deterministic_settings, monkeypatch
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await generate_from(pilot, PROMPT)
        assert_scores_match_a_full_forward(app)
        first_scores = list(app.core.transcript.prompt_scores)
        summary = app.status.prompt_score
        assert summary is not None

        # Regenerate and continue reuse the cache: nothing of the prompt is computed again,
        # its scores are kept, and the status still sums them up.
        calls = count_forward_calls(monkeypatch, app)
        await pilot.press("ctrl+r")
        await wait_generated(pilot)
        assert calls[0] == 1
        assert app.core.transcript.prompt_scores == first_scores
        assert_scores_match_a_full_forward(app)
        assert app.status.prompt_score == summary and "prompt ppl" in status_text(app)
        calls.clear()
        await pilot.press("ctrl+n")
        await wait_generated(pilot)
        assert calls[0] == 1
        assert_scores_match_a_full_forward(app)
        assert app.status.prompt_score == summary

        # A longer prompt: the cache holds the old one, so only the new tail is scored.
        n_old = len(app.core.transcript.reply_prefix)
        calls.clear()
        await generate_from(pilot, PROMPT + ", and then it sleeps")
        assert calls[0] == len(app.core.transcript.reply_prefix) - n_old + 1
        assert app.core.transcript.prompt_scores[: n_old - 1] == first_scores
        assert_scores_match_a_full_forward(app)


async def test_a_prompt_that_goes_on_with_the_output_reuses_its_scores(
    tiny_model_dir, deterministic_settings
):
    """The generated tokens' own probabilities become the scores of those tokens read back
    as prompt: the cache holds them, the prefill does not score them again."""
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await generate_from(pilot, PROMPT)
        await generate_from(pilot, app.core.transcript.text())
        assert_scores_match_a_full_forward(app)


async def test_a_prompt_longer_than_the_context_is_scored_where_the_window_reads_it(
    tiny_model_dir, deterministic_settings, monkeypatch
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        app.core.sampling = app.core.sampling.replace(
            max_tokens=4
        )  # the window does not slide again
        await generate_from(pilot, " ".join(["word"] * 80))
        ids = app.core.transcript.reply_prefix
        kept = window_keep(app.core.backend.model.n_ctx)
        dropped = len(ids) - kept
        assert dropped > 0
        scores = app.core.transcript.prompt_scores
        assert [s.position for s in scores] == list(range(dropped + 1, len(ids)))
        expected = full_forward_logprobs(app, ids[dropped:])
        assert max(abs(s.logprob - e) for s, e in zip(scores, expected, strict=True)) < 1e-5
        assert "prompt ppl" in status_text(app)

        calls = count_forward_calls(monkeypatch, app)
        await pilot.press("ctrl+r")  # the cached window is reused, not computed again
        await wait_generated(pilot)
        assert calls[0] == 1 and "prompt ppl" in status_text(app)


async def test_status_shows_perplexity_and_bits_per_token(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        assert "prompt ppl" not in status_text(app)
        await generate_from(pilot, PROMPT)
        expected = full_forward_logprobs(app, app.core.transcript.reply_prefix)
        mean = sum(expected) / len(expected)
        ppl, bits = math.exp(-mean), -mean / math.log(2)
        ppl_text = f"{ppl:.1f}" if ppl < 1000 else f"{ppl:.0f}"
        assert f"prompt ppl {ppl_text} · {bits:.1f} bits/tok" in status_text(app)
        await pilot.press("ctrl+l")  # cleared: no prompt, no perplexity
        assert "prompt ppl" not in status_text(app)


async def test_selecting_a_prompt_token_shows_what_the_model_expected(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await generate_from(pilot, PROMPT)
        inspector = app.inspector
        summary = app.query_one("#inspector-summary")

        await pilot.click("#output", offset=app.output.prompt_token_offset(2))
        assert app.output.selected_prompt == 2 and app.output.selected is None
        token = app.output.prompt_tokens[2]
        assert inspector.prompt_token is token and inspector.event is None
        text = str(summary.render())
        assert "“␣brown”" in text and "prompt token 3" in text
        score = token.score
        for shown in (f"rank {score.rank}", f"log p {score.logprob:.3f} nats",
                      f"surprisal {score.surprisal_bits:.2f} bits",
                      f"entropy {score.entropy:.2f} nats"):  # fmt: skip
            assert shown in text
        options = app.query_one("#alternatives", OptionList)
        assert options.option_count >= app.core.n_top  # what the model expected there
        assert len([o for o in options._options if o and "▶" in str(o.prompt)]) == 1

        await pilot.press("home")  # the first token: nothing predicts it
        assert app.output.selected_prompt == 0
        assert "no prediction" in str(summary.render())
        assert not options.display

        # One selection through prompt and output, in document order.
        await pilot.press("end")
        assert app.output.selected == app.output.token_count - 1
        app.output.select(0)
        await pilot.press("left")
        assert app.output.selected is None
        assert app.output.selected_prompt == len(app.output.prompt_tokens) - 1
        await pilot.press("right")
        assert app.output.selected == 0 and inspector.event is app.output.events[0]
        assert inspector.prompt_token is None


async def test_colouring_cycles_through_surprisal_and_applies_to_the_prompt(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await generate_from(pilot, PROMPT)
        legend = app.query_one(ColourLegend)
        seen = []
        for _ in MODES:
            await pilot.press("f2")
            seen.append(app.output.colouring)
        assert seen == ["probability", "rank", "surprisal", "off"]
        await pilot.press("f2", "f2", "f2")
        assert app.output.colouring == "surprisal" and "bits" in legend.render().plain

        # A scored prompt token is coloured like an output token; the first one stays plain.
        view = app.output
        lines = [view.render_line(y) for y in range(3)]
        backgrounds = {
            seg.style.meta.get("prompt_token"): seg.style.bgcolor
            for line in lines
            for seg in line
            if seg.style and "prompt_token" in seg.style.meta
        }
        expected = [
            token_style("surprisal", t.score.prob, t.score.rank).bgcolor
            for t in view.prompt_tokens[1:]
        ]
        assert [backgrounds[i] for i in range(1, len(view.prompt_tokens))] == expected
        assert backgrounds[0] == view.rich_style.bgcolor  # nothing predicts it: not coloured


async def test_chat_messages_are_drawn_as_their_scored_tokens(
    tiny_model_dir, deterministic_settings
):
    """A base model's chat is a plain transcript ("User: ...\\n\\nAssistant:"): the user's
    message is found in it and drawn as its tokens; the markup around it is not shown."""
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("f3")
        await generate_from(pilot, "Hi there")
        spans = prompt_spans(app.core.transcript)
        assert "".join(s.text for s in spans[0]) == "Hi there"
        tokens = [s.token for s in spans[0]]
        assert all(t is not None and t.score is not None for t in tokens)
        assert app.output.prompt_tokens == tokens
        await wait_until(pilot, lambda: "prompt ppl" in status_text(app))
        await pilot.click("#output", offset=app.output.prompt_token_offset(1))
        assert "“␣there”" in str(app.query_one("#inspector-summary").render())


def test_prompt_coloured_by_rank(snap_compare, tiny_model_dir, deterministic_settings):
    async def run_before(pilot: Pilot) -> None:
        app: GptTuiApp = pilot.app  # type: ignore[assignment]
        await wait_loaded(pilot)
        await generate_from(pilot, PROMPT)
        app.status.stats = None  # timings differ between runs
        app.colouring = "rank"
        app.output.focus()
        app.output.select_prompt(3)
        app.clear_notifications()
        await pilot.pause()

    app = GptTuiApp(model=tiny_model_dir)
    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)
