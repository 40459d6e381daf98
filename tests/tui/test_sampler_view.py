"""The sampler view (s): the selected token's step through every sampling stage, live with the
panel's sliders; draws, resampling and expanding into branches; escape closes it. Tiny random
GPT-2."""

from __future__ import annotations

import numpy as np
from fake_openai_server import FakeOpenAIServer
from textual.pilot import Pilot
from tui_helpers import generate_from, run_compare, sampler_view_of, wait_generated, wait_until

from gpt_tui.engine import SamplingParams
from gpt_tui.engine.sampling import sampler_view
from gpt_tui.settings import UserSettings, save_settings
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.screens.compare import CompareScreen
from gpt_tui.tui.screens.sampler_view import SamplerViewScreen
from gpt_tui.tui.widgets.slider import Slider
from gpt_tui.tui.widgets.stage_table import StageTable, heading

SIZE = (120, 40)
PROMPT = "The meaning of life is"
SEEDED = SamplingParams(temperature=0.8, top_k=50, seed=3, max_tokens=12)


async def open_view(pilot: Pilot, index: int = 4) -> SamplerViewScreen:
    app: GptTuiApp = pilot.app  # type: ignore[assignment]
    await generate_from(pilot, PROMPT)
    screen: SamplerViewScreen = await sampler_view_of(pilot, app.output, index)
    await wait_until(pilot, lambda: screen.view is not None)
    await pilot.pause()
    return screen


def columns(screen: SamplerViewScreen) -> list[str]:
    table = screen.query_one(StageTable)
    return [str(c.label) for c in table.columns.values()]


async def test_the_columns_are_sampler_view_on_the_same_logits(tiny_model_dir):
    save_settings(UserSettings(sampling=SEEDED))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_view(pilot)
        lab, view = screen.lab, screen.view
        request = lab.request
        ref = sampler_view(lab.logits, SEEDED, request.context, 10, n_prompt=request.n_prompt,
                           seed=SEEDED.seed, position=request.draw_position)  # fmt: skip
        assert columns(screen) == ["token", *(heading(s.name) for s in ref.stages)]
        assert columns(screen)[1:] == ["model", "temp", "top-k"]
        for mine, theirs in zip(view.stages, ref.stages, strict=True):
            np.testing.assert_array_equal(mine.probs, theirs.probs)
        table = screen.query_one(StageTable)
        assert request.token in table.token_ids  # the token taken is always a row
        event = app.output.events[4]
        assert view.final.probs[event.token_id] == np.float64(view.final.probs[event.token_id])
        assert abs(view.final.probs[event.token_id] - event.sampled_prob) < 1e-3
        assert "over the cache" in str(screen.query_one("#sv-status").render())


async def test_a_slider_move_changes_the_view_and_the_settings(tiny_model_dir):
    save_settings(UserSettings(sampling=SEEDED))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_view(pilot)
        before = screen.view
        slider = screen.query_one("#slider-top_p", Slider)
        slider.focus()
        await pilot.press("shift+left", "shift+left", "shift+left", "shift+left", "shift+left")
        await wait_until(pilot, lambda: screen.view is not before and screen.params.top_p < 1.0)
        await wait_until(pilot, lambda: "top-p" in columns(screen))
        assert app.core.sampling.top_p == screen.params.top_p  # the app's settings follow
        assert screen.view.final.kept <= before.final.kept
        # temperature 0: greedy, one token left
        screen.query_one("#slider-temperature", Slider).focus()
        await pilot.press("home")
        await wait_until(pilot, lambda: screen.view.final.kept == 1)
        # t: temperature last, shown in the order
        screen.query_one(StageTable).focus()
        await pilot.press("t")
        await wait_until(pilot, lambda: screen.view.order[-1] == "temperature")
        assert app.core.sampling.sampler_order[-1] == "temperature"
        # the main panel, hidden meanwhile, shows them once the view closes
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, SamplerViewScreen))
        assert app.sampling_panel.params == app.core.sampling == screen.params


async def test_draws_count_a_thousand_draws(tiny_model_dir):
    save_settings(UserSettings(sampling=SEEDED))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_view(pilot)
        await pilot.press("d")
        await wait_until(pilot, lambda: screen.drawn is not None)
        assert screen.drawn.n == 1000 and screen.drawn.counts.sum() == 1000
        assert columns(screen)[-1] == "drawn"
        await pilot.press("d")
        await wait_until(pilot, lambda: screen.drawn is None)


async def test_resample_makes_a_branch_and_escape_closes(tiny_model_dir):
    # a fresh seed per resample: draw until another token comes out, at temperature 2
    save_settings(UserSettings(sampling=SEEDED.replace(temperature=2.0, top_k=0, seed=None)))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, 3)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, SamplerViewScreen))
        taken = app.output.events[3].token_id
        for _ in range(20):
            app.output.select(3)
            await pilot.pause()
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, SamplerViewScreen))
            await wait_until(pilot, lambda: app.screen.view is not None)
            await pilot.press("r")
            await pilot.pause()
            if not isinstance(app.screen, SamplerViewScreen):
                break
            await pilot.press("escape")
            await pilot.pause()
        await wait_generated(pilot)
        tree = app.core.transcript.reply.tree
        assert len(tree.siblings(tree.path()[3])) == 2
        assert app.core.transcript.reply.events[3].token_id != taken


async def test_expand_adds_branches_listed_with_their_probability(tiny_model_dir):
    save_settings(UserSettings(sampling=SEEDED))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, 2)
        shown = [e.token_id for e in app.output.events]
        await pilot.press("e")
        await wait_until(pilot, lambda: not isinstance(app.screen, SamplerViewScreen))
        await app.workers.wait_for_complete()
        await pilot.pause()
        tree = app.core.transcript.reply.tree
        assert len(tree.siblings(tree.path()[2])) == 5  # the token taken and 4 alternatives
        assert [e.token_id for e in app.output.events] == shown
        assert app.branch_view.display and app.branch_view.fork_count == 1


async def test_a_prompt_token_is_viewed_but_does_not_branch(tiny_model_dir):
    save_settings(UserSettings(sampling=SEEDED))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate_from(pilot, PROMPT)
        app.output.focus()
        app.output.select_prompt(2)
        await pilot.pause()
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SamplerViewScreen))
        screen = app.screen
        await wait_until(pilot, lambda: screen.view is not None)
        assert screen.lab.request.reply_position is None
        assert screen.lab.request.token == app.output.prompt_tokens[2].token_id
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, SamplerViewScreen)  # nothing to branch: it stays open


def test_sampler_view_at_80x24(snap_compare, tiny_model_dir):
    save_settings(UserSettings(sampling=SEEDED))

    async def run_before(pilot: Pilot) -> None:
        screen = await open_view(pilot, 4)
        await pilot.press("d")
        await wait_until(pilot, lambda: screen.drawn is not None)
        pilot.app.clear_notifications()
        screen.lab.seconds = 0.0  # timings differ between runs
        screen.redraw_seconds = 0.0
        screen._show_summary()
        await pilot.pause()

    assert snap_compare(GptTuiApp(model=tiny_model_dir), terminal_size=(80, 24),
                        run_before=run_before)  # fmt: skip


async def test_in_a_compare_column_the_view_has_that_columns_settings_and_gives_them_back(
    tiny_model_dir,
):
    save_settings(UserSettings(sampling=SEEDED))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.core.backend is not None)
        compare: CompareScreen = await run_compare(pilot, PROMPT)
        column = compare.columns[1]
        screen: SamplerViewScreen = await sampler_view_of(pilot, column.output, 2)
        await wait_until(pilot, lambda: screen.view is not None)
        assert screen.params == column.params and column.params != app.core.sampling
        event = column.output.events[2]
        assert screen.lab.request.token == event.token_id
        assert abs(screen.view.final.probs[event.token_id] - event.sampled_prob) < 1e-3
        assert "column 2" in str(screen.query_one("#sv-title").render())
        # a move here is the column's, not the playground's
        screen.query_one("#slider-top_p", Slider).focus()
        await pilot.press("shift+left", "shift+left")
        await wait_until(pilot, lambda: screen.params.top_p < 1.0 and "top-p" in columns(screen))
        assert app.core.sampling == SEEDED
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is compare)
        assert column.params.top_p == screen.params.top_p < 1.0
        assert "top-p" in str(column.output.border_title)
        assert compare.columns[0].params.top_p == 1.0


async def test_on_llama_server_the_view_asks_it_before_and_after_sampling(gpt_tui_home):
    # a real HTTP server on 127.0.0.1 answering /completion as llama-server's README documents
    fake = FakeOpenAIServer(owned_by="llamacpp")
    save_settings(UserSettings(sampling=SamplingParams(temperature=0.0, seed=1, max_tokens=4)))
    app = GptTuiApp(model=fake.url)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.core.backend is not None)
            assert app.core.backend.kind.name == "llama-server"
            if app.chat_mode:
                await pilot.press("f3")
            await generate_from(pilot, "The capital of France is")
            screen: SamplerViewScreen = await sampler_view_of(pilot, app.output, 0)
            await wait_until(pilot, lambda: screen.server_view is not None)
            assert columns(screen) == ["token", "model", "sampled"]
            status = str(screen.query_one("#sv-status").render())
            assert "llama-server: its top 10 before and after its sampling" in status
            assert "it would draw “␣Paris” here now" in status
            body = fake.posts("/completion")[-1].body
            assert body["prompt"] == "The capital of France is" and body["post_sampling_probs"]
            first = screen.server_view
            assert len(first.after) == 3  # top-k off: the three pieces it knows
            # a slider move asks again under the new settings: top-k 1 keeps one
            field = screen.query_one("#slider-top_k", Slider)
            field.focus()
            await pilot.press("1", "enter")
            await wait_until(pilot, lambda: screen.server_view is not first)
            await wait_until(pilot, lambda: len(screen.server_view.after) == 1)
            assert fake.posts("/completion")[-1].body["top_k"] == 1
            table = screen.query_one(StageTable)
            removed = str(table.get_row(str(table.token_ids[1]))[2])
            assert removed.startswith("✗")  # listed before, gone after
    finally:
        fake.close()
