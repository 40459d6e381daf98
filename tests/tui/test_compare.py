"""The compare view (F4): columns of one prompt generated as one batch, on the tiny random GPT-2."""

from __future__ import annotations

import itertools

from textual.pilot import Pilot
from textual.widgets import Input
from tui_helpers import wait_generated, wait_loaded, wait_until

from gpt_tui.engine import SamplingParams, TokenEvent, generate
from gpt_tui.playground.streaming import stream_batch
from gpt_tui.settings import UserSettings, save_settings
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.screens.compare import CompareScreen
from gpt_tui.tui.widgets.compare_column import CompareColumn
from gpt_tui.tui.widgets.inspector import TokenInspector

SIZE = (120, 40)
PROMPT = "The meaning of life is"


def notes(app: GptTuiApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def open_compare(pilot: Pilot, prompt: str = PROMPT) -> CompareScreen:
    app: GptTuiApp = pilot.app  # type: ignore[assignment]
    if app.core.backend is None:
        await wait_loaded(pilot)
    app.prompt_editor.load_text(prompt)
    await pilot.pause()
    await pilot.press("f4")
    await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
    await pilot.pause()
    return app.screen  # type: ignore[return-value]


async def run_columns(pilot: Pilot, screen: CompareScreen) -> None:
    await pilot.press("f5")
    await wait_until(pilot, lambda: not screen.running)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def type_setting(pilot: Pilot, column: CompareColumn, name: str, text: str) -> None:
    """Replace a column's setting the way a user does: focus, clear, type, enter."""
    field = column.query_one(f"#set-{name}", Input)
    field.focus()
    await pilot.pause()
    await pilot.press("ctrl+a", "ctrl+k", *text, "enter")
    await pilot.pause()


async def test_three_columns_stream_together_each_as_if_run_alone(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        app.prompt_editor.load_text(PROMPT)
        await pilot.press("ctrl+j")  # a run in the main view first: its cache must survive
        await wait_generated(pilot)
        main_text, main_cache = app.output.text, app.core.backend.cache
        cached = main_cache.ids[:, : main_cache.length].copy()

        screen = await open_compare(pilot)
        columns = screen.columns
        assert len(columns) == 3
        # contrasting defaults over the main panel's settings; seeds distinct as it is seeded
        assert [c.params.temperature for c in columns] == [0.3, 0.8, 1.2]
        assert [c.params.seed for c in columns] == [1, 2, 3]
        assert {c.params.max_tokens for c in columns} == {deterministic_settings.max_tokens}
        await type_setting(pilot, columns[0], "temperature", "0")
        await type_setting(pilot, columns[2], "top_k", "40")
        assert columns[0].params.temperature == 0 and columns[2].params.top_k == 40
        assert columns[0].output.border_title == "1 · greedy"
        assert columns[2].output.border_title == "3 · temp 1.2 · top-k 40 · seed 3"

        await run_columns(pilot, screen)
        context = screen.request.context
        for column in columns:
            alone = list(
                generate(app.core.backend.model, app.core.backend.tokenizer, context, column.params)
            )
            assert [e.token_id for e in column.output.events] == [e.token_id for e in alone]
            assert column.output.text.startswith(PROMPT)
            assert column.finish == "length"
            assert column.output.border_subtitle == "24 tokens · max tokens"
        greedy = SamplingParams(temperature=0, max_tokens=deterministic_settings.max_tokens)
        alone = generate(app.core.backend.model, app.core.backend.tokenizer, context, greedy)
        assert [e.token_id for e in columns[0].output.events] == [e.token_id for e in alone]
        texts = {c.output.text for c in columns}
        assert len(texts) == 3  # different settings, different samples
        status = screen.status.render().plain
        assert "done" in status and "tok/s batch" in status and "3 columns" in status

        await pilot.press("f4")  # back: the main view and its kv cache are as they were
        assert not isinstance(app.screen, CompareScreen)
        assert app.output.text == main_text and app.core.backend.cache is main_cache
        assert (main_cache.ids[:, : main_cache.length] == cached).all()


async def test_selecting_a_token_shows_it_in_that_columns_inspector_only(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot)
        await run_columns(pilot, screen)
        columns = screen.columns
        # the prompt's tokens come first in the selection: from the end, back to token 1
        await pilot.press("2", "end", *["left"] * (len(columns[1].output.events) - 2))
        assert screen.focused is columns[1].output
        inspector = columns[1].inspector
        assert inspector.event is columns[1].output.events[1]
        alternatives = inspector.query_one("#alternatives")
        assert alternatives.display and alternatives.option_count > 1
        for other in (columns[0], columns[2]):
            assert other.inspector.event is None
        assert app.query_one("#inspector", TokenInspector).event is None  # not the main one
        # clicking a token in column 3 selects it there, and column 2 keeps its own
        offset = columns[2].output.token_offset(0)
        assert offset is not None
        await pilot.click(columns[2].output, offset=offset)
        assert columns[2].inspector.event is columns[2].output.events[0]
        assert columns[1].inspector.event is columns[1].output.events[1]


async def test_columns_can_be_added_and_removed_between_two_and_four(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot)
        await pilot.press("plus")
        await pilot.pause()
        assert len(screen.columns) == 4
        assert screen.columns[3].params.temperature == 1.6 and screen.columns[3].params.seed == 4
        await pilot.press("plus")
        await pilot.pause()
        assert len(screen.columns) == 4
        assert any("At most 4 columns" in n for n in notes(app))

        await pilot.press("2", "minus")  # the focused column goes; the others renumber
        await pilot.pause()
        assert [c.params.temperature for c in screen.columns] == [0.3, 1.2, 1.6]
        assert [c.output.border_title.split(" ")[0] for c in screen.columns] == ["1", "2", "3"]
        await pilot.press("minus", "minus")
        await pilot.pause()
        assert [c.params.temperature for c in screen.columns] == [0.3, 1.6]
        assert any("At least 2 columns" in n for n in notes(app))

        await run_columns(pilot, screen)  # two columns run as a batch of two
        assert all(c.output.token_count == 24 for c in screen.columns)

        await pilot.press("f4")  # leaving and coming back keeps the columns' settings
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        await pilot.pause()
        assert [c.params.temperature for c in app.screen.columns] == [0.3, 1.6]


async def test_escape_stops_every_column_and_then_goes_back(tiny_model_dir, gpt_tui_home):
    save_settings(UserSettings(sampling=SamplingParams(max_tokens=60000, seed=3)))
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot)
        await pilot.press("f5")
        await wait_until(pilot, lambda: all(c.output.token_count > 3 for c in screen.columns))
        await pilot.press("plus")  # not while running
        assert len(screen.columns) == 3 and any("Stop the run first" in n for n in notes(app))
        await pilot.press("escape")
        assert not screen.running and isinstance(app.screen, CompareScreen)
        await app.workers.wait_for_complete()
        await pilot.pause()
        counts = [c.output.token_count for c in screen.columns]
        await pilot.pause(0.2)
        assert [c.output.token_count for c in screen.columns] == counts
        assert all(n < 60000 for n in counts)
        assert all(c.output.border_subtitle.endswith("stopped by you") for c in screen.columns)
        assert "stopped by you" in screen.status.render().plain
        assert app.core.state == "idle"  # the main view never ran

        await pilot.press("escape")  # nothing to stop: back to the playground
        assert not isinstance(app.screen, CompareScreen)


async def test_a_bad_setting_is_reported_and_the_old_value_kept(
    tiny_model_dir, deterministic_settings
):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot)
        column = screen.columns[0]
        before = column.params
        await type_setting(pilot, column, "temperature", "9")
        assert "Column 1: temperature must be in [0, 2], not 9; kept 0.3" in notes(app)
        assert column.params == before
        assert column.query_one("#set-temperature", Input).value == "0.3"

        await type_setting(pilot, column, "top_k", "many")
        assert any("top_k must be a number in [0, 50257], not 'many'" in n for n in notes(app))
        await type_setting(pilot, column, "seed", "-1")
        assert any("seed must be in [0, 2^63), not -1; kept 1" in n for n in notes(app)), notes(app)
        assert column.params == before

        # typed but not entered: marked, and a run refuses to start until it is fixed
        field = column.query_one("#set-top_p", Input)
        field.focus()
        await pilot.press("ctrl+a", "ctrl+k", "0")
        assert field.has_class("-invalid")
        await pilot.press("f5")
        await pilot.pause()
        assert not screen.running and column.output.token_count == 0
        assert any("top_p must be in (0, 1], not 0; kept 1" in n for n in notes(app))
        assert field.value == "1" and not field.has_class("-invalid")

        # a valid value applies as typed; escape leaves the input without leaving the screen
        await type_setting(pilot, column, "seed", "")
        assert column.params.seed is None
        assert column.output.border_title == "1 · temp 0.3 · random"
        await pilot.press("escape")
        assert isinstance(app.screen, CompareScreen) and screen.focused is column.output


async def test_chat_mode_compares_replies_to_the_message(tiny_model_dir, deterministic_settings):
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("f3")
        await pilot.pause()
        await pilot.press("f4")
        assert any("Type a message first" in n for n in notes(app))
        assert not isinstance(app.screen, CompareScreen)

        app.prompt_editor.load_text("Hi there")
        await pilot.pause()
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        screen: CompareScreen = app.screen  # type: ignore[assignment]
        assert "User: Hi there" in app.core.backend.tokenizer.decode(screen.request.context)
        await run_columns(pilot, screen)
        for column in screen.columns:
            assert column.output.text.startswith("You\nHi there")
            assert column.output.token_count > 0
            assert "\nUser:" not in "".join(e.text for e in column.output.events)


async def test_compare_is_in_the_footer_palette_and_help(tiny_model_dir):
    from test_app import _palette_has

    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        assert "f4" in app.active_bindings
        await pilot.press("ctrl+p", *"compare")
        await wait_until(pilot, lambda: _palette_has(app, "Compare side by side"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen))
        await pilot.press("ctrl+o")  # the main view's keys do nothing here
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        await pilot.press("f2")  # colouring: the app's, followed by every column
        assert app.colouring != "off"
        assert all(c.output.colouring == app.colouring for c in app.screen.columns)
        await pilot.press("f1")
        assert "run every column" in app.screen.markdown.lower()
        await pilot.press("escape", "escape")
        assert not isinstance(app.screen, CompareScreen)


def test_side_by_side_snapshot(snap_compare, tiny_model_dir, deterministic_settings):
    """Three seeded columns, a token selected in the second. Deterministic: fixed seeds, and
    the timings (which vary from run to run) cleared."""

    async def run_before(pilot: Pilot) -> None:
        screen = await open_compare(pilot)
        await run_columns(pilot, screen)
        screen.status.stats = None
        # past the prompt's 5 tokens to the output's third
        await pilot.press("2", *["right"] * 8)
        pilot.app.clear_notifications()
        await pilot.pause()

    app = GptTuiApp(model=tiny_model_dir)
    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


def test_four_columns_in_a_small_terminal_snapshot(
    snap_compare, tiny_model_dir, deterministic_settings
):
    """Four columns at 80x24: two side by side (the third and fourth, the one just added and
    its neighbour), the status naming the page."""

    async def run_before(pilot: Pilot) -> None:
        screen = await open_compare(pilot)
        await pilot.press("plus")
        await run_columns(pilot, screen)
        screen.status.stats = None
        await pilot.press("4", *["right"] * 7)
        pilot.app.clear_notifications()
        await pilot.pause()

    app = GptTuiApp(model=tiny_model_dir)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


# --- stream_batch: the worker's loop, without Textual --------------------------------------


def batch_events(lengths: list[int]):
    """(stream, event) pairs as `generate_batch` yields them: step by step, stream by stream."""
    for step in range(max(lengths)):
        for stream, n in enumerate(lengths):
            if step < n:
                finish = "length" if step == n - 1 else None
                event = TokenEvent(step, step, "x", 0.5, -0.7, 0.5, 1, 1.0, (), step, 0, finish)
                yield stream, event


def test_stream_batch_keeps_going_after_one_stream_ends():
    clock = itertools.count(0, 0.001).__next__
    posts: list = []
    finishes, stats = stream_batch(
        batch_events([3, 10]), 2, lambda b, s: posts.append(b), lambda: False, clock=clock
    )
    assert finishes == ["length", "length"]
    assert sum(len(b) for b in posts) == 13 == stats.n_tokens
    assert stats.decode_rate is not None and stats.decode_rate > 0


def test_stream_batch_cancelled_marks_the_running_streams_stopped_by_the_user():
    closed = []

    def events():
        try:
            yield from batch_events([2, 50, 50])
        finally:
            closed.append(True)

    seen: list = []
    finishes, _ = stream_batch(
        events(), 3, lambda b, s: seen.extend(b), lambda: len(seen) >= 10, interval=0
    )
    assert finishes == ["length", "user", "user"]
    assert closed == [True]


async def test_prompt_tokens_are_scored_and_inspected_in_a_column(tiny_model_dir) -> None:
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, "The meaning of life is")
        await run_columns(pilot, screen)
        column = screen.columns[1]
        prompt = column.output.prompt_tokens
        assert len(prompt) == 5 and prompt[0].score is None
        assert all(t.score is not None for t in prompt[1:])
        column.output.select_prompt(2)
        await pilot.pause()
        assert column.inspector.prompt_token is prompt[2]  # the column's own inspector
        assert screen.columns[0].inspector.prompt_token is None
        assert app.inspector.prompt_token is None  # not the main view's
