"""Look inside (l): the screen opens on the selected token's prediction, from the output, the
prompt, a branch, an earlier chat turn and a compare column, always over the right context
(the lens's last row is the probability the inspector showed), and never reads the kv cache
while a generation holds it. Tiny random GPT-2."""

from __future__ import annotations

import math

import pytest
from textual.pilot import Pilot
from textual.widgets._footer import FooterKey
from tui_helpers import generate_from, run_compare, wait_generated, wait_loaded, wait_until

from gpt_tui.engine import TokenEvent
from gpt_tui.tui.app import GptTuiApp
from gpt_tui.tui.screens.compare import CompareScreen
from gpt_tui.tui.screens.look_inside import LookInsideScreen
from gpt_tui.tui.widgets.attention_view import MEAN, AttentionView
from gpt_tui.tui.widgets.attribution_table import AttributionTable
from gpt_tui.tui.widgets.lens_table import LensTable, answer_layer

SIZE = (120, 40)
PROMPT = "The meaning of life is"


def notes(app: GptTuiApp) -> list[str]:
    return [n.message for n in app._notifications]


async def generate_and_select(pilot: Pilot, index: int) -> TokenEvent:
    """Generate from PROMPT and select output token `index` (the output focused)."""
    app: GptTuiApp = pilot.app  # type: ignore[assignment]
    await generate_from(pilot, PROMPT)
    app.output.focus()
    app.output.select(index)
    await pilot.pause()
    return app.output.events[index]


async def look_inside(pilot: Pilot, key: str = "l") -> LookInsideScreen:
    app = pilot.app
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(app.screen, LookInsideScreen))
    screen: LookInsideScreen = app.screen  # type: ignore[assignment]
    await wait_until(pilot, lambda: screen.report is not None)
    await pilot.pause()
    return screen


def assert_predicts(screen: LookInsideScreen, token_id: int, prob: float) -> None:
    """The lens's last row is the model's distribution at that step: the inspector's."""
    report = screen.report
    assert report is not None and report.target.id == token_id
    assert report.layers[-1].score.prob == pytest.approx(prob, rel=1e-4)
    assert report.attribution.total == pytest.approx(report.attribution.logit, abs=1e-4)


async def test_an_output_token(tiny_model_dir, deterministic_settings) -> None:
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        event = await generate_and_select(pilot, 5)
        assert app.inspector.query_one("#inspector-keys").display  # the key, in its last line
        screen = await look_inside(pilot)
        assert_predicts(screen, event.token_id, event.prob)
        n_prompt = len(app.core.transcript.reply_prefix)
        assert screen.report.position == n_prompt + 4  # the token before it predicted it
        assert "over the cached context" in str(screen.query_one("#lens-status").render())
        assert "output token 6" in str(screen.query_one("#lens-title").render())

        table = screen.query_one(LensTable)
        assert table.has_focus and table.row_count == app.core.backend.model.n_layer + 1
        await pilot.press("a")  # the rows after each attention too
        assert table.row_count == 2 * app.core.backend.model.n_layer + 1

        await pilot.press("2")
        view = screen.query_one(AttentionView)
        await wait_until(pilot, lambda: view.has_focus)
        assert (view.block, view.head_mode) == (0, MEAN)
        await pilot.press("down", "right", "right", "f")
        assert (view.block, view.head_mode, view.hide_first) == (1, 0, True)
        weights = view.weights()
        assert weights.shape == (screen.report.position + 1,) and math.isclose(weights.sum(), 1)
        assert "block 2/2 · head 1/2 · first token hidden" in str(
            view.query_one("#attention-title").render()
        )

        await pilot.press("3")
        attribution = screen.query_one(AttributionTable)
        await wait_until(pilot, lambda: attribution.has_focus)
        await pilot.press("v")  # against the likeliest alternative
        first_alternative = next(a for a in event.top if a.token_id != event.token_id)
        assert attribution.against.id == first_alternative.token_id
        assert attribution.attribution.logit == pytest.approx(
            math.log(event.prob) - math.log(first_alternative.prob), abs=1e-4
        )
        assert "over" in str(screen.query_one("#attribution-note").render())
        n_columns = len(attribution.columns)
        await pilot.press("h")  # a column per head
        assert len(attribution.columns) == n_columns + app.core.backend.model.n_head - 1

        await pilot.press("escape")
        assert app.screen is app.screen_stack[0] and app.output.selected == 5


async def test_a_prompt_token_and_the_first_one(tiny_model_dir, deterministic_settings) -> None:
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate_and_select(pilot, 0)
        app.output.select_prompt(0)
        await pilot.pause()
        assert not app.inspector.query_one("#inspector-keys").display
        await pilot.press("l")  # nothing predicts the first token
        await pilot.pause()
        assert not isinstance(app.screen, LookInsideScreen)
        assert any("Nothing precedes the first token" in n for n in notes(app))

        app.output.select_prompt(3)
        await pilot.pause()
        token = app.output.prompt_tokens[3]
        screen = await look_inside(pilot)
        assert_predicts(screen, token.token_id, token.score.prob)
        assert screen.report.position == 2


async def test_a_branch_the_cache_no_longer_holds(tiny_model_dir, deterministic_settings) -> None:
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await generate_and_select(pilot, 3)
        await pilot.press("2", "enter")  # branch on the second alternative
        await wait_generated(pilot)
        await pilot.press("left_square_bracket")  # back to the first text: not in the cache
        await pilot.pause()
        app.output.focus()
        app.output.select(8)
        await pilot.pause()
        event = app.output.events[8]
        screen = await look_inside(pilot)
        assert_predicts(screen, event.token_id, event.prob)
        assert "over a fresh pass" in str(screen.query_one("#lens-status").render())


async def test_an_earlier_chat_turn(tiny_model_dir, deterministic_settings) -> None:
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press("f3")  # chat mode (the base model's own template)
        for message in ("Hi there", "And then?"):
            await generate_from(pilot, message)
        first_reply = app.core.transcript.turns[1]
        assert first_reply.role == "assistant" and app.core.transcript.reply is not first_reply
        app.output.focus()
        app.output.select(2)  # the first reply's third token
        await pilot.pause()
        event = first_reply.events[2]
        screen = await look_inside(pilot)
        assert_predicts(screen, event.token_id, event.prob)


async def test_never_reads_the_cache_while_a_generation_holds_it(
    tiny_model_dir, deterministic_settings
) -> None:
    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        event = await generate_and_select(pilot, 4)
        with app.core.engine_lock:  # as the generation worker holds it
            screen = await look_inside(pilot)
        assert_predicts(screen, event.token_id, event.prob)
        assert "over a fresh pass" in str(screen.query_one("#lens-status").render())


async def test_a_compare_column_and_the_palette(tiny_model_dir, deterministic_settings) -> None:
    from test_app import _palette_has

    app = GptTuiApp(model=tiny_model_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        app.output.focus()
        await pilot.press("l")
        await pilot.pause()
        assert any("Select a token first" in n for n in notes(app))
        compare: CompareScreen = await run_compare(pilot, PROMPT)
        column = compare.columns[1]
        await pilot.press("2", "end", "left")  # column 2's last token but one
        event = column.output.events[-2]
        await pilot.press("ctrl+p", *"look inside")
        await wait_until(pilot, lambda: _palette_has(app, "Look inside"))
        screen = await look_inside(pilot, "enter")
        assert_predicts(screen, event.token_id, event.prob)
        assert "column 2" in str(screen.query_one("#lens-title").render())
        await pilot.press("escape")
        assert app.screen is compare


def test_answer_layer_is_where_the_target_stays_on_top() -> None:
    from types import SimpleNamespace as Row

    ranks = [5, 1, 3, 1, 1]
    rows = tuple(Row(score=Row(rank=r)) for r in ranks)
    assert answer_layer(rows) == 3  # type: ignore[arg-type]
    assert answer_layer(rows[:3]) is None  # type: ignore[arg-type]


def test_lens_screen_in_a_small_terminal(snap_compare, tiny_model_dir, deterministic_settings):
    async def run_before(pilot: Pilot) -> None:
        await generate_and_select(pilot, 5)
        pilot.app.status.stats = None
        screen = await look_inside(pilot)
        screen.query_one("#lens-status").update("traced")  # its timing varies
        pilot.app.clear_notifications()
        await pilot.pause()

    app = GptTuiApp(model=tiny_model_dir)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


async def test_at_80_columns_the_tables_fit_and_scroll_themselves(
    tiny_model_dir, deterministic_settings
) -> None:
    app = GptTuiApp(model=tiny_model_dir)
    # 12 rows: the tiny model's attribution has more rows than its table shows.
    async with app.run_test(size=(80, 12)) as pilot:
        await generate_and_select(pilot, 5)
        screen = await look_inside(pilot)
        lens = screen.query_one(LensTable)
        assert lens.virtual_size.width <= lens.size.width  # the top predictions are not cut
        await pilot.press("3")  # attribution: more rows than the screen holds
        await pilot.pause()
        table = screen.query_one(AttributionTable)
        assert table.has_focus and table.row_count > table.size.height, table.row_count
        keys = {key.key_display: key.description for key in screen.query(FooterKey)}
        assert keys.get("pgdn") == "Page"  # the footer names the key that shows the rest
        await pilot.press("end")  # the table itself scrolls to its last rows
        await pilot.pause()
        assert table.scroll_y > 0 and table.scroll_y == table.max_scroll_y
        assert table.cursor_row == table.row_count - 1
